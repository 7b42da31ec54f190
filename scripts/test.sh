#!/usr/bin/env bash
# Set-up + build + every test that needs no GPU (ctest labels unit, emu, e2e, python and mpi; the python
# real-client check skips itself where transformers/torch are not importable; mpi runs CPU ranks
# under mpirun over TCP on loopback).
# This is what CI runs (.ci/run). Extra arguments go to ctest, e.g. scripts/test.sh -R Attention.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
cd build
ctest -L 'unit|emu|e2e|python|mpi' --output-on-failure --timeout 600 -j "${JOBS:-$(nproc)}" "$@"
