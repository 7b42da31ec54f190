#!/usr/bin/env bash
# `reclm logits`: JSON of one row of V logits per position; --positions last is the last row of
# the full output; --history feeds the tokens `reclm recommend` would, so the top item logits at
# the last position are recommend's list; bad ids, unknown items and bad flags exit 2.
set -euo pipefail
source "$(dirname "$0")/lib/common.bash"

"$RECLM" prepare --synthetic --out "$work/syn.h5" > "$work/prep.txt" 2>&1 || { cat "$work/prep.txt"; fail "prepare --synthetic"; }
"$RECLM" train --config configs/tiny_rec.pbtxt --set data.dataset="$work/syn.h5" \
  --set train.run_dir="$work/run" --set train.steps=5 --set eval.val_every=0 \
  > "$work/train.txt" 2>&1 || { cat "$work/train.txt"; fail "train 5 steps"; }

"$RECLM" logits --run "$work/run" --tokens "1 30 31 32" --out "$work/all.json" > "$work/l.txt" 2>&1 || { cat "$work/l.txt"; fail "logits --tokens"; }
"$RECLM" logits --run "$work/run" --tokens "1 30 31 32" --positions last > "$work/last.json" 2> "$work/l.txt" || { cat "$work/l.txt"; fail "logits --positions last"; }
"$RECLM" logits --run "$work/run" --history "item3 item17 item42" --positions last --out "$work/hist.json" > "$work/l.txt" 2>&1 || { cat "$work/l.txt"; fail "logits --history"; }
# (the list alone: stderr may hold a line about the CPU's GEMM kernels, kernels/cpu/blas_kernels.h)
"$RECLM" recommend --run "$work/run" --history "item3 item17 item42" -k 5 > "$work/rec.txt" 2> "$work/rec.err" ||
  { cat "$work/rec.txt" "$work/rec.err"; fail "recommend"; }
"$RECLM" export --run "$work/run" --out "$work/hf" > "$work/export.txt" 2>&1 || { cat "$work/export.txt"; fail "export"; }

python3 - "$work" <<'PY' || fail "logits JSON"
import json, sys
w = sys.argv[1]
full, last, hist = (json.load(open(f"{w}/{n}.json")) for n in ("all", "last", "hist"))
vocab = json.load(open(f"{w}/hf/config.json"))["vocab_size"]
assert full["tokens"] == [1, 30, 31, 32], full["tokens"]
assert full["positions"] == [0, 1, 2, 3] and last["positions"] == [3], (full["positions"], last["positions"])
assert len(full["logits"]) == 4 and all(len(row) == vocab for row in full["logits"])
assert len(set(full["logits"][0])) > 1, "constant logits"
# Same forward; only the head GEMM's shape differs (1 row vs 4), which may move the last ulp.
assert len(last["logits"]) == 1
assert max(abs(a - b) for a, b in zip(last["logits"][0], full["logits"][-1])) < 1e-5
# --history: [BOS] <item_3> <item_17> <item_42>; rank item tokens as recommend does.
items = {}
for line in open(f"{w}/hf/item_map.tsv").read().splitlines()[1:]:
    key, tok = line.split("\t")[:2]
    items[int(tok)] = key
history = ["item3", "item17", "item42"]
tok_of = {k: t for t, k in items.items()}
assert hist["tokens"][1:] == [tok_of[k] for k in history], hist["tokens"]
row = hist["logits"][0]
ranked = sorted((t for t in items if items[t] not in history), key=lambda t: (-row[t], t))
want = [items[t] for t in ranked[:5]]
got = [l.split()[1] for l in open(f"{w}/rec.txt").read().splitlines()[1:6]]
assert got == want, (got, want)
PY

# Causality: the first position's logits do not depend on later tokens.
"$RECLM" logits --run "$work/run" --tokens "1 40" --out "$work/short.json" > /dev/null 2>&1 || fail "logits short"
python3 - "$work" <<'PY' || fail "position 0 depends on later tokens"
import json, sys
w = sys.argv[1]
a, b = json.load(open(f"{w}/all.json")), json.load(open(f"{w}/short.json"))
# Equal up to the GEMMs' shapes (4 rows vs 2; some BLAS kernels round a row by the row count);
# position 1 holds different tokens (30 vs 40), so its logits differ far beyond that.
diff = lambda r: max(abs(x - y) for x, y in zip(a["logits"][r], b["logits"][r]))
assert diff(0) < 1e-5, diff(0)
assert diff(1) > 1e-3, diff(1)
PY

vocab=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['vocab_size'])" "$work/hf/config.json")
expect_exit2 "outside the model's vocabulary" logits --run "$work/run" --tokens "1 $vocab"
expect_exit2 "not a token id" logits --run "$work/run" --tokens "1 x2"
expect_exit2 "not in the dataset's catalog" logits --run "$work/run" --history "item3 nosuchitem"
expect_exit2 "exactly one of" logits --run "$work/run"
expect_exit2 "not one of all, last" logits --run "$work/run" --tokens "1 2" --positions first
echo "logits_cli: all checks passed"
