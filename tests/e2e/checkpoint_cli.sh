#!/usr/bin/env bash
# Checkpoints through the real binary: a run killed with SIGKILL at random moments and resumed
# with `--resume auto` ends with exactly the losses of an uninterrupted run; a full disk (a file
# size limit: EFBIG) with on_failure CONTINUE / STOP; a corrupted or mismatched checkpoint exits 2
# naming what is wrong; --resume DIR without --config; `reclm info` on checkpoints.
set -euo pipefail
source "$(dirname "$0")/lib/common.bash"

common=(--config configs/tiny.pbtxt --set train.steps=60 --set model.dropout=0.1
        --set eval.val_every=0 --set checkpoint.every=1 --set checkpoint.async=false)

# Per-step losses of a run's metrics.jsonl: the last line written for each step wins.
losses() {
  python3 -c '
import json, sys
by_step = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["kind"] == "train": by_step[r["step"]] = r["loss"]
print(" ".join(repr(by_step[s]) for s in sorted(by_step)))' "$1"
}

# 1. Uninterrupted reference run.
"$RECLM" train "${common[@]}" --set train.run_dir="$work/full" > "$work/full.txt" 2>&1 || { cat "$work/full.txt"; fail "reference run"; }

# 2. The same run, killed -9 three times at random moments, each time resumed with --resume auto.
for kill_no in 1 2 3; do
  "$RECLM" train "${common[@]}" --set train.run_dir="$work/killed" --resume auto > "$work/k$kill_no.txt" 2>&1 &
  pid=$!
  sleep "0.$((RANDOM % 6 + 3))"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if [ -e "$work/killed/checkpoints/latest" ]; then
    "$RECLM" info "$work/killed/checkpoints" --verify > "$work/info$kill_no.txt" 2>&1 || { cat "$work/info$kill_no.txt"; fail "checkpoint unreadable after kill $kill_no"; }
  fi
done
"$RECLM" train "${common[@]}" --set train.run_dir="$work/killed" --resume auto > "$work/final.txt" 2>&1 || { cat "$work/final.txt"; fail "final resume"; }
grep -q "resumed from" "$work/final.txt" || { cat "$work/k1.txt" "$work/final.txt"; fail "the last run did not resume (were the kills too late?)"; }
[ "$(losses "$work/full/metrics.jsonl")" = "$(losses "$work/killed/metrics.jsonl")" ] || {
  paste <(losses "$work/full/metrics.jsonl" | tr ' ' '\n') <(losses "$work/killed/metrics.jsonl" | tr ' ' '\n') | head -70
  fail "killed-and-resumed losses differ from the uninterrupted run"; }
# The final weights and moments too: every tensor checksum of the two step-60 manifests agrees.
[ "$(grep xxhash64 "$work/full/checkpoints/step_00000060/manifest.pbtxt")" = \
  "$(grep xxhash64 "$work/killed/checkpoints/step_00000060/manifest.pbtxt")" ] || fail "final tensors differ"
"$RECLM" info "$work/killed/checkpoints/step_00000060" --verify | grep -q "every checksum matches" || fail "info --verify"
[ "$(ls "$work/killed/checkpoints" | grep -c '^step_')" -eq 3 ] || { ls -a "$work/killed/checkpoints"; fail "retention did not keep the last 3"; }

# 3. Resume from an explicit checkpoint without --config: the checkpoint's config is used.
"$RECLM" train --resume "$work/full/checkpoints/step_00000059" --set train.run_dir="$work/from_dir" \
  > "$work/from_dir.txt" 2>&1 || { cat "$work/from_dir.txt"; fail "--resume DIR without --config"; }
grep -q "continuing at step 60 of 60" "$work/from_dir.txt" || { cat "$work/from_dir.txt"; fail "did not continue at step 60"; }

# 4. A disk that fills up: checkpoints beyond 40 KB fail with EFBIG.
big=(--config configs/tiny.pbtxt --set train.steps=12 --set eval.val_every=0 --set checkpoint.every=4)
set +e
(ulimit -f 40; "$RECLM" train "${big[@]}" --set train.run_dir="$work/full_disk" --set checkpoint.on_failure=STOP) > "$work/stop.txt" 2>&1
code=$?
set -e
[ "$code" -eq 2 ] || { cat "$work/stop.txt"; fail "on_failure STOP: exit $code, want 2"; }
grep -q "checkpoint at step 4 failed.*stopping" "$work/stop.txt" || { cat "$work/stop.txt"; fail "STOP message"; }
[ ! -e "$work/full_disk/checkpoints/latest" ] || fail "a failed checkpoint was marked latest"
set +e
(ulimit -f 40; "$RECLM" train "${big[@]}" --set train.run_dir="$work/full_disk2") > "$work/cont.txt" 2>&1
set -e
grep -q "checkpoint at step 12 failed.*training goes on" "$work/cont.txt" || { cat "$work/cont.txt"; fail "CONTINUE message"; }
grep -q '"step":12' "$work/full_disk2/metrics.jsonl" || fail "CONTINUE did not train to the end"

# 5. Damaged or mismatched checkpoints exit 2 naming what is wrong.
cp -r "$work/full/checkpoints/step_00000060" "$work/truncated"
truncate -s 5000 "$work/truncated/model.h5"
expect_exit2 "model.h5" train "${common[@]}" --set train.run_dir="$work/bad" --resume "$work/truncated"
expect_exit2 "model.d_model: 32 in the checkpoint, 64 in the config" \
  train "${common[@]}" --set model.d_model=64 --set train.run_dir="$work/bad" --resume "$work/full/checkpoints"
expect_exit2 "not a checkpoint" train "${common[@]}" --set train.run_dir="$work/bad" --resume "$work"
expect_exit2 "field checkpoint.every: must be >= 0" train "${common[@]}" --set checkpoint.every=-1
# Without --config the checkpoint's config is the one checked: the message names it and the --set.
expect_exit2 "step_00000059/manifest.pbtxt with --set train.steps=0: field train.steps" \
  train --resume "$work/full/checkpoints/step_00000059" --set train.steps=0
echo "checkpoint CLI: kill/resume bitwise, full disk, damaged and mismatched checkpoints OK"
