#!/usr/bin/env bash
# Data-parallel training under mpirun (ctest label `mpi`), CPU ranks over TCP:
#  1. N ranks with micro_batch m equal 1 rank with micro_batch N·m (same samples; the train and
#     validation loss sequences agree to summation-order rounding), N = 2 and 3; gradient
#     buckets all-reduced during backward equal one all-reduce after it;
#  2. saved by 2 ranks, resumed by 3 and by 1: training continues on the same trajectory;
#  3. ZeRO-1 trains like plain data parallelism on 2 and 3 ranks (and under LoRA); its
#     checkpoints list one optimizer shard per rank and verify;
#  4. a ZeRO-1 checkpoint of 2 ranks resumes on 3 (ZeRO-1) and 1; a plain one on 3 with ZeRO-1.
#  5. faults end the job, never hang: a rank killed with SIGKILL, a rank stopped (SIGSTOP: the
#     others time out after runtime.comm_timeout_s), a rank that fails (rank 0 cannot save a
#     checkpoint, on_failure STOP; with and without ZeRO-1) — each exits non-zero within
#     seconds, naming the rank; a rank other than 0 that cannot write its ZeRO-1 shard is named
#     by rank 0, and the policy (CONTINUE / STOP) applies to the whole job.
set -euo pipefail
source "$(dirname "$0")/../e2e/lib/common.bash"
# TCP between ranks, as across nodes (DESIGN.md §6), over loopback so no network is needed.
MPIRUN=("$RECLM_SOURCE_DIR/scripts/mpirun.sh" --mca btl self,tcp --mca btl_tcp_if_include lo
        --mca oob_tcp_if_include lo)

base=(--config configs/tiny.pbtxt --set train.steps=16 --set eval.val_every=8 --set runtime.threads=1
      --set model.dropout=0 --set checkpoint.every=8 --set train.log_every=4)
source "$(dirname "$0")/lib/runs.bash"

# 1. Equivalence: 1 rank × micro_batch 12 vs 2 × 6 vs 3 × 4, gradients all-reduced in small
#    buckets during backward (several per layer); and the same ranks with one all-reduce after
#    backward (grad_bucket_mb 0) give the same losses — bitwise on 2 ranks, where a + b is the
#    only summation order.
"$RECLM" train "${base[@]}" --set train.micro_batch=12 --set train.run_dir="$work/np1" > "$work/np1.txt" 2>&1 || { cat "$work/np1.txt"; fail "1 rank"; }
for np in 2 3; do
  "${MPIRUN[@]}" -np $np "$RECLM" train "${base[@]}" --set train.micro_batch=$((12 / np)) \
    --set runtime.grad_bucket_mb=0.004 \
    --set train.run_dir="$work/np$np" > "$work/np$np.txt" 2>&1 || { cat "$work/np$np.txt"; fail "$np ranks"; }
  grep -q "× $np ranks" "$work/np$np.txt" || { cat "$work/np$np.txt"; fail "$np ranks: the log does not show $np ranks"; }
  grep -Eq "gradients: [0-9]+ buckets of ~0.004 MiB" "$work/np$np.txt" &&
    grep -Eq "comm, [0-9]+% overlapped" "$work/np$np.txt" || { cat "$work/np$np.txt"; fail "$np ranks: no bucketed all-reduce in the log"; }
  same_losses "$(losses "$work/np1/metrics.jsonl" "train val")" "$(losses "$work/np$np/metrics.jsonl" "train val")" 1e-4 ||
    fail "$np ranks do not train (and validate) like 1 rank with the same global batch"
  "${MPIRUN[@]}" -np $np "$RECLM" train "${base[@]}" --set train.micro_batch=$((12 / np)) \
    --set runtime.grad_bucket_mb=0 --set checkpoint.every=0 \
    --set train.run_dir="$work/np${np}_after" > "$work/np${np}_after.txt" 2>&1 || { cat "$work/np${np}_after.txt"; fail "$np ranks, no buckets"; }
  grep -q "one all-reduce after backward" "$work/np${np}_after.txt" || fail "$np ranks: grad_bucket_mb 0 still buckets"
  tolerance=1e-6
  [ $np -eq 2 ] && tolerance=0
  same_losses "$(losses "$work/np${np}_after/metrics.jsonl")" "$(losses "$work/np$np/metrics.jsonl")" $tolerance ||
    fail "$np ranks: bucketed all-reduce during backward trains differently from one all-reduce after it"
