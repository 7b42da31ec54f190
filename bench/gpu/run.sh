#!/usr/bin/env bash
# The GPU check of the hand-written CUDA kernels, on a host with a GPU, in one command:
#   1. builds reclm with CUDA into BUILD_DIR — with scripts/build.sh, or, when the Debian
#      packages are missing and .debs/ holds them (scripts/offline/fetch_debs.sh), with
#      scripts/offline/build.sh; RECLM_PREBUILT=1 skips the build and uses BUILD_DIR as it is;
#   2. runs the `gpu` tests (the kernel tests built by nvcc, the NCCL communicator);
#   3. runs compute-sanitizer memcheck, racecheck and synccheck over the kernel tests;
#   4. prints the kernel benchmark table (bench/gpu/kernel_bench.cu): per kernel the time, GB/s
#      and the ratio to the device-to-device copy bandwidth measured in the same run (TFLOP/s for
#      attention and GEMMs), then PyTorch's attention and GEMMs on the same shapes
#      (bench/gpu/attention_torch.py, gemm_torch.py).
#
#   bench/gpu/run.sh [BUILD_DIR]      (default build-gpu)
#   RECLM_SANITIZE_FILTER=Cuda*Embedding* bench/gpu/run.sh   (limit the sanitizer runs)
# Exit status: non-zero when a test or a sanitizer check fails (the benchmark only reports).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
build=${1:-build-gpu}
status=0

# shellcheck source=bench/gpu/build_gpu.bash
source bench/gpu/build_gpu.bash

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>/dev/null ||
  echo "run.sh: nvidia-smi not available"
echo "== gpu tests"
(cd "$build" && ctest -L gpu --output-on-failure --timeout 900) || status=1

if ! nvidia-smi -L > /dev/null 2>&1; then
  echo "run.sh: no GPU on this host: the gpu tests skipped themselves; sanitizer and benchmark need one"
  exit $status
fi

echo "== compute-sanitizer"
sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
filter=${RECLM_SANITIZE_FILTER:-*}
[ -x "$sanitizer" ] || { echo "run.sh: compute-sanitizer not found (looked on PATH and in /usr/local/cuda/bin)"; status=1; }
for tool in memcheck racecheck synccheck; do
  [ -x "$sanitizer" ] || break
  if "$sanitizer" --tool "$tool" --error-exitcode 3 "$build/bin/cuda_kernels_gpu_test" \
       --gtest_filter="$filter" --gtest_brief=1 > "$build/sanitizer_$tool.log" 2>&1; then
    echo "$tool: clean: $(grep -hE 'PASSED|ERROR SUMMARY' "$build/sanitizer_$tool.log" | tr -s ' =\n' ' ')"
  else
    echo "$tool: FAILED (log: $build/sanitizer_$tool.log)"; tail -20 "$build/sanitizer_$tool.log"; status=1
  fi
done

echo "== kernel benchmark"
"$build/bin/kernel_bench" || status=1

# The peers: PyTorch's scaled_dot_product_attention and GEMMs on the same shapes and GPU.
echo "== PyTorch scaled_dot_product_attention and GEMMs (the peers of the attention and GEMM cases)"
if python3 -c "import torch" 2> /dev/null; then
  python3 bench/gpu/attention_torch.py || status=1
  python3 bench/gpu/gemm_torch.py || status=1
else
  echo "run.sh: PyTorch is not importable here; peers skipped"
fi
exit $status
