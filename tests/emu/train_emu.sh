#!/usr/bin/env bash
# The GPU training path (runtime.device "cuda") end to end on the host SIMT emulator (ctest label
# `emu`): bin/reclm-emu is the real CLI with the CUDA backend's kernels emulated and its device
# memory in host memory (trainer/device_backend.h). A tiny recommender (tiny_rec, head dim 64):
#  1. the device trains like the CPU backend: the same train and validation loss sequence to
#     bf16 accuracy (grad_accum 2, 8 steps), also with dropout (the same masks) and with LoRA
#     adapters (frozen base weights), and with the residual stream in bf16
#     (runtime.bf16_residual), and writes weights `reclm eval` reads; its ranking
#     evaluation during training (item scores from the device's forward) gives the CPU's metrics
#     up to bf16 near-ties;
#  2. checkpoints are interchangeable: a device run's step-4 checkpoint resumes on the CPU, and
#     a CPU run's on the device, each continuing its source's trajectory;
#  3. activation recomputation (runtime.recompute_activations) trains bitwise the same, and so
#     do steps read one by one (runtime.queued_steps false; also when steps overflow, under
#     train.on_nonfinite STOP and SKIP, and under LoRA) as the default queued steps, and
#     one stream (runtime.second_stream false) as the default side stream, and so do the
#     side stream's GEMMs planned for fewer SMs (RECLM_SIDE_GEMM_SMS) with one buffer of the
#     residual stream's bf16 gradient instead of two (RECLM_RESIDUAL_GRADIENT_BUFFERS=1), both
#     logged, and so does the attention backward's one-block path up to 256 tokens
#     (RECLM_ATTENTION_SEGMENT_BLOCK_MAX_LEN=256, logged);
#  4. under mpirun -np 2 (when MPI is built) the device ranks train like one process with the
#     same global batch, their gradient buckets all-reduced during backward; with ZeRO-1
#     (optim.zero1) 2 device ranks train like the plain 2 ranks, 3 like 3 CPU ranks with ZeRO-1
#     (also under LoRA), and their checkpoints (one optimizer shard per rank) resume on the CPU's
#     ZeRO-1 ranks; with vocabulary parallelism (runtime.vocab_parallel) 2 device ranks (tied
#     head) and 3 (untied) train like as many CPU ranks with it, their checkpoint continues on
#     CPU ranks, and the model they save evaluates;
#  5. RECLM_DEVICE_PROFILE=1 prints the phase table (the side stream's too) and, with
#     runtime.gemm_autotune, what the timed GEMM choice found on each stream (nothing on the
#     emulator's one GEMM), =host the host's wait share, both without the first micro-batch;
#  6. the combinations the backend refuses (head dims other than 32/64/128) exit 2
#     naming runtime.device, a plan too large for the device exits 2 before anything is written,
#     and so does a bad RECLM_GEMM_ALGORITHM_RANK, RECLM_SIDE_GEMM_SMS,
#     RECLM_RESIDUAL_GRADIENT_BUFFERS or RECLM_ATTENTION_SEGMENT_BLOCK_MAX_LEN.
set -euo pipefail
: "${RECLM_EMU:?path of the reclm-emu binary}"
source "$(dirname "$0")/../e2e/lib/common.bash"
source "$(dirname "$0")/../mpi/lib/runs.bash"

"$RECLM" prepare --synthetic --out "$work/syn.h5" > "$work/prepare.txt" 2>&1 || { cat "$work/prepare.txt"; fail "prepare"; }
base=(--config configs/tiny_rec.pbtxt --set data.dataset="$work/syn.h5" --set model.n_heads=1
      --set train.steps=8 --set train.micro_batch=4 --set train.grad_accum=2 --set train.warmup_steps=2
      --set eval.val_every=4 --set eval.rank_every=0 --set checkpoint.every=4 --set train.log_every=1
      --set runtime.threads=1)
# bf16 GEMM and attention operands, bf16 q/k/v and gate/up, against fp32: measured within 1.8e-4 here.
rtol=2e-3

# 1. device vs CPU
"$RECLM" train "${base[@]}" --set train.run_dir="$work/cpu" > "$work/cpu.txt" 2>&1 || { cat "$work/cpu.txt"; fail "cpu run"; }
"$RECLM_EMU" train "${base[@]}" --set runtime.device=cuda --set train.run_dir="$work/dev" > "$work/dev.txt" 2>&1 ||
  { cat "$work/dev.txt"; fail "device run"; }
