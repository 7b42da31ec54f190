#!/usr/bin/env bash
# Evaluation split across ranks (ctest label `mpi`, CPU ranks over TCP): `reclm eval` under
# mpirun -np 2 and -np 3 writes the same report as one process — every metric of the model and
# of the popularity baseline bitwise equal (trainer/evaluator.h: the ranks score the one-process
# batches round robin and sum per-user integer ranks exactly) — for item-score ranking of an ID
# model and constrained beam search over a TEXT model; rank 0 scores only its share of the users
# (its debug line says how many) and alone prints the table; and validation ranking during 2-rank
# training (eval.rank_every, split over the ranks) equals `reclm eval` of the saved weights.
set -euo pipefail
source "$(dirname "$0")/../e2e/lib/common.bash"
MPIRUN=("$RECLM_SOURCE_DIR/scripts/mpirun.sh" --mca btl self,tcp --mca btl_tcp_if_include lo
        --mca oob_tcp_if_include lo)

# Every field of two eval reports (JSON) but the wall time, compared exactly: Python parses the
# shortest round-trip decimals nlohmann writes, so equal floats mean equal doubles.
same_report() {  # same_report A.json B.json WHAT
  python3 - "$@" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
for r in (a, b):
    r.pop("seconds")
if a != b:
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            print(f"{sys.argv[3]}: {key}: {a.get(key)} != {b.get(key)}")
    sys.exit(1)
print(f"{sys.argv[3]}: {a['n_users']} users, HR@10 {a['model']['HR@10']!r}, MRR {a['model']['MRR']!r} — identical")
PY
}

# eval_on NAME NP RUN ARGS...: `reclm eval` on NP ranks (1 = no launcher) into $work/NAME.json.
eval_on() {
  local name=$1 np=$2 run=$3; shift 3
  local launcher=("${MPIRUN[@]}" -np "$np")
  [ "$np" -eq 1 ] && launcher=()
  "${launcher[@]}" "$RECLM" eval --run "$run" --set runtime.threads=1 --out "$work/$name.json" "$@" \
    > "$work/$name.txt" 2>&1 || { cat "$work/$name.txt"; fail "$name: eval on $np ranks"; }
  # Rank 0 alone prints the table.
  [ "$(grep -c '^MRR ' "$work/$name.txt")" -eq 1 ] || { cat "$work/$name.txt"; fail "$name: want one table"; }
}

"$RECLM" prepare --synthetic --set prepare.synthetic_users=600 --set prepare.synthetic_items=200 \
  --out "$work/syn.h5" > "$work/prep.txt" 2>&1 || { cat "$work/prep.txt"; fail "prepare --synthetic"; }

# 1. Item scores (ID model): all 600 test users, in batches of 64 over 1, 2 and 3 ranks.
"$RECLM" train --config configs/tiny_rec.pbtxt --set data.dataset="$work/syn.h5" --set train.steps=40 \
  --set eval.val_every=0 --set runtime.threads=1 --set train.run_dir="$work/run_id" \
  > "$work/train_id.txt" 2>&1 || { cat "$work/train_id.txt"; fail "train the ID model"; }
eval_on id_np1 1 "$work/run_id"
for np in 2 3; do
  RECLM_LOG_LEVEL=debug eval_on id_np$np $np "$work/run_id"
  same_report "$work/id_np1.json" "$work/id_np$np.json" "item scores, $np ranks vs 1"
  # The ranks split the users: rank 0 scored only its share (10 batches, round robin).
  share=$(sed -n "s/.*eval: rank 0 of $np scores \([0-9]*\) of 600 users.*/\1/p" "$work/id_np$np.txt")
  [ -n "$share" ] && [ "$share" -gt 0 ] && [ "$share" -lt 600 ] ||
    { cat "$work/id_np$np.txt"; fail "$np ranks: rank 0 did not score a share of the users"; }
  echo "$np ranks: rank 0 scored $share of 600 users"
done
# More ranks than batches (2 batches of 64): a rank with no users still takes part.
eval_on id_few_np1 1 "$work/run_id" --set eval.max_users=100 --split validation
eval_on id_few_np3 3 "$work/run_id" --set eval.max_users=100 --split validation
same_report "$work/id_few_np1.json" "$work/id_few_np3.json" "item scores, 100 validation users, 3 ranks vs 1"

# 2. Beam search over a TEXT model (2D positions): 60 users in batches of 8. Trained long enough
# that the beams find many targets, so equal reports mean equal found ranks, not all-unfound.
"$RECLM" train --config configs/tiny_rec.pbtxt --set data.dataset="$work/syn.h5" \
  --set data.rendering=TEXT --set model.positions=POSITIONS_2D --set data.seq_len=64 \
  --set data.infill_weight=0.5 --set train.steps=300 --set train.micro_batch=8 --set eval.val_every=0 \
  --set runtime.threads=1 --set train.run_dir="$work/run_text" \
  > "$work/train_text.txt" 2>&1 || { cat "$work/train_text.txt"; fail "train the TEXT model"; }
beam=(--set eval.mode=BEAM_SEARCH --set eval.max_users=60 --set eval.beam_size=10 --set eval.users_per_batch=8)
eval_on text_np1 1 "$work/run_text" "${beam[@]}"
python3 - "$work/text_np1.json" <<'PY' || fail "the TEXT eval: not beam search, or no target found"
import json, sys
r = json.load(open(sys.argv[1]))
sys.exit(0 if r["mode"] == "beam_search" and r["model"]["HR@10"] > 0.2 else 1)
PY
for np in 2 3; do
  eval_on text_np$np $np "$work/run_text" "${beam[@]}"
  same_report "$work/text_np1.json" "$work/text_np$np.json" "beam search, $np ranks vs 1"
done

# 3. Validation ranking during 2-rank training: split over the ranks, logged once, and equal to
# `reclm eval` of the final weights (one user per batch in both, so the forwards are the same).
RECLM_LOG_LEVEL=debug "${MPIRUN[@]}" -np 2 "$RECLM" train --config configs/tiny_rec.pbtxt --set data.dataset="$work/syn.h5" \
  --set train.steps=20 --set train.micro_batch=16 --set eval.val_every=0 --set runtime.threads=1 \
  --set eval.rank_every=20 --set eval.rank_users=90 --set eval.users_per_batch=1 \
  --set train.run_dir="$work/run_dp" > "$work/train_dp.txt" 2>&1 || { cat "$work/train_dp.txt"; fail "2-rank training with ranking"; }
grep -q "validation HR@10 .*(90 users)" "$work/train_dp.txt" || { cat "$work/train_dp.txt"; fail "no validation ranking in 2-rank training"; }
grep -q "eval: rank 0 of 2 scores 45 of 90 users" "$work/train_dp.txt" || { cat "$work/train_dp.txt"; fail "2-rank training: the ranks did not split the validation users"; }
python3 - "$work/run_dp/metrics.jsonl" "$work/dp_rank.json" <<'PY'
import json, sys
ranks = [r for r in map(json.loads, open(sys.argv[1])) if r["kind"] == "rank"]
assert len(ranks) == 1, f"{len(ranks)} ranking records (want 1: rank 0 writes metrics)"
r = ranks[0]
for key in ("kind", "step"):
    r.pop(key)
json.dump(r, open(sys.argv[2], "w"))
PY
eval_on dp_eval 2 "$work/run_dp" --split validation --set eval.max_users=90 --set eval.users_per_batch=1
same_report "$work/dp_rank.json" "$work/dp_eval.json" "ranking during 2-rank training vs eval"
echo "mpi evaluation: 2 and 3 ranks equal 1 rank (item scores, beam search, training-time ranking)"
