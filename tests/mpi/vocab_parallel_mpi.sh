#!/usr/bin/env bash
# Vocabulary parallelism through the real binary (ctest label `mpi`), CPU ranks over TCP, on the
# synthetic recommendation dataset (ID mode: the item softmax is the sharded one):
#  1. runtime.vocab_parallel on 2 and 3 ranks trains like plain data parallelism on the same
#     ranks and like 1 process with the same global batch (untied head too);
#  2. its model.h5 holds the whole tables: `reclm eval` on it gives the plain run's metrics;
#  3. its checkpoints (assembled on rank 0) verify and resume on 3 ranks with vocab_parallel and
#     on 1 process, continuing the trajectory;
#  4. vocab_parallel with optim.zero1, and on text data without items, is refused with exit 2
#     naming the field.
set -euo pipefail
source "$(dirname "$0")/../e2e/lib/common.bash"
MPIRUN=("$RECLM_SOURCE_DIR/scripts/mpirun.sh" --mca btl self,tcp --mca btl_tcp_if_include lo
        --mca oob_tcp_if_include lo)

"$RECLM" prepare --synthetic --out "$work/synthetic.h5" > "$work/prepare.txt" 2>&1 || { cat "$work/prepare.txt"; fail "prepare"; }
base=(--config "$RECLM_SOURCE_DIR/configs/tiny_rec.pbtxt" --set data.dataset="$work/synthetic.h5"
      --set train.steps=16 --set runtime.threads=1 --set model.dropout=0 --set train.log_every=4
      --set eval.val_every=8 --set checkpoint.every=8)
source "$(dirname "$0")/lib/runs.bash"
train() {  # train NAME NP EXTRA...
  local name=$1 np=$2
  shift 2
  local launcher=("${MPIRUN[@]}" -np "$np")
  [ "$np" -eq 1 ] && launcher=()
  "${launcher[@]}" "$RECLM" train "${base[@]}" --set train.micro_batch=$((12 / np)) \
    --set train.run_dir="$work/$name" "$@" > "$work/$name.txt" 2>&1 || { cat "$work/$name.txt"; fail "$name"; }
}

# 1. Same training with and without vocabulary parallelism.
train np1 1
for tied in true false; do
  for np in 2 3; do
    train plain_${tied}_np$np $np --set model.tie_embeddings=$tied
    train vp_${tied}_np$np $np --set model.tie_embeddings=$tied --set runtime.vocab_parallel=true
    grep -q "vocab_parallel: this rank holds item rows" "$work/vp_${tied}_np$np.txt" || { cat "$work/vp_${tied}_np$np.txt"; fail "vp $np ranks: not sharded"; }
    same_losses "$(losses "$work/plain_${tied}_np$np/metrics.jsonl" "train val")" "$(losses "$work/vp_${tied}_np$np/metrics.jsonl" "train val")" 1e-5 ||
      fail "vocab_parallel on $np ranks (tied $tied) trains differently from plain data parallelism"
  done
done
same_losses "$(losses "$work/np1/metrics.jsonl" "train val")" "$(losses "$work/vp_true_np3/metrics.jsonl" "train val")" 1e-4 ||
  fail "vocab_parallel on 3 ranks does not train like 1 process with the same global batch"

# 2. The saved model holds whole tables: evaluation equals the plain run's.
for run in plain_true_np2 vp_true_np2; do
  "$RECLM" eval --run "$work/$run" --split test --set eval.max_users=300 --out "$work/$run.eval.json" > "$work/$run.eval.txt" 2>&1 || { cat "$work/$run.eval.txt"; fail "eval $run"; }
done
python3 - "$work/plain_true_np2.eval.json" "$work/vp_true_np2.eval.json" <<'PY' || fail "eval of the vocab_parallel model differs from the plain one"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
def numbers(x, path=""):
    if isinstance(x, dict):
        for k, v in x.items(): yield from numbers(v, path + "." + k)
    elif isinstance(x, (int, float)) and not isinstance(x, bool):
        yield path, float(x)
na, nb = dict(numbers(a)), dict(numbers(b))
worst = max((abs(na[k] - nb[k]) for k in na if "seconds" not in k and "time" not in k), default=0.0)
print(f"eval: {len(na)} numbers, worst difference {worst:.2e}")
sys.exit(0 if na.keys() == nb.keys() and worst <= 1e-4 else 1)
PY

# 3. Checkpoints: verify, and resume on 3 ranks (vocab_parallel) and on 1 process from step 8.
ckpt="$work/vp_true_np2/checkpoints/step_00000008"
"$RECLM" info "$ckpt" --verify > "$work/verify.txt" 2>&1 || { cat "$work/verify.txt"; fail "the vocab_parallel checkpoint does not verify"; }
for np in 3 1; do
  run="$work/resume_np$np"
  resume_dir_from "$work/vp_true_np2" "$run" 00000008
  train resume_np$np $np --set runtime.vocab_parallel=true --resume auto
  grep -q "continuing at step 9 of 16" "$work/resume_np$np.txt" || { cat "$work/resume_np$np.txt"; fail "resume on $np: not at step 9"; }
  same_losses "$(losses "$work/vp_true_np2/metrics.jsonl" | cut -d' ' -f9-)" "$(losses "$run/metrics.jsonl")" 1e-4 ||
    fail "resumed on $np ranks: the trajectory differs from the run that saved it"
done

# 4. Refused combinations.
set +e
"$RECLM" train "${base[@]}" --set runtime.vocab_parallel=true --set optim.zero1=true --set train.run_dir="$work/refused" > "$work/refused.txt" 2>&1
code=$?
set -e
[ $code -eq 2 ] && grep -q "field runtime.vocab_parallel: cannot be combined with optim.zero1" "$work/refused.txt" ||
  { cat "$work/refused.txt"; fail "vocab_parallel + zero1: exit $code"; }
# Text data has no item block to shard: every rank stops with exit 2 naming the field.
set +e
"${MPIRUN[@]}" -np 2 "$RECLM" train --config "$RECLM_SOURCE_DIR/configs/tiny.pbtxt" --set runtime.threads=1 \
  --set runtime.vocab_parallel=true --set train.run_dir="$work/text" > "$work/text.txt" 2>&1
code=$?
set -e
[ $code -eq 2 ] && grep -q "field runtime.vocab_parallel: the data has no item tokens to shard" "$work/text.txt" ||
  { cat "$work/text.txt"; fail "vocab_parallel on text data: exit $code"; }
echo "vocab_parallel: equals plain data parallelism (2, 3 ranks, tied and untied), eval, checkpoints and resume OK"
