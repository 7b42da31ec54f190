#!/usr/bin/env bash
# Set-up + build + every test that needs no GPU (ctest labels unit and e2e).
# This is what CI runs (.ci/run). Extra arguments go to ctest, e.g. scripts/test.sh -R Attention.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
cd build
ctest -L 'unit|e2e' --output-on-failure --timeout 600 -j "${JOBS:-$(nproc)}" "$@"
