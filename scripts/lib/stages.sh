# SPDX-License-Identifier: MIT
# Stage timing for `make test` (scripts/run-tests.sh) and the cross stage (scripts/cross-test.sh):
# every stage appends one row "name<TAB>seconds<TAB>status<TAB>detail" to $PRINTCAST_STAGE_FILE,
# and stages_print_table prints them as a table (at the end, and on failure up to the failing stage).
# Sourced, not run. Works with `set -euo pipefail`.

# One file per top-level run, shared with child scripts through the environment.
stages_init() {
  if [ -z "${PRINTCAST_STAGE_FILE:-}" ]; then
    PRINTCAST_STAGE_FILE=$(mktemp "${TMPDIR:-/tmp}/printcast-stages.XXXXXX")
    export PRINTCAST_STAGE_FILE
    PRINTCAST_STAGES_OWNER=$$
  fi
}

stages_now() { date +%s.%N; }

# stages_record NAME START_EPOCH STATUS [DETAIL]: append a row (seconds since START_EPOCH).
stages_record() {
  local name=$1 start=$2 status=$3 detail=${4:-} secs
  secs=$(awk -v a="$start" -v b="$(stages_now)" 'BEGIN { printf "%.0f", b - a }')
  printf '%s\t%s\t%s\t%s\n' "$name" "$secs" "$status" "$detail" >>"$PRINTCAST_STAGE_FILE"
}

# stage NAME CMD...: run CMD, record its wall time and status; returns CMD's exit code. The
# detail column is $STAGE_DETAIL when CMD is a function of this shell that sets it.
stage() {
  local name=$1 start rc=0
  shift
  echo "== $name"
  STAGE_DETAIL=""
  start=$(stages_now)
  "$@" || rc=$?
  if [ "$rc" -eq 0 ]; then
    stages_record "$name" "$start" ok "$STAGE_DETAIL"
  else
    stages_record "$name" "$start" "FAIL($rc)" "$STAGE_DETAIL"
  fi
  return "$rc"
}

# ctest_counts LOG: "N tests (P passed, F failed, S skipped)" from ctest's summary in LOG.
ctest_counts() {
  local log=$1 total failed skipped
  total=$(sed -n 's/.*tests passed, [0-9]* tests\{0,1\} failed out of \([0-9]*\).*/\1/p' "$log" | tail -1)
  failed=$(sed -n 's/.*tests passed, \([0-9]*\) tests\{0,1\} failed out of.*/\1/p' "$log" | tail -1)
  skipped=$(grep -c '\*\*\*Skipped\|Not Run' "$log" || true)
  [ -n "$total" ] || { echo "no ctest summary"; return; }
  echo "$total tests ($((total - failed - skipped)) passed, $failed failed, $skipped skipped)"
}

stages_print_table() {
  [ -n "${PRINTCAST_STAGE_FILE:-}" ] && [ -s "$PRINTCAST_STAGE_FILE" ] || return 0
  echo
  echo "== stage times (wall clock, in the order they ended; background-lane rows overlap the others)"
  awk -F'\t' '
    BEGIN { printf "  %-44s %8s  %-8s %s\n", "stage", "time", "status", "detail" }
    { m = int($2 / 60); s = $2 % 60
      printf "  %-44s %4dm%02ds  %-8s %s\n", $1, m, s, $3, $4 }' "$PRINTCAST_STAGE_FILE"
}

# At exit: the run that made the file prints the table and removes it (a child script run
# from scripts/run-tests.sh only adds its rows).
stages_finish() {
  if [ "${PRINTCAST_STAGES_OWNER:-}" = "$$" ]; then
    stages_print_table
    rm -f "$PRINTCAST_STAGE_FILE"
  fi
}

# use_ccache: compile every CMake build through ccache when it is installed. No CCACHE_BASEDIR
# (it would make paths relative, and tests read __FILE__), so only a clone in the same folder
# hits the cache. The unit tests' precompiled header is cacheable with this sloppiness.
use_ccache() {
  command -v ccache >/dev/null 2>&1 || return 0
  export CMAKE_C_COMPILER_LAUNCHER=ccache CMAKE_CXX_COMPILER_LAUNCHER=ccache
  export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}
}
