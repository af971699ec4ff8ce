#!/usr/bin/env bash
# Run cmocka unit test binaries, each in its own process with a timeout, and
# print one closing line "N passed, N failed" counting test cases.
set -u
passed=0 failed=0 bad_bins=()
for bin in "$@"; do
  [ -x "$bin" ] || continue
  out=$(timeout "${UNIT_TIMEOUT:-300}" "$bin" 2>&1); rc=$?
  printf '%s\n' "$out" | grep -E '^\[  (PASSED|FAILED|  OK|ERROR|RUN) *\]|^\[==========\]' | grep -vE '^\[ RUN|^\[       OK' >/dev/null
  p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
  f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  passed=$((passed + p)); failed=$((failed + f))
  if [ "$rc" -ne 0 ]; then
    bad_bins+=("$bin")
    printf '%s\n' "$out" | tail -40
    echo "FAIL: $bin (exit $rc)"
  else
    echo "ok:   $bin ($p tests)"
  fi
done
echo "unit: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ ${#bad_bins[@]} -eq 0 ]
