#!/usr/bin/env bash
# CPU training throughput of reclm against PyTorch: the same model (bench.pbtxt), fp32, the
# same thread count, the same number of steps, the first WARMUP steps left out of the timing.
# Prints a table and, as the last line, one JSON object (reclm/pytorch tokens/s and ratio).
#
# Usage: bench/cpu_vs_pytorch/run.sh
#   RECLM    reclm binary (default: build/bin/reclm under the repo root; this script builds nothing)
#   THREADS  OpenMP/BLAS threads for both (default: nproc)
#   STEPS    optimizer steps per run (default 20); WARMUP untimed steps (default 3)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
RECLM=${RECLM:-$root/build/bin/reclm}
THREADS=${THREADS:-$(nproc)}
STEPS=${STEPS:-20}
WARMUP=${WARMUP:-3}

if [[ ! -x $RECLM ]]; then
  echo "run.sh: no reclm binary at $RECLM (build it, or set RECLM=path)" >&2
  exit 2
fi
if (( STEPS <= WARMUP )); then
  echo "run.sh: STEPS ($STEPS) must exceed WARMUP ($WARMUP)" >&2
  exit 2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# reclm. Its stdout is kept to read the parameter count it prints; progress still shows on stderr.
echo "== reclm: $STEPS steps, $THREADS threads" >&2
"$RECLM" train --config "$here/bench.pbtxt" \
  --set train.run_dir="$tmp/run" --set train.steps="$STEPS" \
  --set eval.val_every=0 --set train.log_every=1 --set runtime.threads="$THREADS" \
  2>&1 | tee "$tmp/reclm.log" >&2

# PyTorch: optional. Try an install once; if that fails the bench still reports reclm.
if ! python3 -c "import torch" 2>/dev/null; then
  echo "== torch not importable; trying: python3 -m pip install --quiet torch" >&2
  python3 -m pip install --quiet torch >&2 || true
fi
if python3 -c "import torch" 2>/dev/null; then
  echo "== PyTorch: $STEPS steps, $THREADS threads" >&2
  python3 "$here/pytorch_model.py" --steps "$STEPS" --warmup "$WARMUP" --threads "$THREADS" \
    >"$tmp/pytorch.json"
else
  echo "PyTorch unavailable: skipped"
fi

cpu=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)
python3 - "$tmp" "$WARMUP" "$STEPS" "$THREADS" "$cpu, $(nproc) cores" <<'EOF'
import json, os, re, sys

tmp, warmup, steps, threads, machine = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]

# reclm: tokens/s over the steps after warmup, from the per-step metrics it logged.
train = []
with open(os.path.join(tmp, "run", "metrics.jsonl")) as f:
    for line in f:
        if line.strip():
            rec = json.loads(line)
            if rec.get("kind") == "train":
                train.append(rec)
if len(train) <= warmup:
    sys.exit(f"run.sh: reclm logged {len(train)} train steps, need more than WARMUP={warmup}")
timed = train[warmup:]
seconds = sum(r["ms_per_step"] for r in timed) / 1000
reclm = {"tokens_per_s": sum(r["tokens"] for r in timed) / seconds,
         "ms_per_step": 1000 * seconds / len(timed),
         "first_loss": train[0]["loss"], "last_loss": train[-1]["loss"]}

# reclm prints "model: 10.74M parameters (10744704), ..."; without the exact count in
# parentheses the check compares at the precision printed.
log = open(os.path.join(tmp, "reclm.log")).read()
m = re.search(r"model:\s*([\d.,]+)\s*([KMB]?)\s*param\w*(?:\s*\((\d+)\))?", log)
reclm_params = (m.group(3) or m.group(1) + m.group(2)) if m else None

pt_path = os.path.join(tmp, "pytorch.json")
pt = json.loads(open(pt_path).read().strip().splitlines()[-1]) if os.path.exists(pt_path) else None

rows = [("reclm", reclm, reclm_params, "")]
if pt:
    rows.append(("PyTorch", pt, str(pt["params"]), pt["torch_version"]))
print(f"{'':8} {'tokens/s':>10} {'ms/step':>9} {'first loss':>10} {'last loss':>9} {'params':>10}  version")
for name, r, params, version in rows:
    print(f"{name:8} {r['tokens_per_s']:10.1f} {r['ms_per_step']:9.1f} {r['first_loss']:10.4f} "
          f"{r['last_loss']:9.4f} {params or 'not printed':>10}  {version}")
print(f"threads {threads}, steps {steps} (first {warmup} untimed), machine: {machine}")
mismatch = False
if pt:
    print("Losses differ between the two: different data (reclm: synthetic corpus; PyTorch: "
          "random Zipf tokens) and init streams. They are shown only to see that both train.")
    if reclm_params is None:
        print(f"parameter check skipped: reclm printed no 'model: N parameters' line "
              f"(PyTorch: {pt['params']})")
    else:
        if m.group(3):
            same = int(m.group(3)) == pt["params"]
        else:
            digits, suffix = m.group(1).replace(",", ""), m.group(2)
            scale = {"": 1, "K": 1e3, "M": 1e6, "B": 1e9}[suffix]
            decimals = len(digits.split(".")[1]) if "." in digits else 0
            same = f"{pt['params'] / scale:.{decimals}f}" == f"{float(digits):.{decimals}f}"
        mismatch = not same
        print(f"parameter check: reclm {reclm_params}, PyTorch {pt['params']}: "
              f"{'same' if same else 'DIFFERENT: the two models do not match, ratio is meaningless'}")

pt_tps = pt["tokens_per_s"] if pt else None
print(json.dumps({"reclm_tokens_per_s": round(reclm["tokens_per_s"], 1),
                  "pytorch_tokens_per_s": round(pt_tps, 1) if pt else None,
                  "ratio": round(reclm["tokens_per_s"] / pt_tps, 3) if pt else None,
                  "threads": threads, "steps": steps, "machine": machine}))
sys.exit(1 if mismatch else 0)  # after the JSON, so a mismatch is reported and still fails
EOF