grep -q "device: SIMT emulator (host)" "$work/dev.txt" || { cat "$work/dev.txt"; fail "the device run does not name its device"; }
same_losses "$(losses "$work/cpu/metrics.jsonl" "train val")" "$(losses "$work/dev/metrics.jsonl" "train val")" $rtol ||
  fail "the device does not train like the CPU backend"
python3 - "$work/dev/metrics.jsonl" <<'PY' || fail "metrics.jsonl of the device run lacks mfu / device_mem_mb / data_ms"
import json, sys
train = [json.loads(l) for l in open(sys.argv[1]) if '"train"' in l]
assert all("mfu" in r and r["device_mem_mb"] > 0 and 0 <= r["data_ms"] <= r["ms_per_step"] for r in train), train[0]
# step 1 makes its batches itself; later steps get them from the second thread
assert train[0]["data_ms"] > 0, train[0]
PY
"$RECLM" eval --run "$work/dev" --set eval.max_users=50 > "$work/eval.txt" 2>&1 || { cat "$work/eval.txt"; fail "eval of the device model"; }
grep -q "HR@10" "$work/eval.txt" || { cat "$work/eval.txt"; fail "eval printed no HR@10"; }
grep -q "evaluating on the CPU" "$work/eval.txt" || { cat "$work/eval.txt"; fail "eval without a GPU backend did not say so"; }
# `reclm eval` of a GPU run with the GPU backend: the item scores' forward on the device
"$RECLM_EMU" eval --run "$work/dev" --set eval.max_users=50 --out "$work/eval_dev.json" > "$work/eval_dev.txt" 2>&1 ||
  { cat "$work/eval_dev.txt"; fail "eval on the device"; }
grep -q "item scores from the forward on SIMT emulator" "$work/eval_dev.txt" || { cat "$work/eval_dev.txt"; fail "eval did not use the device"; }
python3 - "$work/dev/eval_test.json" "$work/eval_dev.json" <<'PY' || fail "eval on the device differs from eval on the CPU"
import json, sys
cpu, dev = (json.load(open(p)) for p in sys.argv[1:3])
worst = max(abs(cpu["model"][k] - dev["model"][k]) for k in ("HR@10", "NDCG@10", "MRR"))
print(f"eval: HR@10 cpu {cpu['model']['HR@10']:.4f} device {dev['model']['HR@10']:.4f}, worst difference {worst:.4f}")
sys.exit(0 if cpu["n_users"] == dev["n_users"] > 0 and worst <= 0.02 else 1)
PY

# like_cpu NAME WHAT ARGS...: the CPU and the device trained with ARGS give the same losses,
# and not those of the plain device run (WHAT changed something)
like_cpu() {
  local name=$1 what=$2
  shift 2
  "$RECLM" train "${base[@]}" "$@" --set train.run_dir="$work/cpu_$name" > "$work/cpu_$name.txt" 2>&1 ||
    { cat "$work/cpu_$name.txt"; fail "cpu run with $what"; }
  "$RECLM_EMU" train "${base[@]}" "$@" --set runtime.device=cuda --set train.run_dir="$work/dev_$name" \
    > "$work/dev_$name.txt" 2>&1 || { cat "$work/dev_$name.txt"; fail "device run with $what"; }
  same_losses "$(losses "$work/cpu_$name/metrics.jsonl" "train val")" "$(losses "$work/dev_$name/metrics.jsonl" "train val")" \
    $rtol || fail "with $what the device does not train like the CPU backend"
  ! same_losses "$(losses "$work/dev/metrics.jsonl" "train")" "$(losses "$work/dev_$name/metrics.jsonl" "train")" 1e-6 \
    > /dev/null || fail "$what changed nothing on the device"
}
# 1b. with dropout: the device draws the CPU's masks, so the two still train alike
#     (and with tiny_rec's own 2 heads of dim 32, as the Beauty configs)
like_cpu drop model.dropout --set model.dropout=0.2 --set model.n_heads=2
# 1c. LoRA on every projection: the adapters (and the new embedding rows) train, the base is frozen
lora=(--set model.lora.rank=4 --set model.lora.alpha=8)
like_cpu lora model.lora "${lora[@]}"

