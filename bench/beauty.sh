#!/usr/bin/env bash
# Amazon Beauty end to end (issue 3, docs/results.md): prepare ../shared/data/beauty → train
# configs/beauty_id.pbtxt and configs/beauty_recsysllm.pbtxt on the CPU → evaluate each on the
# test split (leave-one-out, full ranking) beside the popularity baseline. The last line printed
# is one JSON object with each config's test metrics and training seconds.
#   bench/beauty.sh [OUTDIR]      (default runs/beauty; extra settings via RECLM_SET="k=v k=v";
#                                 RECLM=path/to/reclm skips the build)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/beauty}
data=${RECLM_DATA:-../shared/data/beauty}
reclm=${RECLM:-build/bin/reclm}
[ -n "${RECLM:-}" ] || scripts/build.sh
for f in Beauty.txt items.tsv Beauty_item2attributes.json; do
  [ -f "$data/$f" ] || { echo "bench/beauty.sh: missing $data/$f (set RECLM_DATA)" >&2; exit 2; }
done
mkdir -p "$out"
extra=()
for kv in ${RECLM_SET:-}; do extra+=(--set "$kv"); done

echo "== prepare $out/beauty.h5"
$reclm prepare --sequences "$data/Beauty.txt" --items "$data/items.tsv" \
  --attributes "$data/Beauty_item2attributes.json" --out "$out/beauty.h5"

for cfg in beauty_id beauty_recsysllm; do
  echo "== train $cfg"
  rm -f "$out/$cfg/metrics.jsonl"
  $reclm train --config configs/$cfg.pbtxt --set data.dataset="$out/beauty.h5" \
    --set train.run_dir="$out/$cfg" "${extra[@]}"
  echo "== eval $cfg (test)"
  $reclm eval --run "$out/$cfg" --split test --out "$out/$cfg/eval_test.json"
done

python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
result = {}
for cfg in ("beauty_id", "beauty_recsysllm"):
    report = json.load(open(f"{out}/{cfg}/eval_test.json"))
    seconds = 0.0
    for line in open(f"{out}/{cfg}/metrics.jsonl"):
        rec = json.loads(line)
        if rec.get("kind") == "train":
            seconds = rec["time_s"]
    metrics = {"train_seconds": round(seconds, 1), "users": report["n_users"],
               "exclude_history": report["exclude_history"]}
    for name, value in report["model"].items():
        metrics[name] = round(value, 4)
    result[cfg] = metrics
print(json.dumps(result))
PY
