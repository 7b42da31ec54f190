#!/usr/bin/env bash
# On a GPU host without package access: unpacks the Debian packages that
# scripts/offline/fetch_debs.sh downloaded into a local prefix (no root, nothing installed
# system-wide: `dpkg-deb -x` into PREFIX) and builds reclm with CUDA against them.
#
#   scripts/offline/build.sh [DEBS_DIR] [BUILD_DIR] [cmake args...]
#       defaults: .debs  build-offline   (prefix: BUILD_DIR/prefix)
#
# The host needs its own C++ compiler (the one nvcc uses), cmake >= 3.25 and the CUDA toolkit.
# Programs built this way find their libraries through BUILD_DIR/env.sh, which the script writes:
#   source build-offline/env.sh && build-offline/bin/reclm --help
set -euo pipefail
cd "$(dirname "$0")/../.."
debs=${1:-.debs}
build=${2:-build-offline}
shift $(( $# > 2 ? 2 : $# ))
ls "$debs"/*.deb > /dev/null 2>&1 || { echo "build.sh: no .deb files in $debs (run scripts/offline/fetch_debs.sh first)" >&2; exit 2; }
mkdir -p "$build"
prefix=$(cd "$build" && pwd)/prefix
rm -rf "$prefix"
mkdir -p "$prefix"
for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$prefix"; done
echo "build.sh: unpacked $(ls "$debs"/*.deb | wc -l) packages into $prefix"

arch=$(gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)
usr=$prefix/usr
libdir=$usr/lib/$arch
# Debian keeps some libraries in subdirectories (the OpenMP OpenBLAS, serial HDF5, Open MPI).
cat > "$build/env.sh" <<ENV
# Written by scripts/offline/build.sh: the unpacked packages' programs and libraries.
export PATH="$usr/bin:\$PATH"
export LD_LIBRARY_PATH="$libdir:$libdir/openblas-openmp:$libdir/hdf5/serial:$libdir/openmpi/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export OPAL_PREFIX="$usr"                     # Open MPI, relocated into the prefix
export PKG_CONFIG_PATH="$libdir/pkgconfig:$usr/share/pkgconfig"
export RECLM_MPIRUN="$usr/bin/mpirun.openmpi"  # scripts/mpirun.sh uses it
ENV
# shellcheck disable=SC1091
source "$build/env.sh"
# Debian's plain names (mpicxx, mpirun) are links through /etc/alternatives, which unpacking
# does not make: use the .openmpi ones; OPAL_PREFIX points their data files at the prefix.
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DRECLM_CUDA=ON \
  -DCMAKE_PREFIX_PATH="$usr" \
  -DCMAKE_INCLUDE_PATH="$usr/include;$usr/include/$arch;$usr/include/hdf5/serial" \
  -DCMAKE_LIBRARY_PATH="$libdir;$libdir/hdf5/serial" \
  -DProtobuf_PROTOC_EXECUTABLE="$usr/bin/protoc" \
  -DHDF5_ROOT="$usr" -DHDF5_C_INCLUDE_DIR="$usr/include/hdf5/serial" \
  -DMPI_CXX_COMPILER="$usr/bin/mpicxx.openmpi" "$@"
cmake --build "$build" -j "${JOBS:-$(nproc)}"
echo "build.sh: built into $build; run with: source $build/env.sh"
