#!/usr/bin/env bash
# Data-parallel scaling on this machine (docs/distributed.md): the same global batch trained by
# 1, 2 and 3 ranks (mpirun, TCP between ranks), with one gradient all-reduce after backward and
# with buckets all-reduced during backward (runtime.grad_bucket_mb), printing the step time, the
# exposed communication time (comm ms: what the step waited for), the share of gradient values
# reduced before backward ended (overlap), tokens/s and the ratio to the single-rank run (the
# peer: one process using every core for the same global batch).
#   bench/distributed.sh [OUTDIR]     (default runs/distributed; RECLM=path/to/reclm skips the
#                                     build; RECLM_STEPS, RECLM_SET="k=v ..." adjust the run)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/distributed}
reclm=${RECLM:-build/bin/reclm}
[ -n "${RECLM:-}" ] || scripts/build.sh
steps=${RECLM_STEPS:-40}
cores=$(nproc)
mkdir -p "$out"
[ -f "$out/synthetic.h5" ] || $reclm prepare --synthetic --out "$out/synthetic.h5" > /dev/null
extra=()
for kv in ${RECLM_SET:-}; do extra+=(--set "$kv"); done
# A model big enough that a step is mostly compute: d_model 256, 4 layers, 24 histories of 64 tokens.
common=(--config configs/tiny_rec.pbtxt --set data.dataset="$out/synthetic.h5" --set data.seq_len=64
        --set model.d_model=256 --set model.n_heads=4 --set model.d_ff=768 --set model.n_layers=4
        --set train.steps="$steps" --set eval.val_every=0 --set checkpoint.every=0 --set train.log_every=1000)
global_batch=24
echo "machine: $(lscpu | sed -n 's/^Model name: *//p') ($cores cores); global batch $global_batch histories"
# grad_bucket_mb 0: one all-reduce after backward; > 0: buckets all-reduced during backward.
printf '%-6s %-8s %-10s %10s %10s %8s %9s %12s %8s\n' ranks threads "bucket MiB" "ms/step" "comm ms" "comm %" "overlap" "tokens/s" "vs 1"
base_tps=""
for case in "1 0" "2 0" "2 4" "2 1" "3 0" "3 4" "3 1"; do
  read -r np bucket_mb <<< "$case"
  threads=$(( cores / np > 0 ? cores / np : 1 ))
  run="$out/np${np}_bucket$bucket_mb"
  rm -rf "$run"
  launcher=()
  [ "$np" -gt 1 ] && launcher=(scripts/mpirun.sh -np "$np" --mca btl self,tcp --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo)
  "${launcher[@]}" $reclm train "${common[@]}" --set train.micro_batch=$((global_batch / np)) \
    --set runtime.threads="$threads" --set runtime.grad_bucket_mb="$bucket_mb" \
    --set train.run_dir="$run" "${extra[@]}" > "$run.log" 2>&1 ||
    { cat "$run.log"; echo "bench/distributed.sh: $np ranks failed" >&2; exit 1; }
  read -r ms comm overlap tps < <(python3 - "$run/metrics.jsonl" <<'PY'
import json, statistics, sys
rows = [r for r in map(json.loads, open(sys.argv[1])) if r["kind"] == "train"][5:]  # after warm-up
ms = statistics.median(r["ms_per_step"] for r in rows)
comm = statistics.median(r.get("comm_ms", 0.0) for r in rows)
overlap = statistics.median(r.get("overlap", 0.0) for r in rows)
tps = statistics.median(r["tokens_per_s"] for r in rows)
print(f"{ms:.1f} {comm:.2f} {100 * overlap:.0f}% {tps:.0f}")
PY
)
  [ -n "$base_tps" ] || base_tps=$tps
  printf '%-6s %-8s %-10s %10s %10s %7.1f%% %9s %12s %7.2fx\n' "$np" "$threads" "$bucket_mb" "$ms" "$comm" \
    "$(python3 -c "print(100 * $comm / $ms)")" "$overlap" "$tps" "$(python3 -c "print($tps / $base_tps)")"
done