# 1e. the residual stream in bf16 (runtime.bf16_residual): still the CPU's losses to bf16
#     accuracy, not the fp32 stream's bits, and the log says so
"$RECLM_EMU" train "${base[@]}" --set runtime.device=cuda --set runtime.bf16_residual=true \
  --set train.run_dir="$work/dev_bf16res" > "$work/dev_bf16res.txt" 2>&1 || { cat "$work/dev_bf16res.txt"; fail "bf16 residual run"; }
grep -q "the residual stream in bf16" "$work/dev_bf16res.txt" || { cat "$work/dev_bf16res.txt"; fail "the log does not say the stream is bf16"; }
same_losses "$(losses "$work/cpu/metrics.jsonl" "train val")" "$(losses "$work/dev_bf16res/metrics.jsonl" "train val")" \
  $rtol || fail "with a bf16 residual stream the device does not train like the CPU backend"
! same_losses "$(losses "$work/dev/metrics.jsonl" "train")" "$(losses "$work/dev_bf16res/metrics.jsonl" "train")" 1e-6 \
  > /dev/null || fail "runtime.bf16_residual changed nothing on the device"

# 1d. ranking evaluation during training: the device runs the item scores' forward; its
#     metrics are the CPU's up to bf16 near-ties (3 of 2000 users measured)
rank=(--set eval.rank_every=8 --set eval.val_every=0 --set checkpoint.every=0)
"$RECLM" train "${base[@]}" "${rank[@]}" --set train.run_dir="$work/cpu_rank" > "$work/cpu_rank.txt" 2>&1 ||
  { cat "$work/cpu_rank.txt"; fail "cpu run with ranking evaluation"; }
"$RECLM_EMU" train "${base[@]}" "${rank[@]}" --set runtime.device=cuda --set train.run_dir="$work/dev_rank" \
  > "$work/dev_rank.txt" 2>&1 || { cat "$work/dev_rank.txt"; fail "device run with ranking evaluation"; }
grep -q "item scores come from the device's forward" "$work/dev_rank.txt" || { cat "$work/dev_rank.txt"; fail "no device ranking"; }
python3 - "$work/cpu_rank/metrics.jsonl" "$work/dev_rank/metrics.jsonl" <<'PY' || fail "the device's ranking evaluation differs from the CPU's"
import json, sys
cpu, dev = ([json.loads(l) for l in open(p) if '"rank"' in l] for p in sys.argv[1:3])
assert len(cpu) == len(dev) == 1 and cpu[0]["n_users"] == dev[0]["n_users"] > 0, (cpu, dev)
worst = max(abs(cpu[0]["model"][k] - dev[0]["model"][k]) for k in ("HR@10", "NDCG@10", "MRR"))
print(f"ranking: HR@10 cpu {cpu[0]['model']['HR@10']:.4f} device {dev[0]['model']['HR@10']:.4f}, worst difference {worst:.4f}")
sys.exit(0 if worst <= 0.01 else 1)
PY

# 2. checkpoints: device → CPU and CPU → device, from step 4
resume_on() {  # resume_on NAME SOURCE_RUN BINARY DEVICE
  local run="$work/$1"
  resume_dir_from "$2" "$run" 00000004
  "$3" train "${base[@]}" --set runtime.device="$4" --set train.run_dir="$run" --resume auto > "$run.txt" 2>&1 ||
    { cat "$run.txt"; fail "$1"; }
  grep -q "continuing at step 5 of 8" "$run.txt" || { cat "$run.txt"; fail "$1 did not continue at step 5"; }
  same_losses "$(losses "$2/metrics.jsonl" | cut -d' ' -f5-)" "$(losses "$run/metrics.jsonl")" $rtol ||
    fail "$1: the trajectory differs from the run that saved the checkpoint"
}
resume_on dev_to_cpu "$work/dev" "$RECLM" cpu
resume_on cpu_to_dev "$work/cpu" "$RECLM_EMU" cuda

# 3. recomputed activations: the same bits
"$RECLM_EMU" train "${base[@]}" --set runtime.device=cuda --set runtime.recompute_activations=true \
  --set train.run_dir="$work/recompute" > "$work/recompute.txt" 2>&1 || { cat "$work/recompute.txt"; fail "recompute run"; }
grep -q "(recomputed in backward)" "$work/recompute.txt" || { cat "$work/recompute.txt"; fail "the log does not say activations are recomputed"; }
same_losses "$(losses "$work/dev/metrics.jsonl" "train val")" "$(losses "$work/recompute/metrics.jsonl" "train val")" 0 ||
  fail "recomputed activations train differently"
