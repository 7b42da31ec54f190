#!/usr/bin/env bash
# Two builds on one GPU, side by side, in one command: is build B faster than build A?
# The same runs on both, alternating A, B, A, B ... so that the card's clock and temperature drift
# reach both alike. Runs of one build on different days differ by 2–3% (docs/benchmarks.md), more
# than many kernel changes gain, so a change is judged only against its base measured beside it.
#   1. kernel_bench --filter FILTER --iters ITERS on each build, ROUNDS times; then per case the
#      median time of A's runs and of B's and the ratio B / A (below 1: B is faster);
#   2. TRAIN=1: bench/gpu/train.sh's reclm run of PRESET on each build (no PyTorch), ROUNDS times;
#      then each run's tokens/s and median step, and B / A of the medians;
#   3. NCU_KERNELS='NAME|NAME...': per build and kernel name one Nsight Compute profile of its
#      second launch in the kernel_bench cases of NCU_FILTER (at the card's own clock:
#      --clock-control none): throughput, occupancy, launch, warp-state (stall) and memory sections;
#      a summary printed, the report kept in OUT/ncu_B_NAME.txt.
#
#   bench/gpu/ab_builds.sh A_DIR B_DIR
#
# A_DIR, B_DIR: build folders with bin/kernel_bench (and bin/reclm for TRAIN=1), for example two
# archives of bench/gpu/pack_prebuilt.sh unpacked into two folders (mkdir A && tar -xJf a.tar.xz
# -C A --strip-components=1); their env.sh is sourced, each build's runs in a subshell of their
# own. OUT and the runs' folders are under the repository root.
# Environment:
#   FILTER=histories   the kernel_bench cases (a substring of their names; "" for all)
#   ITERS=100          kernel_bench --iters
#   ROUNDS=2           how many times each build runs
#   TRAIN=0            1: also the training runs; PRESET=gpu_350m TRAIN_STEPS=40 TRAIN_SKIP=20
#   NCU_KERNELS=       e.g. 'attention_forward_kernel|attention_backward_dkdv_kernel': the ncu profiles
#   NCU_FILTER=+rope   their kernel_bench cases (default: the trainer's own attention calls)
#   OUT=runs/ab_builds logs
# Exit status: non-zero when a run failed; which build is faster only shows in the tables.
set -uo pipefail
[ $# -eq 2 ] || { echo "usage: ab_builds.sh A_DIR B_DIR" >&2; exit 2; }
declare -A dir=([A]=$(realpath -m "$1") [B]=$(realpath -m "$2"))  # (before the cd below)
cd "$(dirname "$0")/../.." || exit 1
for b in A B; do
  [ -x "${dir[$b]}/bin/kernel_bench" ] || { echo "ab_builds.sh: ${dir[$b]}/bin/kernel_bench not found" >&2; exit 2; }
done
filter=${FILTER-histories}
iters=${ITERS:-100}
rounds=${ROUNDS:-2}
out=${OUT:-runs/ab_builds}
mkdir -p "$out"
status=0

# in_build B CMD...: CMD with build B's libraries (its env.sh), in a subshell
in_build() {
  local b=$1
  shift
  (
    # shellcheck disable=SC1091
    [ -f "${dir[$b]}/env.sh" ] && source "${dir[$b]}/env.sh"
    "$@"
  )
}

nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader 2> /dev/null ||
  echo "ab_builds.sh: nvidia-smi not available"
echo "A: ${dir[A]}  B: ${dir[B]}"
for b in A B; do
  [ -f "${dir[$b]}/commit" ] && echo "$b: commit $(cat "${dir[$b]}/commit")"
done

for r in $(seq 1 "$rounds"); do
  for b in A B; do
    log=$out/kernels_${b}_$r.log
    echo "== round $r, build $b: kernel_bench --filter '$filter' --iters $iters"
    if ! in_build "$b" "${dir[$b]}/bin/kernel_bench" --filter "$filter" --iters "$iters" > "$log" 2>&1; then
      echo "ab_builds.sh: kernel_bench failed on $b (log $log):"; tail -n 5 "$log"; status=1
    fi
    tail -n 1 "$log"
  done
done
echo
echo "== kernels: median ms of $rounds runs each (B / A below 1: B is faster)"
python3 - "$out" "$rounds" << 'EOF'
import re, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
times = {"A": {}, "B": {}}
order = []
for b in "AB":
    for r in range(1, rounds + 1):
        try:
            lines = open(f"{out}/kernels_{b}_{r}.log").read().splitlines()
        except OSError:
            continue
        for line in lines:  # "%-58s %10.4f %10.1f %8.2fx ..." (names hold spaces)
            m = re.match(r"(.*?)\s+([0-9]+\.[0-9]{4})\s+[0-9.]+\s+[0-9.]+x(\s|$)", line)
            if not m:
                continue
            name, ms = m.group(1), float(m.group(2))
            if name not in order:
                order.append(name)
            times[b].setdefault(name, []).append(ms)
print(f"{'case':58s} {'A ms':>9s} {'B ms':>9s} {'B / A':>7s}")
for name in order:
    a, b = times["A"].get(name), times["B"].get(name)
    fa = f"{statistics.median(a):9.4f}" if a else f"{'-':>9s}"
    fb = f"{statistics.median(b):9.4f}" if b else f"{'-':>9s}"
    ratio = f"{statistics.median(b) / statistics.median(a):7.3f}" if a and b and statistics.median(a) > 0 \
        else f"{'-':>7s}"
    print(f"{name:58s} {fa} {fb} {ratio}")
EOF

if [ "${TRAIN:-0}" != 0 ]; then
  preset=${PRESET:-gpu_350m}
  declare -A tps=() median=()
  for r in $(seq 1 "$rounds"); do
    for b in A B; do
      log=$out/train_${b}_$r.log
      echo "== round $r, build $b: $preset, ${TRAIN_STEPS:-40} steps"
      in_build "$b" env RECLM_PREBUILT=1 RECLM_SKIP_GPU_TESTS=1 TORCH=0 PRESETS="$preset" \
        TRAIN_STEPS="${TRAIN_STEPS:-40}" TRAIN_SKIP="${TRAIN_SKIP:-20}" BENCH_DIR="$out/train_${b}_$r" \
        bench/gpu/train.sh "${dir[$b]}" > "$log" 2>&1 || status=1
      line=$(grep '^reclm: ' "$log" | tail -n 1)
      echo "${line:-ab_builds.sh: no result (log $log)}"
      grep '^gpu: ' "$log" | head -n 1
      # "reclm: N steps after S warm-up: T tokens/step, X tokens/s, MFU M, device memory D MiB; median step Z ms"
      tps[$b]+="$(sed -n 's/.* \([0-9.]*\) tokens\/s,.*/\1/p' <<< "$line") "
      median[$b]+="$(sed -n 's/.*median step \([0-9.]*\) ms.*/\1/p' <<< "$line") "
    done
  done
  echo
  echo "== training, $preset: tokens/s of each run, the median step (ms) after it"
  for b in A B; do echo "$b: tokens/s ${tps[$b]}  median step ${median[$b]}"; done
  python3 - "${tps[A]}" "${tps[B]}" << 'EOF'
import statistics, sys
a, b = ([float(x) for x in s.split()] for s in sys.argv[1:3])
if a and b:
    print(f"B / A of the median tokens/s: {statistics.median(b) / statistics.median(a):.3f}")
EOF
fi

if [ -n "${NCU_KERNELS:-}" ]; then
  ncu=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
  ncu_filter=${NCU_FILTER-+rope}
  if [ ! -x "$ncu" ]; then
    echo "ab_builds.sh: ncu not found (looked on PATH and in /usr/local/cuda/bin)"; status=1
  else
    IFS='|' read -r -a kernels <<< "$NCU_KERNELS"
    for b in A B; do
      for kernel in "${kernels[@]}"; do
        report=$out/ncu_${b}_$kernel.txt
        echo "== Nsight Compute, build $b: $kernel, its second launch in the cases '$ncu_filter'"
        # the second launch: the first one of a case is its warm-up
        sections=(--section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats
                  --section SchedulerStats --section MemoryWorkloadAnalysis)
        run_ncu() {
          in_build "$b" "$ncu" --clock-control none --kernel-name "regex:$kernel" --launch-skip 1 --launch-count 1 \
            "${sections[@]}" "$@" "${dir[$b]}/bin/kernel_bench" --filter "$ncu_filter" --iters 3 > "$report" 2>&1
        }
        # (the stall reasons' table needs --print-details all; an ncu without it gets the sections alone)
        if run_ncu --print-details all || run_ncu; then
          grep -E 'Context [0-9]+, Stream|Duration|Throughput|Occupancy|Registers Per Thread|Block Limit|Warp Cycles|Issued Warp|No Eligible|Stall|L1/TEX Hit|L2 Hit' \
            "$report" | head -n 60
        else
          echo "ab_builds.sh: ncu failed on $b (report $report):"; tail -n 10 "$report"; status=1
        fi
      done
    done
  fi
fi
exit $status