done

# 2. Saved by 2 ranks at step 8, resumed by 3 ranks and by 1 (same global batch).
for np in 3 1; do
  run="$work/resume_np$np"
  resume_dir_from "$work/np2" "$run" 00000008
  launcher=("${MPIRUN[@]}" -np $np)
  [ $np -eq 1 ] && launcher=()
  "${launcher[@]}" "$RECLM" train "${base[@]}" --set train.micro_batch=$((12 / np)) \
    --set train.run_dir="$run" --resume auto > "$work/resume$np.txt" 2>&1 || { cat "$work/resume$np.txt"; fail "resume on $np ranks"; }
  grep -q "continuing at step 9 of 16" "$work/resume$np.txt" || { cat "$work/resume$np.txt"; fail "resume on $np ranks did not continue at step 9"; }
  same_losses "$(losses "$work/np2/metrics.jsonl" | cut -d' ' -f9-)" "$(losses "$run/metrics.jsonl")" 1e-4 ||
    fail "resumed on $np ranks: the trajectory differs from the 2-rank run"
done

# 3. ZeRO-1 (optim.zero1): the same loss sequence as plain data parallelism on 2 and 3 ranks;
#    checkpoints written cooperatively (one optimizer shard per rank, all in the manifest),
#    synchronously on 2 ranks and in the background (checkpoint.async, the default) on 3.
for np in 2 3; do
  run="$work/zero1_np$np"
  "${MPIRUN[@]}" -np $np "$RECLM" train "${base[@]}" --set train.micro_batch=$((12 / np)) \
    --set optim.zero1=true --set checkpoint.async=$([ $np -eq 3 ] && echo true || echo false) \
    --set train.run_dir="$run" > "$run.txt" 2>&1 || { cat "$run.txt"; fail "zero1 on $np ranks"; }
  grep -q "zero1: optimizer state sharded over $np ranks" "$run.txt" || { cat "$run.txt"; fail "zero1 on $np ranks: not sharded"; }
  same_losses "$(losses "$work/np$np/metrics.jsonl")" "$(losses "$run/metrics.jsonl")" 1e-4 ||
    fail "zero1 on $np ranks does not train like plain data parallelism"
  for step in 00000008 00000016; do
    ckpt="$run/checkpoints/step_$step"
    shards=$(grep -c "^optimizer_shards {" "$ckpt/manifest.pbtxt" || true)
    [ "$shards" = "$np" ] || { cat "$ckpt/manifest.pbtxt"; fail "zero1 on $np ranks: the manifest lists $shards optimizer shards, not $np"; }
    grep -q "^world_size: $np$" "$ckpt/manifest.pbtxt" || fail "zero1 on $np ranks: manifest world_size is not $np"
    for ((r = 0; r < np; ++r)); do
      [ -f "$ckpt/$(printf 'optim_shard_%05d_of_%05d.h5' $r $np)" ] || { ls "$ckpt"; fail "zero1 on $np ranks: shard $r missing"; }
    done
    "$RECLM" info "$ckpt" --verify > "$run.verify.txt" 2>&1 || { cat "$run.verify.txt"; fail "zero1 on $np ranks: checkpoint $step does not verify"; }
  done
done

