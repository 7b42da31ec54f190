#!/usr/bin/env bash
# Set-up + build + the demo job end to end on the CPU: prepare the built-in synthetic dataset,
# train a small recommender on it (configs/quickstart.pbtxt), evaluate it by full ranking beside
# the popularity baseline, ask it for recommendations, and draw its curves.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "== building reclm"
scripts/build.sh
reclm=build/bin/reclm
echo "== preparing the synthetic dataset (datasets/synthetic.h5)"
$reclm prepare --synthetic --out datasets/synthetic.h5
echo "== training (configs/quickstart.pbtxt)"
$reclm train --config configs/quickstart.pbtxt "$@"
run_dir=$($reclm config --config configs/quickstart.pbtxt "$@" | sed -n 's/^ *run_dir: "\(.*\)"/\1/p')
echo "== evaluating on the test split (full ranking, beside popularity)"
$reclm eval --run "$run_dir"
echo "== recommendations after the history item3 item17 item42"
$reclm recommend --checkpoint "$run_dir" --history "item3 item17 item42" -k 5
scripts/plot.sh "$run_dir"
