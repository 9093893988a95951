#!/usr/bin/env bash
# Builds the benchmark-only venv for alibi-detect (BSL 1.1: never a runtime dependency of shiftwatch).
# alibi-detect 0.13.0 pins numpy<2 (and Pillow<11, numba<0.60), so it cannot share the project venv.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.alibi-venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet "alibi-detect[torch]==0.13.0" "torch==2.13.0" "numpy<2"
"$venv/bin/python" -c "import alibi_detect, torch, numpy; print('alibi-detect', alibi_detect.__version__, 'torch', torch.__version__, 'numpy', numpy.__version__)"
