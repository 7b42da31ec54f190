#!/usr/bin/env bash
# The GPU training benchmark, on a host with a GPU, in one command:
#   1. builds reclm with CUDA into BUILD_DIR — with scripts/build.sh-style cmake, or, when the
#      Debian packages are missing and .debs/ holds them (scripts/offline/fetch_debs.sh), with
#      scripts/offline/build.sh; RECLM_PREBUILT=1 skips the build and uses BUILD_DIR as it is;
#   2. runs the `gpu` tests (ctest -L gpu) — RECLM_SKIP_GPU_TESTS=1 skips them;
#   3. makes the presets' dataset with `reclm prepare --synthetic` (no download; 64000 items,
#      256000 users, ~2 s): datasets/synthetic_64k.h5;
#   4. for each preset (configs/gpu_125m.pbtxt, configs/gpu_350m.pbtxt) trains TRAIN_STEPS steps
#      with reclm (runtime.device from the preset: "cuda") and reads RUN_DIR/metrics.jsonl: tokens
#      per step, tokens/s, MFU and device memory over the steps after the first TRAIN_SKIP
#      (warm-up); then trains the same model with PyTorch (bench/gpu/train_torch.py: bf16 autocast,
#      SDPA, fused AdamW) on unpacked fixed-length sequences of the preset's seq_len, as many per
#      step as make reclm's mean tokens per step;
#   5. prints one table: per preset the parameters, tokens/step, reclm tokens/s, MFU and device
#      memory, PyTorch's, the ratio reclm / PyTorch tokens/s, and the targets (MFU >= 50% for
#      gpu_350m; >= 1.2x PyTorch's tokens/s);
#   6. with VARIANTS, reclm again per variant on each preset (A/B runs in the same session, no
#      PyTorch), and a second table: each variant's tokens/s, MFU, median step and device memory
#      (the plan's) beside the default run's.
# While each reclm and PyTorch run trains, nvidia-smi samples the GPU every 200 ms (RUN.gpu.csv);
# after it, a `gpu:` line gives the mean and lowest SM clock, the mean power, the highest
# temperature and the share of samples with a clock limit active (power cap, thermal, hardware
# slowdown): a kernel that runs slower in the step than alone may just run at a lower clock.
# A reclm run that fails is reported (its log tail) and the PyTorch run still happens.
#
#   bench/gpu/train.sh [BUILD_DIR]          (default build-gpu)
# Environment:
#   PRESETS="gpu_125m gpu_350m"   presets (configs/NAME.pbtxt) to run; gpu_1b3 (1.3B, d_model 2048)
#                                 shows how MFU grows with width (docs/gpu.md)
#   TRAIN_STEPS=30                steps of each run;  TRAIN_SKIP=5  warm-up steps left out
#   TRAIN_SET="k=v ..."           extra reclm --set overrides for every run (e.g. runtime.device=cpu
#                                 model.n_layers=1 for a smoke test; PyTorch gets the same dims;
#                                 runtime.fp32_logits=true for the LM head's fp32-logits form,
#                                 runtime.second_stream=false for one stream,
#                                 runtime.gemm_autotune=true for timed GEMM algorithms; and
#                                 RECLM_GEMM_ALGORITHM_BUCKETS=0 in the environment: cuBLASLt's
#                                 algorithm per exact token count, docs/gpu.md)
#   TRAIN_TIMEOUT=1200            seconds one reclm or PyTorch run may take
#   VARIANTS="label:X=Y X=Y;..."  A/B variants, ';'-separated: each a label, then overrides: a
#                                 key with a dot is a reclm --set (runtime.second_stream=false),
#                                 one without is an environment variable of the run
#                                 (RECLM_GEMM_ALGORITHM_BUCKETS=0, CUDA_MODULE_LOADING=EAGER,
#                                 RECLM_SIDE_GEMM_SMS=100: the side stream's GEMMs on 100 SMs)
#   TORCH=0                       leave PyTorch out (A/B runs of two builds: bench/gpu/ab_builds.sh)
#   TORCH_COMPILE=1               run PyTorch with torch.compile (default: eager)
#   TORCH_DEVICE=auto             train_torch.py --device (auto: cuda when available)
#   PROFILE=1                     also a 12-step run of each preset with RECLM_DEVICE_PROFILE=1 and
#                                 one with =host, their reports printed (docs/gpu.md)
#   PEAK_TFLOPS=0                 the GPU's dense bf16 peak for MFU (0: the table of
#                                 trainer/model_flops.cc by the GPU's name)
#   BENCH_DIR=runs/bench_gpu_train  run directories and logs
# Exit status: non-zero when a step (build, gpu tests, prepare, a reclm or PyTorch run) failed;
# missing the targets only shows in the table.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
build=${1:-build-gpu}
presets=${PRESETS:-gpu_125m gpu_350m}
steps=${TRAIN_STEPS:-30}
skip=${TRAIN_SKIP:-5}
run_timeout=${TRAIN_TIMEOUT:-1200}
bench_dir=${BENCH_DIR:-runs/bench_gpu_train}
dataset=datasets/synthetic_64k.h5
export PYTHONUNBUFFERED=1
status=0

