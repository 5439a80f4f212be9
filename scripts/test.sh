#!/usr/bin/env bash
# The README's second command: install what is missing, build once, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
start=$(date +%s)
mkdir -p .build
swift build --build-tests 2>&1 | tee .build/test-build.log
scripts/check-warnings.sh .build/test-build.log
echo "== the code follows .swift-format (swift format lint --strict)"
swift format lint --strict --recursive Sources devices Tests
echo "== swift test"
swift test --skip-build --no-parallel
echo "== device examples against their schemas"
python3 devices/check_examples.py
echo "== provisioning (installer, broker ACLs and TLS with a real mosquitto)"
echo "(build and swift tests took $(( $(date +%s) - start )) s)"
bash provisioning/tests/run.sh
