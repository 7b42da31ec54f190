#!/usr/bin/env bash
# The real-client check in one command: installs torch (CPU) and transformers into a venv
# (.venv-hf at the repository root, or $RECLM_HF_VENV) and runs tests/python/check_hf_transformers.py
# against build/bin/reclm (or $RECLM): transformers loads `reclm export` and must give the same
# logits, top-10 items and tokens as reclm. See docs/hf_check.md.
#   scripts/hf_check.sh            # build if needed, install if needed, check
# Exit 0 pass, 1 mismatch.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${RECLM_HF_VENV:-.venv-hf}
reclm=${RECLM:-build/bin/reclm}
python=${PYTHON:-python3}

if [ ! -x "$reclm" ]; then
  echo "== building reclm ($reclm not found)"
  scripts/build.sh
fi

if [ ! -x "$venv/bin/python" ]; then
  echo "== creating $venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
fi
if ! "$venv/bin/python" -c 'import torch, transformers, numpy, peft' 2> /dev/null; then
  echo "== installing torch (CPU) and transformers into $venv"
  # The CPU-only wheel index is far smaller; where it cannot be reached, PyPI's torch (which pulls
  # the CUDA runtime wheels too, a few GB) works the same on a CPU.
  "$venv/bin/pip" install torch --index-url https://download.pytorch.org/whl/cpu ||
    "$venv/bin/pip" install torch
  "$venv/bin/pip" install transformers numpy peft
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$venv/bin/python" tests/python/check_hf_transformers.py "$reclm" "$work/check"