# shellcheck source=bench/gpu/build_gpu.bash
source bench/gpu/build_gpu.bash
reclm=$build/bin/reclm
[ -x "$reclm" ] || { echo "train.sh: $reclm not found (build it, or pass the build directory)"; exit 1; }
limit=()
command -v timeout > /dev/null && limit=(timeout "$run_timeout")

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>/dev/null ||
  echo "train.sh: nvidia-smi not available"
if [ -z "${RECLM_SKIP_GPU_TESTS:-}" ]; then
  echo "== gpu tests"
  (cd "$build" && ctest -L gpu --output-on-failure --timeout 900) || status=1
fi

echo "== dataset $dataset"
"$reclm" prepare --synthetic --set prepare.synthetic_items=64000 --set prepare.synthetic_users=256000 \
  --out "$dataset" 2>&1 | tail -n 7
if [ "${PIPESTATUS[0]}" -ne 0 ] || [ ! -f "$dataset" ]; then
  echo "train.sh: reclm prepare failed"; exit 1
fi

overrides=()
for kv in ${TRAIN_SET:-}; do overrides+=(--set "$kv"); done
torch_args=()
[ -n "${TORCH_COMPILE:-}" ] && [ "${TORCH_COMPILE}" != 0 ] && torch_args+=(--compile)
torch_args+=(--device "${TORCH_DEVICE:-auto}" --peak-tflops "${PEAK_TFLOPS:-0}")
[ "${PEAK_TFLOPS:-0}" != 0 ] && overrides+=(--set runtime.peak_tflops="$PEAK_TFLOPS")
has_torch=1
python3 -c "import torch" 2> /dev/null || has_torch=0
[ "${TORCH:-1}" = 0 ] && has_torch=off

