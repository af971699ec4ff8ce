#!/usr/bin/env bash
# Replay every fuzz target over its corpus (fuzz/corpus/<what>/) and, where a
# target names extra seed directories in fuzz/seeds-<what>.txt (one path per
# line, relative to the repo; ../shared paths allowed), over those too.
set -u
passed=0 failed=0
for bin in "$@"; do
  name=$(basename "$bin"); what=${name#fuzz_*_}
  dirs=()
  [ -d "fuzz/corpus/$what" ] && dirs+=("fuzz/corpus/$what")
  if [ -f "fuzz/seeds-$what.txt" ]; then
    while IFS= read -r l; do [ -n "$l" ] && [ -e "$l" ] && dirs+=("$l"); done < "fuzz/seeds-$what.txt"
  fi
  if [ ${#dirs[@]} -eq 0 ]; then echo "FAIL: $name has no corpus"; failed=$((failed+1)); continue; fi
  if out=$(timeout 600 "$bin" "${dirs[@]}" 2>&1); then
    echo "ok:   $name ($(printf '%s' "$out" | tail -1))"; passed=$((passed+1))
  else
    printf '%s\n' "$out" | tail -30; echo "FAIL: $name"; failed=$((failed+1))
  fi
done
echo "fuzz-replay: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
