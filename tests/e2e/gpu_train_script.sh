#!/usr/bin/env bash
# bench/gpu/train.sh without a GPU: the prebuilt CPU reclm on tiny dims, with a stand-in
# nvidia-smi on PATH, checks the script's own logic: the GPU clock/power summary (`gpu:` lines)
# from the samples taken while each run trains, a VARIANTS row beside the default run, and no
# summary (and no failure) when nvidia-smi cannot answer the query.
source "$(dirname "$0")/lib/common.bash"
build=$(dirname "$(dirname "$RECLM")")

# The stand-in: the query probes answer; -lms streams one sample per 0.05 s, as a GPU at 1700 MHz
# and 650 W under its power cap would (reasons 0x4). FAKE_SMI_BROKEN=1: every call fails.
mkdir -p "$work/bin"
cat > "$work/bin/nvidia-smi" << 'EOF'
#!/usr/bin/env bash
[ -n "${FAKE_SMI_BROKEN:-}" ] && exit 9
case "$*" in
  *-lms*) while true; do echo "1700, 650.0, 61, 0x0000000000000004"; sleep 0.05; done ;;
  *--query-gpu=name*) echo "Fake GPU, 0.0, 1 MiB, 1700 MHz" ;;
  *) echo "1700, 650.0, 61, 0x0000000000000004" ;;
esac
EOF
chmod +x "$work/bin/nvidia-smi"

run_script() {  # extra environment as arguments; output in $work/out.txt
  env PATH="$work/bin:$PATH" RECLM_PREBUILT=1 RECLM_SKIP_GPU_TESTS=1 PRESETS=gpu_125m TRAIN_STEPS=3 TRAIN_SKIP=1 \
    BENCH_DIR="$work/bench" TORCH_DEVICE=cpu "$@" \
    TRAIN_SET="runtime.device=cpu runtime.threads=1 model.n_layers=1 model.d_model=64 model.n_heads=2 \
model.n_kv_heads=1 model.d_ff=128 train.micro_batch=4" \
    bash bench/gpu/train.sh "$build" > "$work/out.txt" 2>&1
}

run_script VARIANTS="lower-lr:train.lr=1e-4" || { cat "$work/out.txt"; fail "train.sh failed"; }
grep -q "^gpu: [0-9]* samples while busy: SM clock mean 1700 MHz, lowest 1700; power mean 650 W; temperature max 61 C; clock limited by power cap 100%, thermal 0%, hardware slowdown 0% of samples" \
  "$work/out.txt" || { cat "$work/out.txt"; fail "no (or a wrong) gpu: summary"; }
[ "$(grep -c '^gpu: ' "$work/out.txt")" -eq 2 ] || { cat "$work/out.txt"; fail "want a gpu: line for the run and the variant"; }
# the variant row: tokens/s, MFU, median step and the device plan's MiB (0 on the CPU), then the default's, the ratio
grep -Eq '^gpu_125m +lower-lr +[0-9.]+ +[0-9.]+% +[0-9.]+ +[0-9]+ +[0-9.]+ +[0-9.]+% +[0-9.]+ +[0-9]+ +[0-9.]+x$' \
  "$work/out.txt" || { cat "$work/out.txt"; fail "no (or a wrong) variant row"; }
grep -Eq '^preset +variant +tok/s +MFU +median ms +MiB +default tok/s +MFU +median ms +MiB +ratio$' "$work/out.txt" ||
  { cat "$work/out.txt"; fail "no (or a wrong) variant table header"; }

FAKE_SMI_BROKEN=1 run_script || { cat "$work/out.txt"; fail "train.sh failed with an unanswering nvidia-smi"; }
! grep -q '^gpu: ' "$work/out.txt" || { cat "$work/out.txt"; fail "a gpu: line without samples"; }
echo "gpu_train_script: ok"
