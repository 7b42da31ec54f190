#!/usr/bin/env bash
# For GPU hosts without package access (clusters often have CUDA but no apt): downloads the
# Debian packages reclm's build needs — the `lib` lines of scripts/debian_packages.txt and every
# package they depend on — into DIR (default .debs/), to travel with the source tree.
# scripts/offline/build.sh unpacks them on the GPU host and builds there.
#
#   scripts/offline/fetch_debs.sh [DIR]
#
# Run on a Debian 12 (bookworm) machine with apt (no root needed). Left out, because every build
# host has them or brings its own: packages of priority required/important (libc, coreutils, ...)
# and the toolchain (gcc/g++, binutils, perl, make, cmake). The target must be the same Debian
# release and architecture (amd64) as this machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${1:-.debs}
mkdir -p "$dir"
mapfile -t wanted < <(sed -e 's/#.*//' scripts/debian_packages.txt | awk '$2 == "lib" {print $1}')

# The closure as apt resolves it for an empty system (first alternatives, no recommends).
status=$(mktemp)
trap 'rm -f "$status"' EXIT
mapfile -t closure < <(apt-get install -s --no-install-recommends -o Dir::State::status="$status" \
  "${wanted[@]}" 2>/dev/null | awk '/^Inst /{print $2}' | sort -u)
[ ${#closure[@]} -gt 0 ] || { echo "fetch_debs.sh: apt resolved no packages (is this Debian with apt?)" >&2; exit 1; }
toolchain='^(gcc|g\+\+|cpp|gfortran|binutils|libbinutils|libctf|libgprofng|libsframe|libc6|libc-dev-bin|linux-libc-dev|libgcc|libstdc\+\+|libgfortran-[0-9]+-dev|perl|libperl|libasan|liblsan|libtsan|libubsan|libhwasan|libitm|libquadmath|libgomp|libcc1|libisl|libmpc|libmpfr|rpcsvc-proto|libcrypt-dev|libnsl-dev|libtirpc-dev|libjansson|libdpkg-perl|make|patch|dpkg-dev|bzip2|xz-utils|cmake|cmake-data)$|^(gcc|g\+\+|cpp|gfortran)-[0-9]+'
keep=()
for pkg in "${closure[@]}"; do
  priority=$(apt-cache show "$pkg" 2>/dev/null | sed -n 's/^Priority: //p' | head -1)
  [[ "$priority" == required || "$priority" == important ]] && continue
  [[ "$pkg" =~ $toolchain ]] && continue
  keep+=("$pkg")
done
echo "fetch_debs.sh: downloading ${#keep[@]} packages (of ${#closure[@]} in the closure) into $dir"
(cd "$dir" && apt-get download "${keep[@]}" > /dev/null)
echo "fetch_debs.sh: $(ls "$dir"/*.deb | wc -l) packages, $(du -sh "$dir" | cut -f1); next, on the GPU host: scripts/offline/build.sh $dir"
