#!/usr/bin/env bash
# Starting a run from existing weights through the real binary: a run exported to a Hugging
# Face directory and imported with train.init_from "hf:DIR" (and a checkpoint with "ckpt:DIR")
# computes exactly the original logits; a LoRA fine-tune from the export trains only adapters and
# new-token rows, exports as PEFT, and resumes bitwise; bad init_from values exit 2.
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

# LoRA fine-tune of the import: the base stays frozen except the rows of new tokens (specials,
# items, attributes); the PEFT export's base therefore equals the import except those rows.
"$RECLM" train "${base[@]}" --set train.run_dir="$work/lora" --init-from "hf:$work/hf" \
  --set model.lora.rank=4 --set train.steps=20 --set checkpoint.every=10 > "$work/lora.txt" 2>&1 || { cat "$work/lora.txt"; fail "LoRA fine-tune"; }
"$RECLM" info "$work/lora/checkpoints" | grep -q "LoRA rank 4" || fail "info does not show the LoRA checkpoint"
"$RECLM" export --run "$work/lora" --out "$work/lora_peft" --dtype fp32 --lora peft > "$work/peft.txt" 2>&1 || { cat "$work/peft.txt"; fail "export --lora peft"; }
text_size=$("$RECLM" info "$work/syn.h5" | sed -n 's/.*text \[0, \([0-9]*\)).*/\1/p')
python3 - "$work/hf/model.safetensors" "$work/lora_peft/model.safetensors" "$text_size" <<'PY' || fail "LoRA changed frozen weights"
import json, struct, sys
def tensors(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    return {k: (v["shape"], data[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])
            for k, v in header.items() if k != "__metadata__"}
before, after, text = tensors(sys.argv[1]), tensors(sys.argv[2]), int(sys.argv[3])
assert before.keys() == after.keys(), before.keys() ^ after.keys()
for name, (shape, raw) in before.items():
    if name in ("model.embed_tokens.weight", "lm_head.weight"):
        row = shape[1] * 4
        assert raw[:text * row] == after[name][1][:text * row], f"{name}: text-token rows changed"
        assert raw[text * row:] != after[name][1][text * row:], f"{name}: new-token rows did not train"
    else:
        assert raw == after[name][1], f"{name} changed under LoRA"
print(f"LoRA: {len(before)} base tensors frozen, text rows [0, {text}) frozen, new-token rows trained")
PY
[ -s "$work/lora_peft/adapter/adapter_model.safetensors" ] || fail "no PEFT adapter written"
"$RECLM" export --run "$work/lora" --format hdf5 --out "$work/lora_raw.h5" > /dev/null 2>&1 || fail "export --format hdf5"
"$RECLM" info "$work/lora_raw.h5" | grep -q "LoRA rank 4" || fail "info on the raw LoRA tensors"
"$RECLM" export --run "$work/lora" --format hdf5 --lora merged --out "$work/merged_raw.h5" > /dev/null 2>&1 || fail "export --format hdf5 --lora merged"
"$RECLM" info "$work/merged_raw.h5" | grep -q "untied embeddings$" || fail "info on the merged raw tensors"
expect_exit2 "exists" export --run "$work/lora" --format hdf5 --out "$work/lora_raw.h5"
expect_exit2 "is not an export format" export --run "$work/lora" --format onnx --out "$work/x"
# A LoRA run resumes exactly too (adapters, new-token rows and their moments are checkpointed).
"$RECLM" train --resume "$work/lora/checkpoints/step_00000010" --set train.run_dir="$work/lora_resumed" \
  > "$work/lora_resumed.txt" 2>&1 || { cat "$work/lora_resumed.txt"; fail "resume the LoRA run"; }
python3 - "$work/lora/metrics.jsonl" "$work/lora_resumed/metrics.jsonl" <<'PY' || fail "resumed LoRA losses differ"
import json, sys
def losses(path):
    return {r["step"]: r["loss"] for r in map(json.loads, open(path)) if r["kind"] == "train"}
full, resumed = losses(sys.argv[1]), losses(sys.argv[2])
assert sorted(resumed) == list(range(11, 21)), sorted(resumed)
assert all(full[s] == resumed[s] for s in resumed), [(s, full[s], resumed[s]) for s in resumed]
PY

expect_exit2 'train.init_from: must be "hf:DIR" or "ckpt:DIR"' train "${base[@]}" --set train.init_from="$work/hf"
expect_exit2 "config.json" train "${base[@]}" --set train.run_dir="$work/bad" --set train.init_from="hf:$work/nonexistent"
echo "pretrained CLI: hf: and ckpt: imports reproduce the original logits exactly"