# Under LoRA (frozen base weights, which ZeRO-1 never exchanges or updates) as well.
for z in false true; do
  "${MPIRUN[@]}" -np 3 "$RECLM" train "${base[@]}" --set train.steps=6 --set eval.val_every=0 \
    --set checkpoint.every=0 --set model.lora.rank=2 --set train.micro_batch=4 --set optim.zero1=$z \
    --set train.run_dir="$work/lora_zero1_$z" > "$work/lora_zero1_$z.txt" 2>&1 || { cat "$work/lora_zero1_$z.txt"; fail "LoRA, zero1 $z"; }
done
grep -q "zero1: optimizer state sharded" "$work/lora_zero1_true.txt" || fail "LoRA with zero1: not sharded"
same_losses "$(losses "$work/lora_zero1_false/metrics.jsonl")" "$(losses "$work/lora_zero1_true/metrics.jsonl")" 1e-4 ||
  fail "LoRA: zero1 on 3 ranks does not train like plain data parallelism"

# 4. A zero1 checkpoint saved by 2 ranks resumes on 3 ranks with zero1 and on 1 rank (no
#    sharding), and a plain 2-rank checkpoint resumes on 3 ranks with zero1: each continues the
#    2-rank trajectory from step 9.
resume_from() {  # resume_from NAME SOURCE_RUN NP ZERO1
  local run="$work/$1" np=$3
  resume_dir_from "$2" "$run" 00000008
  local launcher=("${MPIRUN[@]}" -np $np)
  [ $np -eq 1 ] && launcher=()
  "${launcher[@]}" "$RECLM" train "${base[@]}" --set train.micro_batch=$((12 / np)) --set optim.zero1=$4 \
    --set train.run_dir="$run" --resume auto > "$run.txt" 2>&1 || { cat "$run.txt"; fail "$1"; }
  grep -q "continuing at step 9 of 16" "$run.txt" || { cat "$run.txt"; fail "$1 did not continue at step 9"; }
  same_losses "$(losses "$2/metrics.jsonl" | cut -d' ' -f9-)" "$(losses "$run/metrics.jsonl")" 1e-4 ||
    fail "$1: the trajectory differs from the run that saved it"
}
resume_from zero1_resume_np3 "$work/zero1_np2" 3 true
resume_from zero1_resume_np1 "$work/zero1_np2" 1 false
resume_from plain_to_zero1_np3 "$work/np2" 3 true

# 5. Faults. Each must end the job (exit non-zero) well within the time limit.
long=(--config configs/tiny.pbtxt --set train.steps=100000 --set eval.val_every=0 --set runtime.threads=1
      --set checkpoint.every=0 --set runtime.comm_timeout_s=4)
