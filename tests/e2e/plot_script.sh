#!/usr/bin/env bash
# scripts/plot.sh draws the three PNGs from a metrics.jsonl and rejects bad input with exit 2.
# Needs no reclm binary: the metrics file is synthetic, in the format `reclm train` writes.
set -euo pipefail

src=${RECLM_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
plot=$src/scripts/plot.sh
fail() { echo "FAIL: $*" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

run=$tmp/run
mkdir "$run"
for step in 1 2 3 4 5 6 7 8 9 10; do
  echo "{\"kind\":\"train\",\"step\":$step,\"loss\":$((60 - step))e-1,\"lr\":${step}e-5,\"grad_norm\":0.8,\"tokens\":2048,\"tokens_per_s\":50$step.5,\"ms_per_step\":400,\"peak_rss_mb\":800,\"time_s\":$step.0}"
  if (( step % 5 == 0 )); then
    echo "{\"kind\":\"val\",\"step\":$step,\"val_loss\":$((62 - step))e-1}"
  fi
done >"$run/metrics.jsonl"

"$plot" "$run" >"$tmp/out" || fail "plot.sh exited $? on a valid run directory"
png_magic=$(printf '\x89PNG\r\n\x1a\n' | od -An -tx1)
for name in loss lr throughput; do
  png=$run/$name.png
  [[ -s $png ]] || fail "$png missing or empty"
  [[ $(head -c 8 "$png" | od -An -tx1) == "$png_magic" ]] || fail "$png is not a PNG"
  grep -qxF "$png" "$tmp/out" || fail "plot.sh did not print $png"
done

# Bad input: exit code 2 (a user mistake), never 0 or 1.
expect_2() {
  local rc=0
  "$plot" "$@" >/dev/null 2>&1 || rc=$?
  (( rc == 2 )) || fail "plot.sh $* exited $rc, expected 2"
}
expect_2 "$tmp/does-not-exist"
mkdir "$tmp/empty"
expect_2 "$tmp/empty"
echo '{"kind":"val","step":5,"val_loss":2.5}' >"$tmp/empty/metrics.jsonl"
expect_2 "$tmp/empty"
# A second run appending to the same metrics.jsonl: only the latest run is plotted, so a
# run_start followed by no train lines means there is nothing to plot.
cp "$run/metrics.jsonl" "$tmp/empty/metrics.jsonl"
echo '{"kind":"run_start","steps":10}' >>"$tmp/empty/metrics.jsonl"
expect_2 "$tmp/empty"

echo "PASS"