# 3b. one stream (runtime.second_stream false: the weight gradients and AdamW in order on the
#     compute stream): the same bits as the default side stream
"$RECLM_EMU" train "${base[@]}" --set runtime.device=cuda --set runtime.second_stream=false \
  --set train.run_dir="$work/one_stream" > "$work/one_stream.txt" 2>&1 || { cat "$work/one_stream.txt"; fail "one-stream run"; }
same_losses "$(losses "$work/dev/metrics.jsonl" "train val")" "$(losses "$work/one_stream/metrics.jsonl" "train val")" 0 ||
  fail "one stream trains differently from the side stream"
# 3c. RECLM_SIDE_GEMM_SMS and RECLM_RESIDUAL_GRADIENT_BUFFERS: the side stream's GEMMs planned
#     for fewer SMs, with one buffer of the residual gradient, both said in the log (the emulator
#     has one GEMM, and the waits keep the buffers' values: the same bits)
RECLM_SIDE_GEMM_SMS=16 RECLM_RESIDUAL_GRADIENT_BUFFERS=1 "$RECLM_EMU" train "${base[@]}" --set runtime.device=cuda \
  --set train.run_dir="$work/side_sms" > "$work/side_sms.txt" 2>&1 || { cat "$work/side_sms.txt"; fail "side settings run"; }
grep -q "side stream's GEMMs planned for 16 SMs (RECLM_SIDE_GEMM_SMS)" "$work/side_sms.txt" ||
  { cat "$work/side_sms.txt"; fail "the log does not say RECLM_SIDE_GEMM_SMS took effect"; }
grep -q "buffers of the residual stream's bf16 gradient: 1 (RECLM_RESIDUAL_GRADIENT_BUFFERS)" "$work/side_sms.txt" ||
  { cat "$work/side_sms.txt"; fail "the log does not say RECLM_RESIDUAL_GRADIENT_BUFFERS took effect"; }
same_losses "$(losses "$work/dev/metrics.jsonl" "train val")" "$(losses "$work/side_sms/metrics.jsonl" "train val")" 0 ||
  fail "RECLM_SIDE_GEMM_SMS or RECLM_RESIDUAL_GRADIENT_BUFFERS changed the emulator's training"
# 3d. RECLM_ATTENTION_SEGMENT_BLOCK_MAX_LEN=256 (head_dim 64 here), said in the log; these
#     segments are short, so the same bits (DeviceBackend.LongSegmentAttentionBlocksMatchCpu has
#     a 200-token one)
RECLM_ATTENTION_SEGMENT_BLOCK_MAX_LEN=256 "$RECLM_EMU" train "${base[@]}" --set runtime.device=cuda \
  --set train.run_dir="$work/block256" > "$work/block256.txt" 2>&1 || { cat "$work/block256.txt"; fail "block 256 run"; }
grep -q "segments of up to 256 tokens in one block (RECLM_ATTENTION_SEGMENT_BLOCK_MAX_LEN)" "$work/block256.txt" ||
  { cat "$work/block256.txt"; fail "the log does not say RECLM_ATTENTION_SEGMENT_BLOCK_MAX_LEN took effect"; }
same_losses "$(losses "$work/dev/metrics.jsonl" "train val")" "$(losses "$work/block256/metrics.jsonl" "train val")" 0 ||
  fail "RECLM_ATTENTION_SEGMENT_BLOCK_MAX_LEN changed the emulator's training on short segments"
# 3e. queued steps (runtime.queued_steps, the default: the host reads a step's loss and norm after
#     queuing the next, the GPU skips a non-finite update itself) against reading after each step:
#     the same losses, gradient norms and validation losses to the bit, also when steps overflow:
#     STOP stops at the same step with the same message, SKIP skips the same steps; and under LoRA
#     (the norm over the trained values only)
grep -q "each step is queued before the host reads the last one's loss and gradient norm" "$work/dev.txt" ||
  { cat "$work/dev.txt"; fail "the default device run does not say its steps are queued"; }
[ "$(grep -c 'checkpoint .* saved in' "$work/dev.txt")" = 2 ] && [ "$(ls "$work/dev/checkpoints" | grep -c step_)" = 2 ] ||
  { cat "$work/dev.txt"; ls "$work/dev/checkpoints"; fail "queued steps: not exactly the checkpoints of steps 4 and 8"; }
grep -q "each step is queued before the host reads the last one's loss and gradient norm" "$work/dev_lora.txt" ||
  { cat "$work/dev_lora.txt"; fail "the LoRA device run does not say its steps are queued"; }
