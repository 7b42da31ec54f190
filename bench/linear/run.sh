#!/usr/bin/env bash
# GEMM throughput of reclm's linear op (OpenBLAS) and PyTorch's (MKL) on the shapes of the
# bench/cpu_vs_pytorch model, same thread count, same run. It tells how much of the training
# ratio the GEMMs can give: both trainers spend most of a step in them.
# Usage: bench/linear/run.sh   (env: THREADS=$(nproc), TOKENS=2048, BENCH=build/bin/bench_linear)
set -euo pipefail
cd "$(dirname "$0")/../.."
THREADS=${THREADS:-$(nproc)}
TOKENS=${TOKENS:-2048}
BENCH=${BENCH:-build/bin/bench_linear}
[ -x "$BENCH" ] || { echo "run.sh: $BENCH not built (scripts/build.sh)" >&2; exit 2; }
SHAPES=(384:384 384:1024 1024:384 384:320)

ours=$("$BENCH" "$TOKENS" "$THREADS" "${SHAPES[@]}")
if ! python3 -c "import torch" 2>/dev/null; then
  echo "PyTorch unavailable: skipped"; echo "$ours"; exit 0
fi
theirs=$(python3 - "$TOKENS" "$THREADS" "${SHAPES[@]}" <<'PY'
import json, sys, time, torch
T, threads = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
for s in sys.argv[3:]:
    C, OC = map(int, s.split(":"))
    x, w, dy = torch.rand(T, C) * 2 - 1, torch.rand(OC, C) * 2 - 1, torch.rand(T, OC) * 2 - 1
    for name, f in [("forward", lambda: x @ w.t()), ("dinput", lambda: dy @ w), ("dweight", lambda: dy.t() @ x)]:
        for _ in range(3): f()
        best = 1e30
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(10): f()
            best = min(best, (time.perf_counter() - t0) / 10 * 1e3)
        print(json.dumps({"shape": s, "pass": name, "ms": round(best, 3), "gflops": round(2 * T * C * OC / best / 1e6, 1)}))
PY
)
python3 - "$ours" "$theirs" "$THREADS" "$TOKENS" <<'PY'
import json, sys
ours = [json.loads(l) for l in sys.argv[1].splitlines()]
theirs = [json.loads(l) for l in sys.argv[2].splitlines()]
print(f"{'shape C:OC':>10} {'pass':>8} {'reclm GFLOP/s':>14} {'torch GFLOP/s':>14} {'ratio':>6}")
total_ours = total_theirs = 0.0
for a, b in zip(ours, theirs):
    total_ours += a["ms"]; total_theirs += b["ms"]
    print(f"{a['shape']:>10} {a['pass']:>8} {a['gflops']:>14.1f} {b['gflops']:>14.1f} {a['ms'] and b['ms'] / a['ms']:>6.2f}")
print(json.dumps({"reclm_ms": round(total_ours, 2), "pytorch_ms": round(total_theirs, 2),
                  "ratio": round(total_theirs / total_ours, 3), "threads": int(sys.argv[3]), "tokens": int(sys.argv[4])}))
PY
