#!/usr/bin/env bash
# Zero compiler warnings, kept at zero: reads a `swift build` log and fails on any warning
# about this repository's own files (compiler warnings in Sources/, Tests/, devices/, and
# SwiftPM's warnings about our targets). Warnings inside dependencies (.build/checkouts/…)
# are theirs and are listed, not counted. A clean clone compiles every file, so CI sees all.
#   usage: scripts/check-warnings.sh BUILD_LOG
set -euo pipefail
log=$1
root=$(cd "$(dirname "$0")/.." && pwd)
ours=$(grep -E "^${root}/(Sources|Tests|devices|Package\.swift)[^ ]*:[0-9]+:[0-9]+: warning:" "$log" | sort -u || true)
# SwiftPM's own warnings ("warning: 'pkg': …") name a dependency or the root package; the
# path lines under them say which. Count those whose paths are ours (not .build/).
pm=$(awk -v root="$root" '
  /warning: \047[^\047]*\047: / { w = $0; next }
  w != "" && index($0, root "/") && !index($0, root "/.build/") { print w " -> " $0 }
  /^[^ ]/ { w = "" }' "$log" | sort -u || true)
deps=$(grep -cE "(\.build/checkouts/.*: warning:|^warning: '[^']*': found)" "$log" || true)
if [ -n "$ours$pm" ]; then
  echo "== compiler warnings in our code (must be zero):"
  [ -n "$ours" ] && echo "$ours"
  [ -n "$pm" ] && echo "$pm"
  exit 1
fi
echo "== warnings: none in our code (${deps} line(s) about dependencies, not ours)"
