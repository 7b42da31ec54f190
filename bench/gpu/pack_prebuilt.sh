#!/usr/bin/env bash
# Packs a build's programs with the Debian libraries they link, for a GPU host that has the CUDA
# toolkit's libraries (cudart, cuBLASLt; NCCL from the toolkit or PyTorch's wheels) but not
# reclm's Debian packages, and no time to build:
#
#   bench/gpu/pack_prebuilt.sh BUILD_DIR OUT.tar.xz
#
# The archive holds one folder, prebuilt/:
#   bin/  reclm, and those of cuda_kernels_gpu_test, device_gpu_test, kernel_bench and
#         nccl_collectives_test that the build made (a CUDA build makes them all);
#   lib/  every library `ldd` resolves for them, but the C library's own, libstdc++/libgcc_s
#         and CUDA's, which the host brings;
#   commit  the sources' commit, when the build's source folder is a git checkout;
#   env.sh  puts lib/ first on LD_LIBRARY_PATH, then the host's CUDA library folders, and the
#         folder of a libnccl.so.2 or libcublasLt.so.13 found elsewhere when the loader lacks it.
# On the GPU host, in the source tree (train.sh and run.sh source BUILD_DIR/env.sh):
#
#   tar -xJf OUT.tar.xz && RECLM_PREBUILT=1 RECLM_SKIP_GPU_TESTS=1 bench/gpu/train.sh prebuilt
#
# The host must be x86-64 with a C library at least as new as the build host's (Debian 12:
# glibc 2.36). XZ_OPT passes options to xz (default -6 on 2 threads; -0 packs fastest).
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: pack_prebuilt.sh BUILD_DIR OUT.tar.xz" >&2; exit 2; }
build=$1
out=$(realpath -m "$2")
[ -x "$build/bin/reclm" ] || { echo "pack_prebuilt.sh: $build/bin/reclm not found (build first: scripts/build.sh)" >&2; exit 2; }
[ -d "$(dirname "$out")" ] || { echo "pack_prebuilt.sh: $(dirname "$out"): no such folder" >&2; exit 2; }
programs=()
for p in reclm cuda_kernels_gpu_test device_gpu_test kernel_bench nccl_collectives_test; do
  [ -x "$build/bin/$p" ] && programs+=("$p")
done
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/prebuilt/bin" "$stage/prebuilt/lib"
for p in "${programs[@]}"; do cp "$build/bin/$p" "$stage/prebuilt/bin/"; done
# The host brings these: the C library's parts, the compiler's runtime and CUDA's libraries.
host_provides='^(libc|libm|libdl|libpthread|librt|libresolv|libutil|ld-linux-x86-64|linux-vdso|libstdc\+\+|libgcc_s|libcudart|libcublas|libcublasLt|libnccl|libcuda)\.so'
for p in "${programs[@]}"; do
  if ldd "$build/bin/$p" | grep -q 'not found'; then
    echo "pack_prebuilt.sh: $build/bin/$p has libraries this host cannot find:" >&2
    ldd "$build/bin/$p" | grep 'not found' >&2
    exit 2
  fi
  ldd "$build/bin/$p"
done | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' | sort -u |
  while read -r name path; do
    [[ $name =~ $host_provides ]] && continue
    cp -L "$path" "$stage/prebuilt/lib/$name"
  done
cat > "$stage/prebuilt/env.sh" << 'ENV'
# Written by bench/gpu/pack_prebuilt.sh: the packed libraries, then the host's CUDA and NCCL.
prebuilt_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
prebuilt_cuda=
for dir in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d "$dir" ] && prebuilt_cuda+=":$dir"
done
for name in libnccl.so.2 libcublasLt.so.13; do  # (PyTorch's wheels bring both)
  if ! ldconfig -p 2> /dev/null | grep -q "$name" && ! ls ${prebuilt_cuda//:/ } 2> /dev/null | grep -qx "$name"; then
    found=$(find / -xdev -name "$name" -path '*nvidia*' 2> /dev/null | head -n 1)
    [ -n "$found" ] && prebuilt_cuda+=":$(dirname "$found")"
  fi
done
export LD_LIBRARY_PATH="$prebuilt_dir/lib$prebuilt_cuda${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
ENV
# the sources' commit (`git describe --dirty`), which bench/gpu/ab_builds.sh prints beside its builds
source_dir=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$build/CMakeCache.txt" 2> /dev/null)
if [ -n "$source_dir" ] && git -C "$source_dir" rev-parse HEAD > /dev/null 2>&1; then
  git -C "$source_dir" describe --always --dirty > "$stage/prebuilt/commit"
fi
XZ_OPT=${XZ_OPT:--6 -T2} tar -C "$stage" -cJf "$out" prebuilt
echo "pack_prebuilt.sh: $out ($(du -h "$out" | cut -f1)): ${programs[*]} and $(ls "$stage/prebuilt/lib" | wc -l) libraries"
