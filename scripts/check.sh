#!/usr/bin/env bash
# make check: every test, in order of cost, with one closing line.
#   1. release build, warnings as errors; unit tests
#   2. ASan+UBSan build; unit tests and fuzz corpus replay
#   3. end-to-end suites (pytest) against the release binary and real peers
# Each stage runs even if an earlier one failed, so one run shows everything.
set -u
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}
total_p=0 total_f=0 failed_stages=()

count() { # STAGE OUTPUT_FILE RC
  local p f
  p=$(grep -Eo '^[a-z-]+: [0-9]+ passed' "$2" | tail -1 | grep -Eo '[0-9]+ passed' | grep -Eo '[0-9]+')
  f=$(grep -Eo '^[a-z-]+: [0-9]+ passed, [0-9]+ failed' "$2" | tail -1 | grep -Eo '[0-9]+ failed' | grep -Eo '[0-9]+')
  p=${p:-0}; f=${f:-0}
  if [ "$3" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  total_p=$((total_p + p)); total_f=$((total_f + f))
  [ "$3" -eq 0 ] || failed_stages+=("$1")
}

stage() { # NAME CMD...
  local name=$1; shift
  local out; out=$(mktemp)
  echo "=== $name"
  "$@" 2>&1 | tee "$out"
  local rc=${PIPESTATUS[0]}
  count "$name" "$out" "$rc"
  rm -f "$out"
}

build() { make --no-print-directory -j"$JOBS" WERROR=1 "$@"; }

stage build-release build MODE=release all
stage unit-release bash -c "make --no-print-directory -j$JOBS WERROR=1 MODE=release unit"
stage unit-asan bash -c "make --no-print-directory -j$JOBS WERROR=1 MODE=asan unit"
stage fuzz-replay bash -c "make --no-print-directory -j$JOBS WERROR=1 MODE=asan fuzz-replay"
promql_conformance() {
  local out rc p
  out=$(mktemp)
  make --no-print-directory -j"$JOBS" WERROR=1 MODE=release promql-conformance \
    PROMQLTEST_ARGS="--expect-file tests/promqltest/known-failures.txt" 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  # Evals listed in known-failures.txt are open gaps (issue 3), reported by
  # the runner; only an eval failing outside that list fails the stage.
  p=$(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ unsupported' "$out" | tail -1 | grep -Eo '^[0-9]+')
  rm -f "$out"
  echo "promql-conformance: ${p:-0} passed, $([ "$rc" -eq 0 ] && echo 0 || echo 1) failed"
  return "$rc"
}
stage promql-conformance promql_conformance

openmetrics_conformance() {
  local out rc
  out=$(mktemp)
  make --no-print-directory -j"$JOBS" WERROR=1 MODE=release openmetrics-conformance 2>&1 | tee "$out" | grep -v ': ok$'
  rc=${PIPESTATUS[0]}
  echo "openmetrics-conformance: $(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -1)"
  rm -f "$out"
  return "$rc"
}
stage openmetrics-conformance openmetrics_conformance

e2e() {
  local out rc p f e
  out=$(mktemp)
  BONGSU_BIN="$PWD/build/release/bongsu" timeout 1200 /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/e2e 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  p=$(tail -3 "$out" | grep -Eo '[0-9]+ passed' | grep -Eo '[0-9]+' | tail -1)
  f=$(tail -3 "$out" | grep -Eo '[0-9]+ (failed|error)' | grep -Eo '[0-9]+' | awk '{s+=$1} END {print s+0}')
  rm -f "$out"
  echo "e2e: ${p:-0} passed, ${f:-0} failed"
  [ "$rc" -eq 5 ] && { echo "e2e: no tests collected"; return 1; }
  return "$rc"
}
stage e2e e2e

echo
if [ ${#failed_stages[@]} -eq 0 ]; then
  echo "make check: all stages passed"
else
  echo "make check: FAILED stages: ${failed_stages[*]}"
fi
echo "check: $total_p passed, $total_f failed"
[ ${#failed_stages[@]} -eq 0 ]
