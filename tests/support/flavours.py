"""ONNX Runtime install flavours, each in its own cached venv under .flavours/ (they all install the same
``onnxruntime`` folder, so they cannot share one): the flavour's wheel, numpy, and this checkout
installed editable without dependencies, enough to import ``shiftwatch.retrain.runtime``.
The flavour's requirement is read from its extra in pyproject.toml (``shiftwatch[gpu]``, ``[openvino]``)."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The extras' own requirements (pyproject.toml), so the test installs what users get.
EXTRAS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
FLAVOURS = {name: EXTRAS[name][0] for name in ("gpu", "openvino")}
PROBE = Path(__file__).with_name("flavour_probe.py")


def flavour_python(name: str) -> Path:
    """The venv's python for flavour ``name``, built on first use (~40 s and ~450 MB each)."""
    venv = ROOT / ".flavours" / name
    python = venv / "bin" / "python"
    ready = venv / f".ready-{FLAVOURS[name]}"
    if not ready.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=300)
        for args in (["--upgrade", "pip"], [FLAVOURS[name], "numpy>=2"], ["--no-deps", "-e", str(ROOT)]):
            done = subprocess.run([str(python), "-m", "pip", "install", "-q", *args], capture_output=True, text=True,
                                  timeout=900)
            assert done.returncode == 0, f"pip install {' '.join(args)} into {venv}: {done.stderr[-2000:]}"
        ready.touch()
    return python


def probe(name: str, model: Path, providers: str, images: Path) -> dict:
    """Load ``model`` with ``providers`` in flavour ``name``; its placement, logits or refusal, as JSON."""
    done = subprocess.run([str(flavour_python(name)), str(PROBE), str(model), providers, str(images)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
