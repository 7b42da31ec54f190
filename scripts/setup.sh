#!/usr/bin/env bash
# Installs every Debian package reclm's build and tests need. Idempotent: quiet when all are
# present; runs `apt-get update` only when something is missing. Run as root or with sudo.
set -euo pipefail

PACKAGES=(
  cmake g++ make git python3           # toolchain; python3 for the plot/bench helper scripts
  libgtest-dev                          # GoogleTest
  libprotobuf-dev protobuf-compiler     # configs/reclm.proto
  libopenblas-openmp-dev                # CPU GEMMs (OpenMP build: one thread pool)
  libfmt-dev libcli11-dev nlohmann-json3-dev libxxhash-dev
  libpcre2-dev                          # GPT-2 pre-tokenisation regex (BPE tokenizer)
  libboost-context-dev                  # fibers for the host SIMT emulator (kernels/simt)
  libhdf5-dev                           # prepared datasets and model weights (HDF5)
  openmpi-bin libopenmpi-dev            # distributed runs (mpirun) and the MPI communicator
  gnuplot-nox                           # scripts/plot.sh
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup.sh: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
echo "setup.sh: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup.sh: done"
