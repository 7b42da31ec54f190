#!/usr/bin/env bash
# Plots a run's metrics.jsonl: RUN_DIR/loss.png (train and val loss), RUN_DIR/lr.png and
# RUN_DIR/throughput.png (tokens/s), all against the step. Needs python3 and gnuplot.
# Usage: scripts/plot.sh RUN_DIR      Exit 2 on bad input (no dir, no metrics, no train lines).
set -euo pipefail

die() { echo "plot.sh: $*" >&2; exit 2; }

(( $# == 1 )) || die "usage: scripts/plot.sh RUN_DIR"
run_dir=$1
[[ -d $run_dir ]] || die "run directory '$run_dir' does not exist"
metrics=$run_dir/metrics.jsonl
[[ -f $metrics ]] || die "no metrics file '$metrics'"
command -v gnuplot >/dev/null || { echo "plot.sh: gnuplot not found (apt-get install gnuplot-nox)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# JSONL → whitespace columns, for the latest run in the file. A line that does not parse (e.g. half-written by a live run) is
# skipped with a warning rather than failing the whole plot.
python3 - "$metrics" "$tmp" <<'EOF'
import json, sys
metrics, tmp = sys.argv[1], sys.argv[2]
train, val = [], []
for n, line in enumerate(open(metrics), 1):
    if not line.strip():
        continue
    try:
        r = json.loads(line)
        kind = r.get("kind")
        if kind == "run_start":  # a run re-using the directory appends: plot only the latest
            train, val = [], []
        elif kind == "train":
            train.append(f'{r["step"]} {r["loss"]} {r["lr"]} {r["tokens_per_s"]}\n')
        elif kind == "val":
            val.append(f'{r["step"]} {r["val_loss"]}\n')
    except (ValueError, KeyError, AttributeError) as e:
        print(f"plot.sh: {metrics}:{n}: skipped ({e!r})", file=sys.stderr)
open(f"{tmp}/train.dat", "w").writelines(train)
open(f"{tmp}/val.dat", "w").writelines(val)
EOF
[[ -s $tmp/train.dat ]] || die "'$metrics' has no train lines"

# pngcairo draws antialiased lines; the libgd png terminal is the fallback on builds without it.
terminal=png
gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1 && terminal=pngcairo

# gnuplot refuses a plot whose only file is empty, so the val curve is added only when present.
loss_plot="'$tmp/train.dat' using 1:2 with lines lw 1.5 title 'train'"
if [[ -s $tmp/val.dat ]]; then
  loss_plot+=", '$tmp/val.dat' using 1:2 with linespoints pt 7 ps 0.8 lw 2 title 'val'"
fi

gnuplot <<EOF
set terminal $terminal size 900,540
set grid
set xlabel 'step'
set key top right
set output '$run_dir/loss.png'
set title 'loss'
set ylabel 'cross-entropy'
plot $loss_plot
set output '$run_dir/lr.png'
set title 'learning rate'
set ylabel 'lr'
set format y '%.1e'
plot '$tmp/train.dat' using 1:3 with lines lw 1.5 notitle
set output '$run_dir/throughput.png'
set title 'throughput'
set ylabel 'tokens/s'
set format y '%g'
set yrange [0:*]
plot '$tmp/train.dat' using 1:4 with lines lw 1.5 notitle
EOF

printf '%s\n' "$run_dir/loss.png" "$run_dir/lr.png" "$run_dir/throughput.png"