"$RECLM_EMU" train "${base[@]}" --set runtime.device=cuda --set runtime.queued_steps=false \
  --set train.run_dir="$work/read_steps" > "$work/read_steps.txt" 2>&1 || { cat "$work/read_steps.txt"; fail "read-steps run"; }
! grep -q "runtime.queued_steps" "$work/read_steps.txt" || { cat "$work/read_steps.txt"; fail "queued_steps false still logged"; }
same_records() {  # same_records RUN_A RUN_B: train (loss, grad norm, skipped) and val records equal
  python3 - "$1/metrics.jsonl" "$2/metrics.jsonl" <<'PY'
import json, sys
def records(path):
    out = []
    for line in open(path):
        r = json.loads(line)
        if r["kind"] == "train":
            out.append(("train", r["step"], r["loss"], r["grad_norm"], r["skipped"]))
        elif r["kind"] == "val":
            out.append(("val", r["step"], r["val_loss"]))
    return out
a, b = records(sys.argv[1]), records(sys.argv[2])
print(f"{len(a)} and {len(b)} records, {sum(x != y for x, y in zip(a, b))} differ")
sys.exit(0 if a == b and len(a) > 0 else 1)
PY
}
same_records "$work/dev" "$work/read_steps" || fail "queued steps train differently from steps read one by one"
"$RECLM_EMU" train "${base[@]}" "${lora[@]}" --set runtime.device=cuda --set runtime.queued_steps=false \
  --set train.run_dir="$work/lora_read_steps" > "$work/lora_read_steps.txt" 2>&1 ||
  { cat "$work/lora_read_steps.txt"; fail "LoRA read-steps run"; }
same_records "$work/dev_lora" "$work/lora_read_steps" ||
  fail "queued LoRA steps train differently from LoRA steps read one by one"
overflow=(--set train.lr=1e30 --set train.warmup_steps=0 --set optim.grad_clip=0 --set checkpoint.every=0)
for queued in true false; do
  ! "$RECLM_EMU" train "${base[@]}" "${overflow[@]}" --set runtime.device=cuda --set runtime.queued_steps=$queued \
    --set train.run_dir="$work/stop_$queued" > "$work/stop_$queued.txt" 2>&1 || { cat "$work/stop_$queued.txt"; fail "lr 1e30 trained on"; }
  "$RECLM_EMU" train "${base[@]}" "${overflow[@]}" --set runtime.device=cuda --set runtime.queued_steps=$queued \
    --set train.on_nonfinite=SKIP --set train.run_dir="$work/skip_$queued" > "$work/skip_$queued.txt" 2>&1 ||
    { cat "$work/skip_$queued.txt"; fail "SKIP run (queued_steps $queued)"; }
done
grep -q "error: non-finite gradient at step 2 " "$work/stop_true.txt" || { cat "$work/stop_true.txt"; fail "queued STOP"; }
[ "$(grep '^error' "$work/stop_true.txt")" = "$(grep '^error' "$work/stop_false.txt")" ] ||
  { grep -h '^error' "$work/stop_true.txt" "$work/stop_false.txt"; fail "STOP differs between queued and read steps"; }
[ "$(grep -c 'update skipped' "$work/skip_true.txt")" -ge 3 ] || { cat "$work/skip_true.txt"; fail "queued SKIP skipped too few"; }
same_records "$work/skip_true" "$work/skip_false" || fail "queued steps skip differently from steps read one by one"

