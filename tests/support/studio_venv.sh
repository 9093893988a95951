#!/usr/bin/env bash
# Build (once) the Label Studio server's own virtual environment; its pins clash with ours.
# Usage: tests/support/studio_venv.sh [VENV_DIR]   (default: .labelstudio-venv in the repo root)
# Idempotent: returns at once when VENV_DIR already holds the pinned version. ~1 GB, a few minutes.
set -euo pipefail
VERSION="1.23.2"  # keep in step with tests/support/studio_server.py: PINNED_VERSION
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${1:-$ROOT/.labelstudio-venv}"
PYTHON="${PYTHON:-python3}"

installed() {
  "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('label-studio') != '$VERSION')" 2>/dev/null
}

if [ -x "$VENV/bin/label-studio" ] && installed; then
  echo "label-studio $VERSION ready in $VENV"
  exit 0
fi
echo "installing label-studio $VERSION into $VENV (about 1 GB, a few minutes)"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "label-studio==$VERSION"
installed || { echo "label-studio $VERSION did not install into $VENV" >&2; exit 1; }
echo "label-studio $VERSION ready in $VENV"
