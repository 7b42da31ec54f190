#!/usr/bin/env bash
# bench/gpu/session.sh without a GPU: stand-in builds (their test programs and kernel_bench are
# scripts that log their arguments) check the script's own logic: the steps run in order on B,
# A against B through ab_builds.sh, the kernel filters one by one, archives of pack_prebuilt.sh
# unpacked into RUNS; a step that outlasts its limit is cut short there and the next still runs; steps with
# too little time left are skipped; each says so, and the exit status is then non-zero; the logs
# land in OUT; a wrong call exits 2.
source "$(dirname "$0")/lib/common.bash"

# make_build NAME: NAME/bin with cuda_kernels_gpu_test and device_gpu_test (sleeping SLEEP_TESTS
# and SLEEP_DEVICE seconds when set) and kernel_bench, each appending its name and arguments to
# NAME/calls
make_build() {
  local name=$1
  mkdir -p "$work/$name/bin"
  echo "$name-commit" > "$work/$name/commit"
  for program in cuda_kernels_gpu_test device_gpu_test kernel_bench; do
    cat > "$work/$name/bin/$program" << SCRIPT
#!/usr/bin/env bash
echo "$program \$*" >> "$work/$name/calls"
[ "$program" = cuda_kernels_gpu_test ] && [ -n "\${SLEEP_TESTS:-}" ] && sleep "\$SLEEP_TESTS"
[ "$program" = device_gpu_test ] && [ -n "\${SLEEP_DEVICE:-}" ] && sleep "\$SLEEP_DEVICE"
case "$program" in
  kernel_bench)
    echo "device: Fake GPU (sm_90), device-to-device copy: 3000.0 GB/s (1 GiB in 0.358 ms)"
    printf '%-58s %10.4f %10.1f %8.2fx\n' "history forward" 0.25 100.0 0.03 ;;
  *) echo "[==========] 3 tests from 1 test suite ran. (1 ms total)"; echo "[  PASSED  ] 3 tests." ;;
esac
SCRIPT
    chmod +x "$work/$name/bin/$program"
  done
}
make_build A
make_build B

# A and B as folders: tests, then A against B (kernels only), then two kernel filters
TRAIN=0 KERNELS="LM head;overlap" FILTER=history ROUNDS=1 RUNS="$work/runs" OUT="$work/out" BUDGET=120 \
  bash bench/gpu/session.sh "$work/A" "$work/B" > "$work/log.txt" 2>&1 || { cat "$work/log.txt"; fail "session.sh failed"; }
[ "$(cut -d' ' -f1 "$work/B/calls" | tr '\n' ' ')" = "cuda_kernels_gpu_test device_gpu_test kernel_bench kernel_bench kernel_bench " ] ||
  { cat "$work/B/calls"; fail "B's programs ran in the wrong order"; }
grep -qx "cuda_kernels_gpu_test --gtest_brief=1" "$work/B/calls" || { cat "$work/B/calls"; fail "wrong test arguments"; }
[ "$(grep kernel_bench "$work/B/calls" | tail -n 2 | tr '\n' '|')" = "kernel_bench --filter LM head|kernel_bench --filter overlap|" ] ||
  { cat "$work/B/calls"; fail "the KERNELS filters did not run one by one"; }
[ "$(cat "$work/A/calls")" = "kernel_bench --filter history --iters 100" ] || { cat "$work/A/calls"; fail "A ran other than ab_builds.sh's kernel_bench"; }
grep -Eq '^history forward +0\.2500 +0\.2500 +1\.000$' "$work/log.txt" || { cat "$work/log.txt"; fail "no A/B row"; }
grep -q "B: .*/B, commit B-commit" "$work/log.txt" || { cat "$work/log.txt"; fail "the builds are not named"; }
grep -q "PASSED  \] 3 tests" "$work/out/tests_kernels.log" && [ -f "$work/out/tests_device.log" ] && [ -f "$work/out/session.log" ] ||
  fail "the logs are not in OUT"
grep -q "#### done after [0-9]* s of 120; exit 0" "$work/log.txt" || { cat "$work/log.txt"; fail "no final line"; }

# B as an archive; the kernel tests outlast their limit: cut short there after 16 s, the device
# tests still run (8 s), and the kernel filter's step has too little time left (at most 42 − 24 − 5
# = 13 s) and is skipped; exit non-zero, in time
rm -f "$work/B/calls"
tar -cJf "$work/b.tar.xz" -C "$work" B
began=$(date +%s)
if SLEEP_TESTS=60 SLEEP_DEVICE=8 LIMIT_TESTS=16 BUDGET=42 TRAIN=0 KERNELS="history" RUNS="$work/runs2" \
  bash bench/gpu/session.sh "$work/b.tar.xz" > "$work/log2.txt" 2>&1; then
  cat "$work/log2.txt"; fail "exit 0 with a step cut short"
fi
took=$(($(date +%s) - began))
[ "$took" -le 47 ] || { cat "$work/log2.txt"; fail "took $took s of a 42 s budget"; }
grep -q "B: $work/runs2/B, commit B-commit" "$work/log2.txt" || { cat "$work/log2.txt"; fail "the archive was not unpacked into RUNS/B"; }
[ -f "$work/runs2/out/session.log" ] || fail "OUT is not RUNS/out by default"
grep -q "#### cut short: B: kernel tests at its limit of 16 s" "$work/log2.txt" || { cat "$work/log2.txt"; fail "the kernel tests were not cut short"; }
grep -q "#### B: device tests: exit 0" "$work/log2.txt" || { cat "$work/log2.txt"; fail "the device tests did not run after the cut"; }
grep -q "#### skipped: B: kernel_bench --filter 'history'" "$work/log2.txt" || { cat "$work/log2.txt"; fail "the last step was not skipped"; }
# (the unpacked stand-ins still log to $work/B/calls)
[ "$(cut -d' ' -f1 "$work/B/calls" | tr '\n' ' ')" = "cuda_kernels_gpu_test device_gpu_test " ] ||
  { cat "$work/B/calls"; fail "want the two test programs and no kernel_bench"; }

# wrong calls: usage or the bad argument named, exit 2
set +e
bash bench/gpu/session.sh > "$work/log3.txt" 2>&1; code3=$?
bash bench/gpu/session.sh "$work/nowhere" > "$work/log4.txt" 2>&1; code4=$?
set -e
[ "$code3" -eq 2 ] && grep -q "usage: session.sh \[A\] B" "$work/log3.txt" || { cat "$work/log3.txt"; fail "no arguments: want the usage and exit 2"; }
[ "$code4" -eq 2 ] && grep -q "$work/nowhere: neither a build folder nor a .tar.xz archive" "$work/log4.txt" ||
  { cat "$work/log4.txt"; fail "a missing build: want its name and exit 2"; }
echo "gpu_session_script: ok"
