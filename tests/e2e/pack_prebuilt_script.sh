#!/usr/bin/env bash
# bench/gpu/pack_prebuilt.sh: the archive unpacks into prebuilt/ with reclm, the Debian libraries
# it links (not the C library's) and env.sh; with env.sh sourced, the loader takes those
# libraries from prebuilt/lib and the packed reclm trains. A missing build exits 2.
source "$(dirname "$0")/lib/common.bash"
build=$(dirname "$(dirname "$RECLM")")

XZ_OPT=-0 bash bench/gpu/pack_prebuilt.sh "$build" "$work/p.tar.xz" > "$work/pack.txt" 2>&1 ||
  { cat "$work/pack.txt"; fail "pack_prebuilt.sh failed"; }
tar -C "$work" -xJf "$work/p.tar.xz"
[ -x "$work/prebuilt/bin/reclm" ] && [ -f "$work/prebuilt/env.sh" ] || fail "no prebuilt/bin/reclm or env.sh"
[ -f "$work/prebuilt/lib/libprotobuf.so.32" ] || { ls "$work/prebuilt/lib"; fail "libprotobuf not packed"; }
! ls "$work/prebuilt/lib" | grep -Eq '^(libc|libm|libstdc\+\+)\.so' || { ls "$work/prebuilt/lib"; fail "packed the C library"; }

# shellcheck disable=SC1091
(source "$work/prebuilt/env.sh" && ldd "$work/prebuilt/bin/reclm") > "$work/ldd.txt"
grep -q "libprotobuf.so.32 => $work/prebuilt/lib/libprotobuf.so.32" "$work/ldd.txt" ||
  { cat "$work/ldd.txt"; fail "the loader does not take the packed libprotobuf"; }
(source "$work/prebuilt/env.sh" && "$work/prebuilt/bin/reclm" train --config configs/tiny.pbtxt --set train.steps=2 \
  --set eval.val_every=0 --set checkpoint.every=0 --set train.run_dir="$work/run") > "$work/train.txt" 2>&1 ||
  { cat "$work/train.txt"; fail "the packed reclm did not train"; }
grep -q '^done: 2 steps' "$work/train.txt" || { cat "$work/train.txt"; fail "no done line"; }

set +e
bash bench/gpu/pack_prebuilt.sh "$work/no_build" "$work/q.tar.xz" > "$work/bad.txt" 2>&1
code=$?
set -e
[ "$code" -eq 2 ] && grep -q "no_build/bin/reclm not found" "$work/bad.txt" || { cat "$work/bad.txt"; fail "exit $code for a missing build"; }
echo "pack_prebuilt_script: ok"