# 4. two device ranks (micro_batch 2 each) vs one process (micro_batch 4), buckets of ~0.05 MiB
if [ -x "$RECLM_SOURCE_DIR/scripts/mpirun.sh" ] && command -v mpirun > /dev/null; then
  "$RECLM_SOURCE_DIR/scripts/mpirun.sh" --mca btl self,tcp --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo \
    -np 2 "$RECLM_EMU" train "${base[@]}" --set runtime.device=cuda --set train.micro_batch=2 \
    --set runtime.grad_bucket_mb=0.05 --set train.run_dir="$work/dev_np2" > "$work/dev_np2.txt" 2>&1 ||
    { cat "$work/dev_np2.txt"; fail "2 device ranks"; }
  grep -q "× 2 ranks" "$work/dev_np2.txt" || { cat "$work/dev_np2.txt"; fail "the log does not show 2 ranks"; }
  grep -Eq "gradients: [0-9]+ buckets of ~0.05 MiB" "$work/dev_np2.txt" && grep -Eq "comm, [0-9]+% overlapped" "$work/dev_np2.txt" ||
    { cat "$work/dev_np2.txt"; fail "2 device ranks: no bucketed all-reduce in the log"; }
  same_losses "$(losses "$work/dev/metrics.jsonl" "train val")" "$(losses "$work/dev_np2/metrics.jsonl" "train val")" $rtol ||
    fail "2 device ranks do not train like 1 process with the same global batch"

  # 4b. ZeRO-1: the device keeps its rank's shard of the moments and exchanges the rest
  zero1_run() {  # zero1_run NAME NP BINARY DEVICE [ARGS...]
    local name=$1 np=$2 binary=$3 dev=$4
    shift 4
    "$RECLM_SOURCE_DIR/scripts/mpirun.sh" --mca btl self,tcp --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo \
      -np "$np" "$binary" train "${base[@]}" --set runtime.device="$dev" --set train.micro_batch=2 \
      --set optim.zero1=true --set train.run_dir="$work/$name" "$@" > "$work/$name.txt" 2>&1 ||
      { cat "$work/$name.txt"; fail "$name"; }
    grep -q "zero1: optimizer state sharded over $np ranks" "$work/$name.txt" || { cat "$work/$name.txt"; fail "$name: not sharded"; }
  }
  # 2 ranks: the same sums as the plain ranks' all-reduce, the norm summed in another order
  zero1_run dev_zero1_np2 2 "$RECLM_EMU" cuda
  same_losses "$(losses "$work/dev_np2/metrics.jsonl" "train val")" "$(losses "$work/dev_zero1_np2/metrics.jsonl" "train val")" \
    1e-5 || fail "ZeRO-1 on 2 device ranks does not train like plain data parallelism"
  # 3 ranks (uneven shards) against 3 CPU ranks with ZeRO-1
  zero1_run cpu_zero1_np3 3 "$RECLM" cpu
  zero1_run dev_zero1_np3 3 "$RECLM_EMU" cuda
  same_losses "$(losses "$work/cpu_zero1_np3/metrics.jsonl" "train val")" \
    "$(losses "$work/dev_zero1_np3/metrics.jsonl" "train val")" $rtol ||
    fail "ZeRO-1 on 3 device ranks does not train like 3 CPU ranks with ZeRO-1"
  zero1_run cpu_lora_zero1_np3 3 "$RECLM" cpu "${lora[@]}"
  zero1_run dev_lora_zero1_np3 3 "$RECLM_EMU" cuda "${lora[@]}"
  same_losses "$(losses "$work/cpu_lora_zero1_np3/metrics.jsonl" "train val")" \
    "$(losses "$work/dev_lora_zero1_np3/metrics.jsonl" "train val")" $rtol ||
    fail "LoRA with ZeRO-1 on 3 device ranks does not train like 3 CPU ranks"
  for r in 0 1 2; do
    [ -f "$work/dev_zero1_np3/checkpoints/step_00000004/$(printf 'optim_shard_%05d_of_00003.h5' $r)" ] ||
      { ls "$work/dev_zero1_np3/checkpoints/step_00000004"; fail "ZeRO-1 on 3 device ranks: optimizer shard $r missing"; }
  done
  # vocabulary parallelism: each rank holds its share of the item rows, on the device as on the CPU
  for pair in "2 true" "3 false"; do
    read -r np tied <<< "$pair"
    for side in "cpu $RECLM cpu" "dev $RECLM_EMU cuda"; do
      read -r tag binary dev <<< "$side"
      name=${tag}_vp_np$np
      "$RECLM_SOURCE_DIR/scripts/mpirun.sh" --mca btl self,tcp --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo \
        -np "$np" "$binary" train "${base[@]}" --set runtime.device="$dev" --set train.micro_batch=2 \
        --set runtime.vocab_parallel=true --set model.tie_embeddings=$tied --set train.run_dir="$work/$name" \
        > "$work/$name.txt" 2>&1 || { cat "$work/$name.txt"; fail "$name"; }
      grep -q "vocab_parallel: this rank holds item rows" "$work/$name.txt" || { cat "$work/$name.txt"; fail "$name: not sharded"; }
    done
    same_losses "$(losses "$work/cpu_vp_np$np/metrics.jsonl" "train val")" "$(losses "$work/dev_vp_np$np/metrics.jsonl" "train val")" \
      $rtol || fail "vocab_parallel on $np device ranks (tied $tied) does not train like $np CPU ranks"
  done
  # the 2 device ranks' step-4 checkpoint (item rows assembled on rank 0) resumes on 2 CPU ranks
  resume_dir_from "$work/dev_vp_np2" "$work/vp_dev_to_cpu" 00000004
  "$RECLM_SOURCE_DIR/scripts/mpirun.sh" --mca btl self,tcp --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo \
    -np 2 "$RECLM" train "${base[@]}" --set train.micro_batch=2 --set runtime.vocab_parallel=true \
    --set train.run_dir="$work/vp_dev_to_cpu" --resume auto > "$work/vp_dev_to_cpu.txt" 2>&1 ||
    { cat "$work/vp_dev_to_cpu.txt"; fail "vp_dev_to_cpu"; }
  same_losses "$(losses "$work/dev_vp_np2/metrics.jsonl" | cut -d' ' -f5-)" "$(losses "$work/vp_dev_to_cpu/metrics.jsonl")" \
    $rtol || fail "vocab_parallel: the device ranks' checkpoint does not continue on the CPU ranks"
  "$RECLM" eval --run "$work/dev_vp_np2" --set eval.max_users=50 > "$work/dev_vp_eval.txt" 2>&1 ||
    { cat "$work/dev_vp_eval.txt"; fail "eval of the vocab_parallel device model"; }
  grep -q "HR@10" "$work/dev_vp_eval.txt" || { cat "$work/dev_vp_eval.txt"; fail "eval printed no HR@10"; }
  # the device ranks' step-4 checkpoint resumes on the CPU ranks, and the other way
  for pair in "dev_zero1_np3 zero1_dev_to_cpu $RECLM cpu" "cpu_zero1_np3 zero1_cpu_to_dev $RECLM_EMU cuda"; do
    read -r source name binary dev <<< "$pair"
    resume_dir_from "$work/$source" "$work/$name" 00000004
    zero1_run "$name" 3 "$binary" "$dev" --resume auto
    grep -q "continuing at step 5 of 8" "$work/$name.txt" || { cat "$work/$name.txt"; fail "$name did not continue at step 5"; }
    same_losses "$(losses "$work/$source/metrics.jsonl" | cut -d' ' -f5-)" "$(losses "$work/$name/metrics.jsonl")" $rtol ||
      fail "$name: the trajectory differs from the run that saved the checkpoint"
  done
