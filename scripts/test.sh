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
echo "== no Swift line over 150 characters (string literals and comments, which swift format cannot break)"
long=$(LC_ALL=C.UTF-8 grep -rnE --include='*.swift' '^.{151}' Sources devices Tests | cut -d: -f1,2 || true)
if [ -n "$long" ]; then
    echo "$long"
    echo "these lines (file:line) are over 150 characters: wrap the comment, or split the string (same text)" >&2
    exit 1
fi
echo "== swift test"
swift test --skip-build --no-parallel
echo "== device examples against their schemas"
python3 devices/check_examples.py
echo "== provisioning (installer, broker ACLs and TLS with a real mosquitto)"
echo "(build and swift tests took $(( $(date +%s) - start )) s)"
bash provisioning/tests/run.sh
echo "== the Debian package (built from the debug binary; installed, upgraded, removed and purged with dpkg)"
bash packaging/tests/run.sh