# field PATH of a printed config (`reclm config` output or a .pbtxt): PATH like model.d_model
config_field() {
  awk -v want="$2" '
    { sub(/#.*/, "") }
    /\{[[:space:]]*$/ { name = $1; stack[++depth] = name; next }
    /^[[:space:]]*\}/ { depth--; next }
    /:/ { key = $1; sub(/:$/, "", key); path = ""
          for (i = 1; i <= depth; i++) path = path stack[i] "."
          if (path key == want) { v = $0; sub(/^[^:]*:[[:space:]]*/, "", v); gsub(/"/, "", v); print v; exit } }
  ' "$1"
}

# Averages of the train lines of metrics.jsonl after the first SKIP steps (all but the first
# when there are too few): "tokens_per_step tokens_per_s mfu device_mem_mb steps median_ms"
# (median_ms: the median step time, which the occasional slow step does not move)
summarise_metrics() {
  python3 - "$1" "$2" << 'EOF'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
train = [l for l in lines if l.get("kind") == "train" and not l.get("skipped")]
skip = int(sys.argv[2])
timed = train[skip:] if len(train) > skip else train[1:] or train
if not timed:
    sys.exit(1)
ms = sum(l["ms_per_step"] for l in timed)
tokens = sum(l["tokens"] for l in timed)
mfu = sum(l.get("mfu", 0.0) * l["ms_per_step"] for l in timed) / ms
mem = max(l.get("device_mem_mb", 0.0) for l in timed)
step_ms = sorted(l["ms_per_step"] for l in timed)
mid = len(step_ms) // 2
median = step_ms[mid] if len(step_ms) % 2 else (step_ms[mid - 1] + step_ms[mid]) / 2
print(f"{tokens / len(timed):.0f} {tokens / ms * 1e3:.1f} {mfu:.4f} {mem:.0f} {len(timed)} {median:.1f}")
EOF
}

# The GPU's clock, power and clock limits while a run trains: gpu_sampling_start CSV, then
# gpu_sampling_stop CSV prints the `gpu:` summary line. Nothing without nvidia-smi. The limit
# reasons field is clocks_event_reasons.active in newer drivers, clocks_throttle_reasons.active
# in older ones.
gpu_fields=
for reasons in clocks_event_reasons.active clocks_throttle_reasons.active; do
  if nvidia-smi --query-gpu=clocks.sm,power.draw,temperature.gpu,$reasons --format=csv,noheader,nounits \
       > /dev/null 2>&1; then
    gpu_fields=clocks.sm,power.draw,temperature.gpu,$reasons
    break
  fi
done
gpu_sampler=
gpu_sampling_start() {
  [ -n "$gpu_fields" ] || return 0
  nvidia-smi --query-gpu="$gpu_fields" --format=csv,noheader,nounits -lms 200 > "$1" 2> /dev/null &
  gpu_sampler=$!
}
gpu_sampling_stop() {
  [ -n "$gpu_sampler" ] || return 0
  kill "$gpu_sampler" 2> /dev/null
  wait "$gpu_sampler" 2> /dev/null
  gpu_sampler=
  python3 - "$1" << 'EOF'
import sys
rows = []
for line in open(sys.argv[1]):
    f = [x.strip() for x in line.split(",")]
    try:
        rows.append((float(f[0]), float(f[1]), float(f[2]), int(f[3], 16)))
    except (ValueError, IndexError):
        pass  # "[N/A]", or a line cut off by the kill
busy = [r for r in rows if not r[3] & 0x1]  # the samples where the GPU was not idle
when = "while busy" if busy else "all idle"
busy = busy or rows
if not busy:
    sys.exit(0)
n = len(busy)
share = lambda mask: 100.0 * sum(1 for r in busy if r[3] & mask) / n
print(f"gpu: {n} samples {when}: SM clock mean {sum(r[0] for r in busy) / n:.0f} MHz, "
      f"lowest {min(r[0] for r in busy):.0f}; power mean {sum(r[1] for r in busy) / n:.0f} W; "
      f"temperature max {max(r[2] for r in busy):.0f} C; clock limited by power cap {share(0x4):.0f}%, "
      f"thermal {share(0x60):.0f}%, hardware slowdown {share(0x88):.0f}% of samples")
EOF
}

mkdir -p "$bench_dir"
rows=()
variant_rows=()
# VARIANTS' runs of a preset: run_variants PRESET CONFIG DEFAULT_TPS DEFAULT_MFU DEFAULT_MEDIAN_MS DEFAULT_MIB
run_variants() {
  local preset=$1 config=$2 label spec kv v_dir v_env v_set summary variants
  IFS=';' read -r -a variants <<< "${VARIANTS:-}"
  for spec in "${variants[@]}"; do
    spec=${spec#"${spec%%[![:space:]]*}"}  # (leading blanks)
    [ -n "$spec" ] || continue
    label=${spec%%:*}
    label=${label// /}
    v_env=() v_set=()
    for kv in ${spec#*:}; do
      case ${kv%%=*} in
        *.*) v_set+=(--set "$kv") ;;
        *) v_env+=("$kv") ;;
      esac
    done
    v_dir=$bench_dir/$preset.variant_$label
    rm -rf "$v_dir"
    mkdir -p "$v_dir"
    echo "== $preset: reclm, variant $label ($spec), $steps steps"
    gpu_sampling_start "$v_dir.gpu.csv"
    if ! env "${v_env[@]}" "${limit[@]}" "$reclm" train --config "$config" --set train.steps="$steps" \
         --set train.run_dir="$v_dir" --set train.log_every=1 --set eval.val_every=0 --set eval.rank_every=0 \
         --set checkpoint.every=0 "${overrides[@]}" "${v_set[@]}" > "$v_dir.log" 2>&1; then
      echo "train.sh: variant $label failed (log $v_dir.log):"; tail -n 15 "$v_dir.log"; status=1
      variant_rows+=("$preset|$label|-|-|-|-|$3|$4|$5|$6")
    elif summary=$(summarise_metrics "$v_dir/metrics.jsonl" "$skip"); then
      read -r _ v_tps v_mfu v_mem _ v_median <<< "$summary"
      variant_rows+=("$preset|$label|$v_tps|$v_mfu|$v_median|$v_mem|$3|$4|$5|$6")
    else
      echo "train.sh: no train lines in $v_dir/metrics.jsonl"; status=1
    fi
    gpu_sampling_stop "$v_dir.gpu.csv"
  done
}
fmt_mfu() {  # a fraction as a percentage; "-" and "n/a" as they are
  case $1 in
    - | n/a) echo "$1" ;;
    *) awk -v m="$1" 'BEGIN { printf "%.1f%%", 100 * m }' ;;
  esac
}
for preset in $presets; do
  config=configs/$preset.pbtxt
  run_dir=$bench_dir/$preset
  echo "== $preset: reclm, $steps steps (${TRAIN_SET:-no extra overrides})"
  effective=$bench_dir/$preset.config.pbtxt
  if ! "$reclm" config --config "$config" "${overrides[@]}" > "$effective" 2> "$effective.err"; then
    echo "train.sh: reclm config failed: $(cat "$effective.err"); reading the dims from $config"
    cp "$config" "$effective"
  fi
  d_model=$(config_field "$effective" model.d_model)
  layers=$(config_field "$effective" model.n_layers)
  heads=$(config_field "$effective" model.n_heads)
  kv_heads=$(config_field "$effective" model.n_kv_heads)
  d_ff=$(config_field "$effective" model.d_ff)
  theta=$(config_field "$effective" model.rope_theta)
  vocab=$(config_field "$effective" model.vocab_size)
  seq_len=$(config_field "$effective" data.seq_len)
  [ "${d_ff:-0}" = 0 ] && d_ff=$(( (8 * d_model / 3 + 255) / 256 * 256 ))
  [ "${vocab:-0}" = 0 ] && vocab=$("$reclm" info "$dataset" | sed -n 's/^vocabulary: \([0-9]*\) tokens.*/\1/p')

  rm -rf "$run_dir"
  mkdir -p "$run_dir"
  gpu_sampling_start "$run_dir.gpu.csv"
  "${limit[@]}" "$reclm" train --config "$config" --set train.steps="$steps" --set train.run_dir="$run_dir" \
    --set train.log_every=1 --set eval.val_every=0 --set eval.rank_every=0 --set checkpoint.every=0 \
    "${overrides[@]}" > "$run_dir.log" 2>&1
  rc=$?
  gpu_sampling_stop "$run_dir.gpu.csv"
  grep -E '^(model|data|train|done):' "$run_dir.log"
  params=$(sed -n 's/^model: \([0-9.]*M\) parameters.*/\1/p' "$run_dir.log")
  r_tokens=- r_tps=- r_mfu=- r_mem=- r_median=-
  if [ $rc -ne 0 ]; then
    echo "train.sh: reclm train failed (exit $rc; log $run_dir.log):"; tail -n 15 "$run_dir.log"; status=1
  elif summary=$(summarise_metrics "$run_dir/metrics.jsonl" "$skip"); then
    read -r r_tokens r_tps r_mfu r_mem n_timed r_median <<< "$summary"
    echo "reclm: $n_timed steps after $skip warm-up: $r_tokens tokens/step, $r_tps tokens/s, MFU $r_mfu," \
      "device memory $r_mem MiB; median step $r_median ms"
  else
    echo "train.sh: no train lines in $run_dir/metrics.jsonl"; status=1
  fi

  [ -n "${VARIANTS:-}" ] && run_variants "$preset" "$config" "$r_tps" "$r_mfu" "${r_median:--}" "$r_mem"

  # PROFILE=1: two more short runs, RECLM_DEVICE_PROFILE=1 (device time by phase) and =host (how
  # long the host waited for the GPU: near 100% means CUDA graphs cannot pay)
  if [ -n "${PROFILE:-}" ] && [ "${PROFILE}" != 0 ]; then
    for mode in 1 host; do
      profile_dir=$run_dir.profile_$mode
      rm -rf "$profile_dir"
      echo "== $preset: reclm, RECLM_DEVICE_PROFILE=$mode, $(( steps < 12 ? steps : 12 )) steps"
      RECLM_DEVICE_PROFILE=$mode "${limit[@]}" "$reclm" train --config "$config" \
        --set train.steps=$(( steps < 12 ? steps : 12 )) --set train.run_dir="$profile_dir" --set train.log_every=1 \
        --set eval.val_every=0 --set eval.rank_every=0 --set checkpoint.every=0 "${overrides[@]}" \
        > "$profile_dir.log" 2>&1 || { echo "train.sh: profiled run failed (log $profile_dir.log)"; status=1; }
      awk '/device profile/ { on = 1; print; next } on && /^  / { print; next } { on = 0 }' "$profile_dir.log"
    done
  fi

  # PyTorch: fixed-length sequences of seq_len, as many as make reclm's tokens per step
  # (16384 tokens when reclm gave none).
  tokens_target=$r_tokens
  [ "$tokens_target" = - ] && tokens_target=16384
  t_micro=$(( (tokens_target + seq_len / 2) / seq_len ))
  [ "$t_micro" -lt 1 ] && t_micro=1
  t_tps=- t_mfu=- t_mem=-
  echo "== $preset: PyTorch, $t_micro x $seq_len tokens/step, $skip warm-up + $(( steps > skip ? steps - skip : 1 )) timed steps"
  if [ $has_torch = 1 ]; then
    gpu_sampling_start "$run_dir.torch.gpu.csv"
    "${limit[@]}" python3 bench/gpu/train_torch.py --d-model "$d_model" --layers "$layers" --heads "$heads" \
      --kv-heads "$kv_heads" --d-ff "$d_ff" --vocab "$vocab" --seq-len "$seq_len" --micro-batch "$t_micro" \
      --rope-theta "$theta" --steps $(( steps > skip ? steps - skip : 1 )) --warmup-steps "$skip" \
      "${torch_args[@]}" 2>&1 | tee "$run_dir.torch.log"
    rc=${PIPESTATUS[0]}
    gpu_sampling_stop "$run_dir.torch.gpu.csv"
    if [ "$rc" -ne 0 ]; then
      echo "train.sh: train_torch.py failed (exit $rc; log $run_dir.torch.log)"; status=1
    else
      line=$(grep '^torch: tokens/s' "$run_dir.torch.log" | tail -n 1)
      t_tps=$(sed -n 's/.*tokens\/s \([^,]*\),.*/\1/p' <<< "$line")
      t_mfu=$(sed -n 's/.*mfu \([^,]*\),.*/\1/p' <<< "$line")
      t_mem=$(sed -n 's/.*peak_mem_mb \([^,]*\),.*/\1/p' <<< "$line")
    fi
  elif [ $has_torch = off ]; then
    echo "train.sh: TORCH=0: peer skipped"
  else
    echo "train.sh: PyTorch is not importable here; peer skipped"
  fi
  rows+=("$preset|${params:--}|$r_tokens|$r_tps|$r_mfu|$r_mem|$t_micro x $seq_len|$t_tps|$t_mfu|$t_mem")
done

echo
echo "== GPU training: reclm vs PyTorch ($steps steps, first $skip left out; PyTorch trains unpacked"
echo "   fixed-length sequences of seq_len, reclm packed user histories; MFU = model FLOPs / peak)"
printf '%-10s %8s %9s %12s %7s %9s %10s %12s %7s %9s %7s  %s\n' preset params tok/step \
  "reclm tok/s" "MFU" "mem MiB" "torch BxS" "torch tok/s" "MFU" "mem MiB" ratio targets
for row in "${rows[@]}"; do
  IFS='|' read -r preset params r_tokens r_tps r_mfu r_mem t_shape t_tps t_mfu t_mem <<< "$row"
  ratio=- verdict=""
  if [ "$r_tps" != - ] && [ "$t_tps" != - ]; then
    ratio=$(awk -v a="$r_tps" -v b="$t_tps" 'BEGIN { printf "%.2fx", a / b }')
    verdict=$(awk -v a="$r_tps" -v b="$t_tps" 'BEGIN { print (a >= 1.2 * b ? "tok/s >= 1.2x: met" : "tok/s >= 1.2x: MISSED") }')
  else
    verdict="tok/s >= 1.2x: n/a"
  fi
  if [ "$preset" = gpu_350m ]; then
    if [ "$r_mfu" != - ]; then
      verdict+=$(awk -v m="$r_mfu" 'BEGIN { print (m >= 0.5 ? "; MFU >= 50%: met" : "; MFU >= 50%: MISSED") }')
    else
      verdict+="; MFU >= 50%: n/a"
    fi
  fi
  printf '%-10s %8s %9s %12s %7s %9s %10s %12s %7s %9s %7s  %s\n' "$preset" "$params" "$r_tokens" \
    "$r_tps" "$(fmt_mfu "$r_mfu")" "$r_mem" "$t_shape" "$t_tps" "$(fmt_mfu "$t_mfu")" "$t_mem" "$ratio" "$verdict"
done

if [ ${#variant_rows[@]} -gt 0 ]; then
  echo
  echo "== reclm variants (the same $steps steps, first $skip left out; MiB: the device plan;" \
    "ratio: variant / default tokens/s)"
  printf '%-10s %-16s %12s %7s %10s %8s %13s %7s %10s %8s %7s\n' preset variant "tok/s" MFU "median ms" MiB \
    "default tok/s" MFU "median ms" MiB ratio
  for row in "${variant_rows[@]}"; do
    IFS='|' read -r preset label v_tps v_mfu v_median v_mem d_tps d_mfu d_median d_mem <<< "$row"
    ratio=-
    [ "$v_tps" != - ] && [ "$d_tps" != - ] && ratio=$(awk -v a="$v_tps" -v b="$d_tps" 'BEGIN { printf "%.3fx", a / b }')
    printf '%-10s %-16s %12s %7s %10s %8s %13s %7s %10s %8s %7s\n' "$preset" "$label" "$v_tps" \
      "$(fmt_mfu "$v_mfu")" "$v_median" "$v_mem" "$d_tps" "$(fmt_mfu "$d_mfu")" "$d_median" "$d_mem" "$ratio"
  done
fi
exit $status