else
  echo "mpirun not available: the 2-rank part is skipped"
fi

# 5. the profiles: RECLM_DEVICE_PROFILE=1 prints the time of each phase of the step (the layers,
#    the LM head), =host how long the host waited for the device
RECLM_DEVICE_PROFILE=1 "$RECLM_EMU" train "${base[@]}" --set runtime.device=cuda --set train.steps=2 \
  --set runtime.gemm_autotune=true --set train.run_dir="$work/prof" > "$work/prof.txt" 2>&1 ||
  { cat "$work/prof.txt"; fail "profiled run"; }
# (train.steps 2 × grad_accum 2: the first micro-batch, with the set-up, is left out)
grep -Eq "^  device time [0-9.]+ ms over micro-batches 2-4 \(the first, with the set-up, left out\): [0-9.]+ ms per" \
  "$work/prof.txt" || { cat "$work/prof.txt"; fail "the profile does not say which micro-batches it covers"; }
for phase in "forward: GEMMs" "forward: attention" "backward: attention" "backward: norms" "head: cross-entropy" \
             "forward: waiting for AdamW" "weight-gradient GEMMs" "AdamW"; do
  grep -Eq "^ +$phase +[0-9.]+ ms +[0-9.]+%" "$work/prof.txt" || { cat "$work/prof.txt"; fail "profile lacks '$phase'"; }
done
grep -q "^  the side stream (runtime.second_stream), beside the compute stream:" "$work/prof.txt" ||
  { cat "$work/prof.txt"; fail "profile lacks the side stream's table"; }
for stream in "compute stream" "side stream"; do  # (the emulator has one GEMM: nothing to time)
  grep -Eq "^  GEMM algorithms timed \(runtime.gemm_autotune\), $stream: 0 shapes, .*, 0 left untimed to it$" \
    "$work/prof.txt" || { cat "$work/prof.txt"; fail "profile lacks the $stream's GEMM timing line"; }
