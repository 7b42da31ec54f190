#!/usr/bin/env bash
# Set-up + build + the demo job end to end on the CPU: trains a small Llama-style model on the
# built-in synthetic corpus (configs/quickstart.pbtxt) and draws its curves.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "== building reclm"
scripts/build.sh
echo "== training (configs/quickstart.pbtxt) — loss should fall from ~5.8 to well under 1"
build/bin/reclm train --config configs/quickstart.pbtxt "$@"
run_dir=$(build/bin/reclm config --config configs/quickstart.pbtxt "$@" | sed -n 's/^ *run_dir: "\(.*\)"/\1/p')
scripts/plot.sh "$run_dir"
