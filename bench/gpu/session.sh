#!/usr/bin/env bash
# A lent GPU session's checks in one call, under a deadline: lent machines come with minutes of
# device time, so the most valuable checks run first, each under its own limit and never past the
# deadline (a step with too little time left is skipped and said so), and only small logs are
# written to OUT. The run folders stay in RUNS (they hold checkpoints and weights: never copy
# them back).
#
#   bench/gpu/session.sh B            B: the build to check
#   bench/gpu/session.sh A B          A: its base, measured beside it (bench/gpu/ab_builds.sh)
#
# A and B: build folders with bin/ (and env.sh), or archives of bench/gpu/pack_prebuilt.sh (*.tar.xz,
# unpacked into RUNS/A and RUNS/B). The steps, in order:
#   1. B's kernel tests and device tests (bin/cuda_kernels_gpu_test, bin/device_gpu_test);
#   2. with A: TRAIN=1 bench/gpu/ab_builds.sh A B (kernel_bench FILTER, then PRESET's training,
#      ROUNDS times alternating);
#   3. kernel_bench on B for each of KERNELS;
#   4. TRAIN=1: bench/gpu/train.sh on B (PRESET, with the PyTorch peer unless TORCH=0, the
#      VARIANTS, the profiles unless PROFILE=0);
#   5. compute-sanitizer on B's kernel tests: memcheck over MEMCHECK, racecheck over RACECHECK
#      (gtest filters; empty: skipped).
# Environment:
#   BUDGET=530            seconds for the whole call (leave the tool's limit some room)
#   OUT=RUNS/out          the logs: session.log (everything), tests_*.log; the device tool's $OUT
#   RUNS=runs/session     the unpacked builds and the runs (training folders, ab_builds.sh's logs)
#   FILTER=histories ROUNDS=2 PRESET=gpu_350m TRAIN_STEPS=40 TRAIN_SKIP=20   (steps 2 and 4)
#   KERNELS=              ';'-separated kernel_bench filters, e.g. "LM head cross-entropy;overlap"
#   TRAIN=1 TORCH=1 PROFILE=1 VARIANTS=   step 4 (VARIANTS as train.sh's)
#   MEMCHECK= RACECHECK=  step 5's gtest filters, e.g. RACECHECK='CudaAttentionBackward.*'
#   LIMIT_TESTS=90 LIMIT_AB=170 LIMIT_KERNELS=40 LIMIT_TRAIN=180 LIMIT_SANITIZER=60   seconds per step
# Exit status: non-zero when a step failed or was cut short or skipped.
set -uo pipefail
[ $# -eq 1 ] || [ $# -eq 2 ] || { echo "usage: session.sh [A] B  (build folders or pack_prebuilt.sh archives)" >&2; exit 2; }
start=$(date +%s)
budget=${BUDGET:-530}
root=$(cd "$(dirname "$0")/../.." && pwd)
runs=$(realpath -m "${RUNS:-$root/runs/session}")
out=$(realpath -m "${OUT:-$runs/out}")
status=0

# build_dir NAME PATH: PATH itself, or the archive PATH unpacked into RUNS/NAME
build_dir() {
  local path
  path=$(realpath -m "$2")
  if [ -d "$path" ]; then echo "$path"; return; fi
  [[ $path == *.tar.xz && -f $path ]] || { echo "session.sh: $2: neither a build folder nor a .tar.xz archive" >&2; return 2; }
  local dir=$runs/$1
  rm -rf "$dir" && mkdir -p "$dir" && tar -xJf "$path" -C "$dir" --strip-components=1 || return 2
  echo "$dir"
}
declare -A dir=()
if [ $# -eq 2 ]; then dir[A]=$(build_dir A "$1") || exit 2; fi
dir[B]=$(build_dir B "${!#}") || exit 2
for b in "${!dir[@]}"; do
  [ -d "${dir[$b]}/bin" ] || { echo "session.sh: ${dir[$b]}/bin not found" >&2; exit 2; }
done
cd "$root" || exit 1
mkdir -p "$out" || exit 2
exec > >(tee -a "$out/session.log") 2>&1

left() { echo $((budget - ($(date +%s) - start))); }
# step NAME LIMIT CMD...: CMD under `timeout` of LIMIT seconds or the time left less 5, whichever
# is less; skipped (and the status non-zero) below 15 s
step() {
  local name=$1 limit=$2 t0 rc
  shift 2
  local l=$(($(left) - 5))
  [ "$limit" -lt "$l" ] && l=$limit
  if [ "$l" -lt 15 ]; then
    echo "#### skipped: $name ($(left) s left of $budget)"
    status=1
    return
  fi
  echo "#### $name (limit $l s, at $(($(date +%s) - start)) s)"
  t0=$(date +%s)
  # (in a new bash, which gets this script's functions and folders: `timeout` runs programs only)
  timeout -k 5 "$l" bash -c "$(declare -p dir out); $(declare -f in_b gtests); \"\$@\"" step "$@"
  rc=$?
  [ $rc -eq 124 ] || [ $rc -eq 137 ] && echo "#### cut short: $name at its limit of $l s"
  echo "#### $name: exit $rc after $(($(date +%s) - t0)) s"
  [ $rc -eq 0 ] || status=1
}
# in_b CMD...: CMD with B's libraries (its env.sh)
in_b() {
  # shellcheck disable=SC1091
  [ -f "${dir[B]}/env.sh" ] && source "${dir[B]}/env.sh"
  "$@"
}
# gtests BINARY LOG [ARGS...]: a gtest binary of B, its log in OUT, the summary printed
gtests() {
  local bin=${dir[B]}/bin/$1 log=$out/$2
  shift 2
  [ -x "$bin" ] || { echo "session.sh: $bin not found"; return 1; }
  in_b "$bin" --gtest_brief=1 "$@" > "$log" 2>&1
  local rc=$?
  grep -E '^\[  (PASSED|FAILED|SKIPPED) |^SKIPPED|tests? ran' "$log" | head -n 20
  return $rc
}

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv,noheader 2> /dev/null ||
  echo "session.sh: nvidia-smi not available"
for b in A B; do
  [ -n "${dir[$b]:-}" ] && echo "$b: ${dir[$b]}$([ -f "${dir[$b]}/commit" ] && echo ", commit $(cat "${dir[$b]}/commit")")"
done

step "B: kernel tests" "${LIMIT_TESTS:-90}" gtests cuda_kernels_gpu_test tests_kernels.log
step "B: device tests" "${LIMIT_TESTS:-90}" gtests device_gpu_test tests_device.log
if [ -n "${dir[A]:-}" ]; then
  step "A against B: kernel_bench --filter '${FILTER-histories}' and training" "${LIMIT_AB:-170}" \
    env TRAIN="${TRAIN:-1}" ROUNDS="${ROUNDS:-2}" FILTER="${FILTER-histories}" OUT="$runs/ab" \
    bench/gpu/ab_builds.sh "${dir[A]}" "${dir[B]}"
fi
IFS=';' read -r -a kernel_filters <<< "${KERNELS:-}"
for filter in "${kernel_filters[@]}"; do
  [ -n "$filter" ] && step "B: kernel_bench --filter '$filter'" "${LIMIT_KERNELS:-40}" \
    in_b "${dir[B]}/bin/kernel_bench" --filter "$filter"
done
if [ "${TRAIN:-1}" != 0 ]; then
  step "B: bench/gpu/train.sh ${PRESET:-gpu_350m}" "${LIMIT_TRAIN:-180}" \
    env RECLM_PREBUILT=1 RECLM_SKIP_GPU_TESTS=1 PRESETS="${PRESET:-gpu_350m}" TORCH="${TORCH:-1}" \
    PROFILE="${PROFILE:-1}" TRAIN_STEPS="${TRAIN_STEPS:-40}" TRAIN_SKIP="${TRAIN_SKIP:-20}" \
    VARIANTS="${VARIANTS:-}" BENCH_DIR="$runs/train" bench/gpu/train.sh "${dir[B]}"
fi
sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
for check in memcheck:"${MEMCHECK:-}" racecheck:"${RACECHECK:-}"; do
  tool=${check%%:*} filter=${check#*:}
  [ -n "$filter" ] || continue
  if [ ! -x "$sanitizer" ]; then
    echo "session.sh: compute-sanitizer not found (PATH, /usr/local/cuda/bin): $tool skipped"
    status=1
    continue
  fi
  step "B: compute-sanitizer $tool over '$filter'" "${LIMIT_SANITIZER:-60}" \
    in_b "$sanitizer" --tool "$tool" --error-exitcode 3 "${dir[B]}/bin/cuda_kernels_gpu_test" --gtest_brief=1 \
    --gtest_filter="$filter"
done
echo "#### done after $(($(date +%s) - start)) s of $budget; exit $status"
exit $status
