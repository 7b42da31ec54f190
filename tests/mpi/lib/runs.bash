# Helpers of the mpi tests (sourced): loss sequences from a run's metrics.jsonl, and a run
# directory set up to resume from an earlier run's checkpoint.
#   losses METRICS [KINDS]   the losses of the records of these kinds (default "train"; e.g.
#                            "train val"), ordered by kind then step, space-separated
#   same_losses A B RTOL     passes when the two sequences have the same length and agree to
#                            relative tolerance RTOL; prints the worst difference
losses() {
  python3 - "$1" "${2:-train}" <<'PY'
import json, sys
kinds = sys.argv[2].split()
by_key = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["kind"] in kinds:
        by_key[(kinds.index(r["kind"]), r["step"])] = r["loss"] if r["kind"] == "train" else r["val_loss"]
print(" ".join(repr(by_key[k]) for k in sorted(by_key)))
PY
}
same_losses() {
  python3 - "$1" "$2" "$3" <<'PY'
import sys
a, b = ([float(x) for x in s.split()] for s in sys.argv[1:3])
rtol = float(sys.argv[3])
worst = max((abs(x - y) / abs(x) for x, y in zip(a, b)), default=0.0)
print(f"{len(a)} values, worst relative difference {worst:.2e} (tolerance {rtol:g})")
sys.exit(0 if len(a) == len(b) and len(a) > 0 and worst <= rtol else 1)
PY
}
# resume_dir_from SOURCE_RUN RUN STEP: RUN/checkpoints holds SOURCE_RUN's checkpoints up to
# step STEP (zero-padded, e.g. 00000008), with `latest` pointing at it.
resume_dir_from() {
  mkdir -p "$2"
  cp -r "$1/checkpoints" "$2/"
  echo "step_$3" > "$2/checkpoints/latest"
  local dir
  for dir in "$2"/checkpoints/step_*; do
    [[ "$(basename "$dir")" > "step_$3" ]] && rm -rf "$dir"
  done
  return 0
}
