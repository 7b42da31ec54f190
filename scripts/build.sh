#!/usr/bin/env bash
# Configures and builds reclm into build/ (Release). Extra arguments go to cmake's configure,
# e.g. scripts/build.sh -DRECLM_CUDA=OFF. Parallel jobs: $JOBS, default the core count.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build -j "${JOBS:-$(nproc)}"
