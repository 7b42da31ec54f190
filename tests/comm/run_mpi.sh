#!/usr/bin/env bash
# Runs one MPI job for ctest (label `mpi`) and checks how it ended:
#   run_mpi.sh NP MAX_S ok|fail REGEX PROGRAM [ARGS...]
# The job runs as `scripts/mpirun.sh -np NP` with ranks talking TCP over loopback, as they would
# across nodes (--mca btl self,tcp; loopback only, so no network is needed), and is killed past
# 60 s — a hang fails the test instead of stalling CI. Passes when the exit status is 0 (ok) or
# non-zero (fail), the job took at most MAX_S seconds, and its output matches REGEX (grep -E).
set -uo pipefail
[ $# -ge 5 ] || { echo "usage: $0 NP MAX_S ok|fail REGEX PROGRAM [ARGS...]" >&2; exit 2; }
np=$1 max_s=$2 expect=$3 regex=$4
shift 4
root="$(cd "$(dirname "$0")/../.." && pwd)"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

start_ms=$(($(date +%s%N) / 1000000))
timeout -k 10 60 "$root/scripts/mpirun.sh" -np "$np" --mca btl self,tcp \
  --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo "$@" >"$log" 2>&1
status=$?
elapsed_ms=$(($(date +%s%N) / 1000000 - start_ms))
elapsed="$((elapsed_ms / 1000)).$(printf %03d $((elapsed_ms % 1000)))"
cat "$log"
echo "run_mpi.sh: -np $np $*: exit status $status after ${elapsed} s"

fail() { echo "run_mpi.sh: FAILED: $*" >&2; exit 1; }
# timeout's own status (124, or 137 after -k) is also what a job killed by a signal returns.
[ "$elapsed_ms" -lt 60000 ] || fail "the job hung and was killed after 60 s"
case "$expect" in
  ok) [ "$status" -eq 0 ] || fail "expected exit status 0" ;;
  fail) [ "$status" -ne 0 ] || fail "expected a non-zero exit status" ;;
  *) fail "expect must be ok or fail, not '$expect'" ;;
esac
[ "$elapsed_ms" -le $((max_s * 1000)) ] || fail "took ${elapsed} s, more than $max_s s"
grep -Eq -- "$regex" "$log" || fail "no line of the output matches: $regex"
echo "run_mpi.sh: passed"
