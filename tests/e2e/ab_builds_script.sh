#!/usr/bin/env bash
# bench/gpu/ab_builds.sh without a GPU: two stand-in builds whose kernel_bench prints known times
# check the script's own logic (runs alternate A, B; per case the median of each build's runs and
# B / A; a case one build lacks; a failing run turns the exit status non-zero), and with TRAIN=1
# the CPU reclm on tiny dims trains once per build and round through bench/gpu/train.sh.
source "$(dirname "$0")/lib/common.bash"

# make_build NAME TIMES...: NAME/bin/kernel_bench prints, on its k-th run, the case "history
# forward" at the k-th of TIMES ms (the first again past the last) and "history backward" at
# twice that, in kernel_bench's format ("%-58s %10.4f ..."); it logs its arguments, and exits 1
# when FAIL_BENCH names NAME.
make_build() {
  local name=$1
  shift
  mkdir -p "$work/$name/bin"
  echo "$*" > "$work/$name/times"
  ln -s "$RECLM" "$work/$name/bin/reclm"
  cat > "$work/$name/bin/kernel_bench" << EOF
#!/usr/bin/env bash
echo "\$*" >> "$work/$name/calls"
[ "\${FAIL_BENCH:-}" = "$name" ] && { echo "kernel_bench: broken"; exit 1; }
runs=\$(wc -l < "$work/$name/calls")
read -r -a times < "$work/$name/times"
ms=\${times[\$(((runs - 1) % \${#times[@]}))]}
echo "device: Fake GPU (sm_90), device-to-device copy: 3000.0 GB/s (1 GiB in 0.358 ms)"
printf '%-58s %10s %10s %9s %s\n' kernel "time ms" GB/s "vs copy" target
printf '%-58s %10.4f %10.1f %8.2fx %.1f TFLOP/s\n' "history forward" "\$ms" 100.0 0.03 50.0
printf '%-58s %10.4f %10.1f %8.2fx %.1f TFLOP/s\n' "history backward" "\$(awk -v m="\$ms" 'BEGIN { print 2 * m }')" 100.0 0.03 40.0
[ "$name" = A ] && printf '%-58s %10.4f %10.1f %8.2fx %s\n' "only in A" 1.0 100.0 0.03 ""
echo "0 memory-bound case(s) below 80% of copy bandwidth; building the cases took 0.1 s"
EOF
  chmod +x "$work/$name/bin/kernel_bench"
}
make_build A 0.2 0.4 0.3
make_build B 0.1 0.1 0.1

ROUNDS=3 FILTER=history ITERS=7 OUT="$work/out" bash bench/gpu/ab_builds.sh "$work/A" "$work/B" > "$work/log.txt" 2>&1 ||
  { cat "$work/log.txt"; fail "ab_builds.sh failed"; }
# every run got the filter and iterations, three runs per build, alternating (round 1: A then B)
[ "$(sort -u "$work/A/calls")" = "--filter history --iters 7" ] || { cat "$work/A/calls"; fail "wrong kernel_bench arguments"; }
[ "$(wc -l < "$work/B/calls")" -eq 3 ] || fail "want 3 runs of B"
grep -q "== round 1, build A" "$work/log.txt" && grep -q "== round 3, build B" "$work/log.txt" ||
  { cat "$work/log.txt"; fail "no round headers"; }
[ "$(grep -n '== round' "$work/log.txt" | head -n 2 | cut -d' ' -f5 | tr -d '\n:')" = AB ] ||
  { cat "$work/log.txt"; fail "runs do not alternate A, B"; }
# medians: A forward 0.3 (of 0.2, 0.4, 0.3), B 0.1: 0.333; backward twice both: the same ratio
grep -Eq '^history forward +0\.3000 +0\.1000 +0\.333$' "$work/log.txt" || { cat "$work/log.txt"; fail "wrong forward row"; }
grep -Eq '^history backward +0\.6000 +0\.2000 +0\.333$' "$work/log.txt" || { cat "$work/log.txt"; fail "wrong backward row"; }
grep -Eq '^only in A +1\.0000 +- +-$' "$work/log.txt" || { cat "$work/log.txt"; fail "a case only A has: want - for B"; }

# folders given relative to the caller's directory
(cd "$work" && ROUNDS=1 OUT="$work/out_rel" bash "$RECLM_SOURCE_DIR/bench/gpu/ab_builds.sh" A B > "$work/log_rel.txt" 2>&1) ||
  { cat "$work/log_rel.txt"; fail "relative folders"; }
grep -Eq '^history forward +[0-9.]+ +0\.1000 +[0-9.]+$' "$work/log_rel.txt" || { cat "$work/log_rel.txt"; fail "relative folders: no row"; }

# a failing kernel_bench: reported, the exit status non-zero, the other build still measured
rm -f "$work/A/calls" "$work/B/calls"
if FAIL_BENCH=B ROUNDS=1 OUT="$work/out2" bash bench/gpu/ab_builds.sh "$work/A" "$work/B" > "$work/log2.txt" 2>&1; then
  cat "$work/log2.txt"; fail "exit 0 with a failing kernel_bench"
fi
grep -q "kernel_bench failed on B" "$work/log2.txt" || { cat "$work/log2.txt"; fail "the failure is not named"; }
grep -Eq '^history forward +0\.2000 +- +-$' "$work/log2.txt" || { cat "$work/log2.txt"; fail "A's row missing"; }

# a wrong call: usage, exit 2
set +e
bash bench/gpu/ab_builds.sh "$work/A" > "$work/log3.txt" 2>&1; code=$?
bash bench/gpu/ab_builds.sh "$work/A" "$work/nowhere" > "$work/log4.txt" 2>&1; code4=$?
set -e
[ "$code" -eq 2 ] && grep -q "usage: ab_builds.sh A_DIR B_DIR" "$work/log3.txt" || fail "one folder: want the usage and exit 2"
[ "$code4" -eq 2 ] && grep -q "$work/nowhere/bin/kernel_bench not found" "$work/log4.txt" ||
  { cat "$work/log4.txt"; fail "a folder without kernel_bench: want its name and exit 2"; }

# TRAIN=1: each build's reclm trains through train.sh (no PyTorch), and B / A of the tokens/s
TRAIN=1 ROUNDS=1 PRESET=gpu_125m TRAIN_STEPS=3 TRAIN_SKIP=1 OUT="$work/out5" \
  TRAIN_SET="runtime.device=cpu runtime.threads=1 model.n_layers=1 model.d_model=64 model.n_heads=2 \
model.n_kv_heads=1 model.d_ff=128 train.micro_batch=4" \
  bash bench/gpu/ab_builds.sh "$work/A" "$work/B" > "$work/log5.txt" 2>&1 || { cat "$work/log5.txt"; fail "TRAIN=1 failed"; }
[ "$(grep -c '^reclm: 2 steps after 1 warm-up: ' "$work/log5.txt")" -eq 2 ] ||
  { cat "$work/log5.txt"; fail "want one training result per build"; }
grep -q "TORCH=0: peer skipped" "$work/out5/train_A_1.log" || fail "train.sh ran the PyTorch peer"
grep -Eq '^B / A of the median tokens/s: [0-9]+\.[0-9]{3}$' "$work/log5.txt" || { cat "$work/log5.txt"; fail "no B / A line"; }
echo "ab_builds_script: ok"