done
RECLM_DEVICE_PROFILE=host "$RECLM_EMU" train "${base[@]}" --set runtime.device=cuda --set train.steps=2 \
  --set train.run_dir="$work/prof_host" > "$work/prof_host.txt" 2>&1 || { cat "$work/prof_host.txt"; fail "host-profiled run"; }
grep -Eq "host waited for the device [0-9.]+ ms of [0-9.]+ ms \([0-9.]+%\) over micro-batches 2-4 " "$work/prof_host.txt" ||
  { cat "$work/prof_host.txt"; fail "RECLM_DEVICE_PROFILE=host printed no wait share"; }
! grep -q "forward: GEMMs" "$work/prof_host.txt" || fail "RECLM_DEVICE_PROFILE=host printed the phase table"

# 6. refused combinations (config validation: the same in every build)
# n_heads 4: head dim 16
expect_exit2 "runtime.device" train "${base[@]}" --set runtime.device=cuda --set model.n_heads=4 --set train.run_dir="$work/bad"
# a plan that does not fit the device (here: host memory) stops at start, exit 2, nothing written
RECLM="$RECLM_EMU" expect_exit2 "not enough free memory" train "${base[@]}" --set runtime.device=cuda \
  --set train.micro_batch=100000000 --set train.run_dir="$work/huge"
[ ! -e "$work/huge" ] || fail "a run that did not fit wrote $work/huge"
# a bad RECLM_GEMM_ALGORITHM_RANK (cuBLASLt's heuristic's choice, docs/gpu.md) stops at start, exit 2
RECLM_GEMM_ALGORITHM_RANK=x RECLM="$RECLM_EMU" expect_exit2 "RECLM_GEMM_ALGORITHM_RANK=x" train "${base[@]}" \
  --set runtime.device=cuda --set train.run_dir="$work/rank"
# so does a bad RECLM_SIDE_GEMM_SMS, or one without a side stream, before the run directory is made
for bad in x -1 5000; do
  RECLM_SIDE_GEMM_SMS=$bad RECLM="$RECLM_EMU" expect_exit2 "RECLM_SIDE_GEMM_SMS=$bad: expected a number of SMs" train \
    "${base[@]}" --set runtime.device=cuda --set train.run_dir="$work/sms_bad"
done
RECLM_SIDE_GEMM_SMS=8 RECLM="$RECLM_EMU" expect_exit2 "RECLM_SIDE_GEMM_SMS=8: runtime.second_stream is false" train \
  "${base[@]}" --set runtime.device=cuda --set runtime.second_stream=false --set train.run_dir="$work/sms_bad"
[ ! -e "$work/sms_bad" ] || fail "a refused RECLM_SIDE_GEMM_SMS wrote $work/sms_bad"
# and a bad RECLM_RESIDUAL_GRADIENT_BUFFERS (1 or 2), or 1 without a side stream
for bad in x 0 3; do
  RECLM_RESIDUAL_GRADIENT_BUFFERS=$bad RECLM="$RECLM_EMU" expect_exit2 \
    "RECLM_RESIDUAL_GRADIENT_BUFFERS=$bad: expected the buffers of the residual stream" train "${base[@]}" \
    --set runtime.device=cuda --set train.run_dir="$work/buffers_bad"
done
RECLM_RESIDUAL_GRADIENT_BUFFERS=1 RECLM="$RECLM_EMU" expect_exit2 \
  "RECLM_RESIDUAL_GRADIENT_BUFFERS=1: runtime.second_stream is false" train "${base[@]}" --set runtime.device=cuda \
  --set runtime.second_stream=false --set train.run_dir="$work/buffers_bad"
[ ! -e "$work/buffers_bad" ] || fail "a refused RECLM_RESIDUAL_GRADIENT_BUFFERS wrote $work/buffers_bad"
# and a RECLM_ATTENTION_SEGMENT_BLOCK_MAX_LEN outside 0 to 256 (head_dim 64)
for bad in x -1 257; do
  RECLM_ATTENTION_SEGMENT_BLOCK_MAX_LEN=$bad RECLM="$RECLM_EMU" expect_exit2 \
    "RECLM_ATTENTION_SEGMENT_BLOCK_MAX_LEN=$bad: expected the longest segment" train "${base[@]}" \
    --set runtime.device=cuda --set train.run_dir="$work/block_bad"
done
[ ! -e "$work/block_bad" ] || fail "a refused RECLM_ATTENTION_SEGMENT_BLOCK_MAX_LEN wrote $work/block_bad"
echo "train_emu: ok"
