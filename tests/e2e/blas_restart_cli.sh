#!/usr/bin/env bash
# reclm's restart with OpenBLAS kernels that fit the CPU (kernels/cpu/blas_kernels.h): where
# OpenBLAS falls back to its generic kernels (a CPU it does not know), reclm says so once on
# stderr, starts over with OPENBLAS_CORETYPE set, and its output and exit codes are those of one
# run; elsewhere it says nothing. An OPENBLAS_CORETYPE the user set is never overridden.
set -euo pipefail
source "$(dirname "$0")/lib/common.bash"

"$RECLM" --version > "$work/out.txt" 2> "$work/err.txt" || fail "--version failed"
[ "$(cat "$work/out.txt")" = "reclm 0.1.0" ] || { cat "$work/out.txt"; fail "--version printed more than once"; }
if [ -s "$work/err.txt" ]; then  # this CPU: OpenBLAS's fallback
  [ "$(wc -l < "$work/err.txt")" -eq 1 ] || { cat "$work/err.txt"; fail "more than one line on stderr"; }
  grep -Eq '^reclm: OpenBLAS does not know this CPU and chose its generic Prescott kernels; starting over with OPENBLAS_CORETYPE=(SkylakeX|Haswell) ' \
    "$work/err.txt" || { cat "$work/err.txt"; fail "unexpected stderr"; }
  echo "blas_restart_cli: this CPU gets the restart"
fi
# the exit code of bad input survives the restart
expect_exit2 "no such file" info "$work/none.h5"
# the user's choice stands: no restart, no line
OPENBLAS_CORETYPE=Prescott "$RECLM" --version > "$work/out2.txt" 2> "$work/err2.txt" || fail "--version failed"
[ ! -s "$work/err2.txt" ] || { cat "$work/err2.txt"; fail "restarted although OPENBLAS_CORETYPE was set"; }
echo "blas_restart_cli: ok"
