#!/usr/bin/env bash
# `reclm config` end to end: the effective config on stdout, and every kind of bad input
# (syntax, unknown field, bad --set value, broken rule, missing file) → exit 2 with a message
# naming the file:line or the field, and nothing on stdout.
# Env: RECLM = the reclm binary, RECLM_SOURCE_DIR = the repository root.
set -euo pipefail

: "${RECLM:?set RECLM to the reclm binary}"
: "${RECLM_SOURCE_DIR:?set RECLM_SOURCE_DIR to the repository root}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

failures=0
fail() {
  echo "FAIL: $check: $*" >&2
  echo "  stdout: $(head -c 2000 "$tmp/stdout")" >&2
  echo "  stderr: $(head -c 2000 "$tmp/stderr")" >&2
  failures=$((failures + 1))
}

# run NAME ARGS...: runs `reclm ARGS...`, keeping stdout, stderr and the exit code for the checks.
run() {
  check=$1
  shift
  rc=0
  "$RECLM" "$@" >"$tmp/stdout" 2>"$tmp/stderr" || rc=$?
}
expect_rc() { [[ $rc == "$1" ]] || fail "exit code $rc, expected $1"; }
expect_stdout() { grep -qF -- "$1" "$tmp/stdout" || fail "stdout lacks '$1'"; }
expect_stderr() { grep -qF -- "$1" "$tmp/stderr" || fail "stderr lacks '$1'"; }
# A user mistake: exit 2, one "error: ..." message, no stack dump, nothing half-printed.
expect_user_error() {
  expect_rc 2
  [[ ! -s $tmp/stdout ]] || fail "stdout is not empty"
  grep -q '^error: ' "$tmp/stderr" || fail "stderr has no 'error: ' line"
  for needle in "$@"; do expect_stderr "$needle"; done
}

tiny=$RECLM_SOURCE_DIR/configs/tiny.pbtxt

run "tiny with --set" config --config "$tiny" --set train.lr=0.01
expect_rc 0
expect_stdout "lr: 0.01"
expect_stdout "d_model: 32"
expect_stdout 'run_dir: "runs/tiny"'

run "defaults, every group printed" config
expect_rc 0
for line in "vocab_size: 0" "n_kv_heads: 4" "d_ff: 768" "checkpoint {" 'device: "cpu"'; do
  expect_stdout "$line"
done

run "several --set, in order" config --set model.d_model=192 --set model.n_heads=6 \
  --set train.schedule=LINEAR
expect_rc 0
expect_stdout "d_ff: 512"
expect_stdout "schedule: LINEAR"

run "printed config reads back" config --config "$tiny" --set optim.beta2=0.99
expect_rc 0
cp "$tmp/stdout" "$tmp/printed.pbtxt"
run "printed config reads back" config --config "$tmp/printed.pbtxt"
expect_rc 0
cmp -s "$tmp/stdout" "$tmp/printed.pbtxt" || fail "reading the printed config back changed it"

printf 'model {\n  d_model: 64\n  n_layers 4\n}\n' >"$tmp/syntax.pbtxt"
run "syntax error" config --config "$tmp/syntax.pbtxt"
expect_user_error "$tmp/syntax.pbtxt:3:12:"

printf 'train {\n  steps: 10\n  lrr: 0.1\n}\n' >"$tmp/unknown.pbtxt"
run "unknown field" config --config "$tmp/unknown.pbtxt"
expect_user_error "$tmp/unknown.pbtxt:3:" '"lrr"'

run "bad value via --set" config --config "$tiny" --set train.lr=fast
expect_user_error "--set train.lr=fast" "train.lr"

run "unknown --set path" config --set train.lrr=3e-4
expect_user_error 'no field "lrr" in train' "warmup_steps"

run "--set without =" config --set train.lr
expect_user_error "train.lr" "path=value"

printf 'model {\n  d_model: 256\n  n_heads: 6\n}\n' >"$tmp/heads.pbtxt"
run "d_model % n_heads" config --config "$tmp/heads.pbtxt"
expect_user_error "$tmp/heads.pbtxt" "field model.d_model" "256 % 6"

run "broken rule via --set" config --config "$tiny" --set data.seq_len=100
expect_user_error "$tiny with --set data.seq_len=100: field data.seq_len"

run "unknown device" config --set runtime.device=tpu
expect_user_error "field runtime.device" '"cpu" or "cuda"'

run "cuda with head dim 16" config --set runtime.device=cuda --set model.d_model=96 --set model.n_heads=6 \
  --set model.n_kv_heads=6
expect_user_error "field runtime.device" "head dim"

run "missing file" config --config "$tmp/does_not_exist.pbtxt"
expect_user_error "$tmp/does_not_exist.pbtxt"

if ((failures > 0)); then
  echo "config_cli: $failures check(s) failed" >&2
  exit 1
fi
echo "config_cli: all checks passed"
