#!/usr/bin/env bash
# The recommendation pipeline through the real binary: prepare (synthetic, sequence file, CSV,
# MovieLens) → train → eval → recommend → info, and bad input exits 2 naming file:line.
set -euo pipefail
source "$(dirname "$0")/lib/common.bash"

# 1. Synthetic dataset → a small ID-mode model that must beat popularity by a wide margin.
"$RECLM" prepare --synthetic --out "$work/new_dir/syn.h5" > "$work/prep.txt" 2>&1 || { cat "$work/prep.txt"; fail "prepare --synthetic"; }
mv "$work/new_dir/syn.h5" "$work/syn.h5"; grep -q "users *2000" "$work/prep.txt" || { cat "$work/prep.txt"; fail "no statistics printed"; }
"$RECLM" info "$work/syn.h5" | grep -q "items *500" || fail "info on the dataset"
"$RECLM" train --config configs/tiny_rec.pbtxt --set data.dataset="$work/syn.h5" \
  --set train.run_dir="$work/run" --set eval.rank_every=150 --set eval.rank_users=300 \
  > "$work/train.txt" 2>&1 || { cat "$work/train.txt"; fail "train on the synthetic dataset"; }
grep -q "validation HR@10" "$work/train.txt" || { cat "$work/train.txt"; fail "no ranking during training"; }
[ -s "$work/run/model.h5" ] || fail "no model.h5 after training"
"$RECLM" eval --run "$work/run" > "$work/eval.txt" 2>&1 || { cat "$work/eval.txt"; fail "eval"; }
grep -q "popularity" "$work/eval.txt" || fail "eval prints no popularity column"
python3 - "$work/run/eval_test.json" <<'PY' || fail "model does not beat popularity by 2x on HR@10"
import json, sys
r = json.load(open(sys.argv[1]))
model, pop = r["model"]["HR@10"], r["popularity"]["HR@10"]
print(f"HR@10 model {model:.4f} popularity {pop:.4f} over {r['n_users']} users, exclude_history={r['exclude_history']}")
sys.exit(0 if r["n_users"] == 2000 and model >= 2 * pop and model > 0.2 else 1)
PY
"$RECLM" recommend --checkpoint "$work/run" --history "item3 item17 item42" -k 5 > "$work/rec.txt" || fail "recommend"
[ "$(grep -c '^[1-5] ' "$work/rec.txt")" -eq 5 ] || { cat "$work/rec.txt"; fail "recommend did not print 5 items"; }
"$RECLM" info "$work/run" | grep -q "parameters" || fail "info on the run"
expect_exit2 "not in the dataset's catalog" recommend --checkpoint "$work/run" --history "item3 nosuchitem"
expect_exit2 "no config.pbtxt" eval --run "$work/nonexistent"

# 2. Text rendering with RecSysLLM infilling (2D positions), evaluated by constrained beam search.
"$RECLM" train --config configs/tiny_rec.pbtxt --set data.dataset="$work/syn.h5" \
  --set train.run_dir="$work/run_text" --set data.rendering=TEXT --set model.positions=POSITIONS_2D \
  --set data.seq_len=64 --set data.infill_weight=0.5 --set data.text_lm_weight=0.2 \
  --set train.steps=20 --set train.micro_batch=8 > "$work/train2.txt" 2>&1 || { cat "$work/train2.txt"; fail "text-mode training"; }
"$RECLM" eval --run "$work/run_text" --set eval.max_users=8 --set eval.beam_size=5 > "$work/eval2.txt" 2>&1 || { cat "$work/eval2.txt"; fail "beam-search eval"; }
grep -q "beam" "$work/eval2.txt" || { cat "$work/eval2.txt"; fail "eval did not say it used beam search"; }

# P5 prompts in training with one template held out, then evaluated zero-shot in that template.
"$RECLM" train --config configs/tiny_rec.pbtxt --set data.dataset="$work/syn.h5" \
  --set train.run_dir="$work/run_prompt" --set data.rendering=ID_TEXT --set data.seq_len=128 --set model.max_seq_len=128 \
  --set data.prompt_weight=0.5 --set data.held_out_prompts=seq-3 \
  --set train.steps=10 --set train.micro_batch=8 > "$work/train3.txt" 2>&1 || { cat "$work/train3.txt"; fail "training with prompts"; }
"$RECLM" eval --run "$work/run_prompt" --set eval.prompt_template=seq-3 --set eval.max_users=50 \
  > "$work/eval3.txt" 2>&1 || { cat "$work/eval3.txt"; fail "zero-shot prompt eval"; }
expect_exit2 "nosuch" eval --run "$work/run_prompt" --set eval.prompt_template=nosuch

# 3. Input formats: a sequence file with metadata, a CSV with a header, MovieLens ratings.dat.
printf 'u1 a b c d\nu2 b c d e\nu3 a c e b\n' > "$work/seq.txt"
printf 'id\ttitle\na\tred lipstick\nb\tblue mascara\nc\tgreen nail polish\nd\thand cream\ne\tface wash\n' > "$work/items.tsv"
"$RECLM" prepare --sequences "$work/seq.txt" --items "$work/items.tsv" --out "$work/seq.h5" > "$work/p.txt" 2>&1 || { cat "$work/p.txt"; fail "prepare from a sequence file"; }
grep -q "interactions *12" "$work/p.txt" || { cat "$work/p.txt"; fail "sequence file statistics"; }
printf 'user,item,time\nx,"item, one",3\nx,two,1\ny,two,2\n' > "$work/t.csv"
"$RECLM" prepare --table "$work/t.csv" --set prepare.header=true --set prepare.timestamp_column=2 \
  --out "$work/csv.h5" > "$work/p.txt" 2>&1 || { cat "$work/p.txt"; fail "prepare from a CSV"; }
grep -q "users *2" "$work/p.txt" || { cat "$work/p.txt"; fail "CSV statistics"; }
printf '1::10::5::100\n1::11::3::50\n2::10::4::70\n' > "$work/ratings.dat"
"$RECLM" prepare --table "$work/ratings.dat" --set prepare.rating_column=2 --set prepare.timestamp_column=3 \
  --out "$work/ml.h5" > "$work/p.txt" 2>&1 || { cat "$work/p.txt"; fail "prepare from ratings.dat"; }

# 4. Bad input: the line is named; --skip-bad-lines reports instead; the old output survives.
printf 'u1 a b c\nu2\nu3 a b\n' > "$work/bad_seq.txt"
cp "$work/seq.h5" "$work/keep.h5"
expect_exit2 "bad_seq.txt:2" prepare --sequences "$work/bad_seq.txt" --out "$work/keep.h5"
cmp -s "$work/seq.h5" "$work/keep.h5" || fail "a failed prepare changed the existing output"
"$RECLM" prepare --sequences "$work/bad_seq.txt" --skip-bad-lines --out "$work/skip.h5" > "$work/p.txt" 2>&1 || { cat "$work/p.txt"; fail "--skip-bad-lines"; }
grep -qi "1 malformed\|skipped 1" "$work/p.txt" || { cat "$work/p.txt"; fail "skipped lines not reported"; }
expect_exit2 "needs exactly one input" prepare --out "$work/x.h5"
expect_exit2 "nonexistent" prepare --sequences "$work/nonexistent.txt" --out "$work/x.h5"
printf 'not hdf5' > "$work/fake.h5"
expect_exit2 "fake.h5" train --config configs/tiny_rec.pbtxt --set data.dataset="$work/fake.h5" --set train.run_dir="$work/r5"
echo "rec_cli: all checks passed"
