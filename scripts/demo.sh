#!/usr/bin/env bash
# The README's first command: install what is missing, build, run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --runtime-only
swift build --product medic-edge       # the daemon
swift build --product medic-edge-lab   # the lab beside it: demo, simulate, bench, cloud-stub
exec .build/debug/medic-edge demo "$@"
