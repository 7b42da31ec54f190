# Shared by the e2e scripts (sourced; not a test itself): a scratch directory removed on exit,
# `fail`, and `expect_exit2 PATTERN ARGS...` (reclm must exit 2 and print PATTERN).
: "${RECLM:?path of the reclm binary}" "${RECLM_SOURCE_DIR:?repository root}"
cd "$RECLM_SOURCE_DIR"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
expect_exit2() {
  local pattern=$1; shift
  set +e; "$RECLM" "$@" > "$work/bad.txt" 2>&1; local code=$?; set -e
  [ "$code" -eq 2 ] || { cat "$work/bad.txt"; fail "exit $code (want 2) for: $*"; }
  grep -q -- "$pattern" "$work/bad.txt" || { cat "$work/bad.txt"; fail "message lacks '$pattern' for: $*"; }
}