rank_pid() {  # pid of rank $1 of the job training into run dir $2 (OMPI_COMM_WORLD_RANK in its environment)
  for pid in $(pgrep -f "train.run_dir=$2"); do
    [ "$(tr '\0' '\n' < /proc/$pid/environ 2>/dev/null | sed -n 's/^OMPI_COMM_WORLD_RANK=//p')" = "$1" ] && { echo "$pid"; return 0; }
  done
  return 0  # not started yet: the caller polls
}
fault() {  # fault NAME SIGNAL RANK PATTERN
  "${MPIRUN[@]}" -np 3 "$RECLM" train "${long[@]}" --set train.run_dir="$work/$1" > "$work/$1.txt" 2>&1 &
  local job=$! pid=""
  for _ in $(seq 100); do pid=$(rank_pid "$3" "$work/$1"); [ -n "$pid" ] && grep -q "step " "$work/$1.txt" && break; sleep 0.2; done
  [ -n "$pid" ] || { kill -9 $job; cat "$work/$1.txt"; fail "$1: rank $3 not found"; }
  local start=$SECONDS
  kill -"$2" "$pid"
  local code=0
  while kill -0 $job 2>/dev/null && [ $((SECONDS - start)) -lt 60 ]; do sleep 0.1; done
  kill -0 $job 2>/dev/null && { kill -9 $job; cat "$work/$1.txt"; fail "$1: the job did not end within 60 s"; }
  wait $job || code=$?
  [ "$2" = STOP ] && kill -CONT "$pid" 2>/dev/null || true
  [ $code -ne 0 ] || { cat "$work/$1.txt"; fail "$1: the job exited 0"; }
  grep -q "$4" "$work/$1.txt" || { cat "$work/$1.txt"; fail "$1: no message matching '$4'"; }
  echo "$1: job ended with exit $code after $((SECONDS - start)) s"
}
fault killed KILL 1 "rank 1\|exited on signal 9\|killed"
fault stalled STOP 2 "has waited"
# A rank that fails alone (rank 0 cannot create its checkpoint directory — a path through a
# regular file — with on_failure STOP) ends the whole job at once with its message, instead of
# leaving the other ranks waiting in the next collective.
failing_save() {  # failing_save NAME EXTRA_SETTINGS...
  local name=$1 start=$SECONDS code
  shift
  set +e
  timeout 120 "${MPIRUN[@]}" -np 3 "$RECLM" train "${base[@]}" --set train.micro_batch=4 \
    --set checkpoint.every=2 --set checkpoint.on_failure=STOP --set checkpoint.dir="$work/np1.txt/ckpt" \
    --set train.run_dir="$work/$name" "$@" > "$work/$name.txt" 2>&1
  code=$?
  set -e
  [ $code -ne 0 ] || { cat "$work/$name.txt"; fail "$name: the job exited 0"; }
  [ $code -ne 124 ] || { cat "$work/$name.txt"; fail "$name: the job hung"; }
  grep -q "rank 0: error: checkpoint at step 2 failed" "$work/$name.txt" || { cat "$work/$name.txt"; fail "$name: no message naming rank 0"; }
  echo "$name: job ended with exit $code after $((SECONDS - start)) s"
}
failing_save failing
# The same under ZeRO-1, where every rank takes part in the save: no rank is left waiting.
failing_save failing_zero1 --set optim.zero1=true
# A rank other than 0 cannot write its optimizer shard (ZeRO-1; a 1 KiB file-size limit on rank
# 2 only: a real EFBIG). Rank 0 names rank 2 and the reason; nothing is marked `latest`; with
# CONTINUE the run trains to the end, with STOP the whole job exits 2.
shard_failure() {  # shard_failure POLICY EXPECTED_EXIT [SETTINGS...]
  local policy=$1 expected=$2 start=$SECONDS code name
  shift 2
  name=shard_failure_$policy
  [ $# -eq 0 ] || name+=_sync
  set +e
  timeout 120 "${MPIRUN[@]}" -np 3 bash -c \
    'if [ "$OMPI_COMM_WORLD_RANK" = 2 ]; then ulimit -f 1; fi; exec "$0" "$@"' \
    "$RECLM" train "${base[@]}" --set train.micro_batch=4 --set train.steps=6 --set eval.val_every=0 \
    --set optim.zero1=true --set checkpoint.every=2 --set checkpoint.on_failure=$policy \
    --set train.run_dir="$work/$name" "$@" > "$work/$name.txt" 2>&1
  code=$?
  set -e
  [ $code -eq "$expected" ] || { cat "$work/$name.txt"; fail "$name: exit $code, expected $expected"; }
  grep -q "checkpoint at step 2 failed: rank 2 could not write its optimizer shard: .*optim_shard_00002_of_00003.h5" "$work/$name.txt" ||
    { cat "$work/$name.txt"; fail "$name: no message naming rank 2 and its shard"; }
  [ ! -e "$work/$name/checkpoints/latest" ] || fail "$name: a failed save was marked latest"
  echo "$name: job ended with exit $code after $((SECONDS - start)) s"
}
shard_failure CONTINUE 0
grep -q "step      6/6" "$work/shard_failure_CONTINUE.txt" || fail "shard_failure_CONTINUE: did not train to the end"
shard_failure STOP 2
shard_failure STOP 2 --set checkpoint.async=false  # the synchronous cooperative save too
echo "mpi training: equivalence, resume on 3 and 1 ranks, zero1 (equivalence, cooperative checkpoints, resharded resume), fault handling OK"
