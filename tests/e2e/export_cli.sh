#!/usr/bin/env bash
# `reclm export`: a tiny trained run → a Hugging Face directory; a second export into the same
# non-empty directory exits 2; where python3 has safetensors + numpy, the weights load there too.
# A LoRA run exports merged (plain Llama tensors only) or, with --lora peft, base + adapter/.
set -euo pipefail
source "$(dirname "$0")/lib/common.bash"

"$RECLM" prepare --synthetic --out "$work/syn.h5" > "$work/prep.txt" 2>&1 || { cat "$work/prep.txt"; fail "prepare --synthetic"; }
"$RECLM" train --config configs/tiny_rec.pbtxt --set data.dataset="$work/syn.h5" \
  --set train.run_dir="$work/run" --set train.steps=5 \
  > "$work/train.txt" 2>&1 || { cat "$work/train.txt"; fail "train 5 steps"; }

"$RECLM" export --run "$work/run" --out "$work/hf" > "$work/export.txt" 2>&1 || { cat "$work/export.txt"; fail "export"; }
for f in config.json model.safetensors tokenizer.json generation_config.json item_map.tsv reclm_config.pbtxt; do
  [ -s "$work/hf/$f" ] || fail "export wrote no $f"
done
ls "$work" | grep -q '\.tmp-' && fail "export left a temporary directory"
[ "$(head -1 "$work/hf/item_map.tsv")" = "$(printf 'item_id\ttoken_id\ttoken\ttitle')" ] || fail "item_map.tsv header"
[ "$(($(wc -l < "$work/hf/item_map.tsv") - 1))" -eq 500 ] || fail "item_map.tsv has not one line per item"
python3 - "$work/hf/config.json" <<'PY' || fail "config.json"
import json, sys
c = json.load(open(sys.argv[1]))
assert c["architectures"] == ["LlamaForCausalLM"] and c["model_type"] == "llama", c
assert c["hidden_size"] == 64 and c["num_hidden_layers"] == 2 and c["torch_dtype"] == "bfloat16", c
assert "reclm_positions" not in c, c
PY

expect_exit2 "not empty" export --run "$work/run" --out "$work/hf"
expect_exit2 "dtype" export --run "$work/run" --out "$work/hf32" --dtype fp16
"$RECLM" export --run "$work/run" --out "$work/hf" --dtype fp32 --force > "$work/export.txt" 2>&1 || { cat "$work/export.txt"; fail "export --force --dtype fp32"; }
grep -q '"float32"' "$work/hf/config.json" || fail "--dtype fp32 not in config.json"

# numpy has no bfloat16, so this reads the --dtype fp32 export just written.
if python3 -c 'import safetensors.numpy, numpy' 2> /dev/null; then
  python3 - "$work/hf" <<'PY' || fail "safetensors.numpy cannot load model.safetensors"
import json, sys
from safetensors.numpy import load_file
d = sys.argv[1]
c = json.load(open(d + "/config.json"))
w = load_file(d + "/model.safetensors")
e = w["model.embed_tokens.weight"]
assert e.shape == (c["vocab_size"], c["hidden_size"]), e.shape
assert "lm_head.weight" not in w  # tiny_rec ties the head
print("safetensors.numpy: embed_tokens", e.shape, e.dtype)
PY
else
  echo "export_cli: python3 safetensors/numpy not importable; skipping the Python load"
fi

# ---- LoRA ---------------------------------------------------------------------------------------
expect_exit2 "no LoRA adapters" export --run "$work/run" --out "$work/nolora" --lora peft
expect_exit2 "LoRA export mode" export --run "$work/run" --out "$work/nolora" --lora both
"$RECLM" train --config configs/tiny_rec.pbtxt --set data.dataset="$work/syn.h5" \
  --set train.run_dir="$work/lora_run" --set train.steps=3 --set model.lora.rank=4 \
  --set model.lora.targets=q_proj,v_proj \
  > "$work/train_lora.txt" 2>&1 || { cat "$work/train_lora.txt"; fail "train LoRA 3 steps"; }
"$RECLM" export --run "$work/lora_run" --out "$work/lora_merged" --dtype fp32 \
  > "$work/export.txt" 2>&1 || { cat "$work/export.txt"; fail "export LoRA (merged)"; }
[ -e "$work/lora_merged/adapter" ] && fail "merged export wrote adapter/"
"$RECLM" export --run "$work/lora_run" --out "$work/lora_peft" --lora peft \
  > "$work/export.txt" 2>&1 || { cat "$work/export.txt"; fail "export --lora peft"; }
# Reads safetensors headers directly (no safetensors module needed).
python3 - "$work/hf" "$work/lora_merged" "$work/lora_peft" <<'PY' || fail "LoRA export contents"
import json, struct, sys
def header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
    h.pop("__metadata__", None)
    return h
plain, merged, peft = (header(d + "/model.safetensors") for d in sys.argv[1:])
assert set(merged) == set(plain), "merged export must hold exactly the Llama tensors"
assert all(merged[k]["dtype"] == "F32" for k in merged)
assert set(peft) == set(plain), "PEFT base model must hold exactly the Llama tensors"
adapter = header(sys.argv[3] + "/adapter/adapter_model.safetensors")
want = {f"base_model.model.model.layers.{l}.self_attn.{p}.lora_{m}.weight"
        for l in range(2) for p in ("q_proj", "v_proj") for m in "AB"}
assert set(adapter) == want, sorted(adapter)
assert adapter["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"]["shape"] == [4, 64]
c = json.load(open(sys.argv[3] + "/adapter/adapter_config.json"))
assert c["peft_type"] == "LORA" and c["r"] == 4 and c["task_type"] == "CAUSAL_LM", c
assert c["target_modules"] == ["q_proj", "v_proj"], c
PY
echo "export_cli: all checks passed"
