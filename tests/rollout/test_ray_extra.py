"""Without the [ray] extra, `shiftwatch serve-ray` says in one line what to install and exits 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_serve_ray_without_the_extra_names_the_install(tmp_path: Path):
    hidden = tmp_path / "ray"
    hidden.mkdir()
    (hidden / "__init__.py").write_text("raise ImportError('ray hidden by the test')\n")  # as if not installed
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "SHIFTWATCH_DATA_DIR": str(tmp_path / "data")}
    result = subprocess.run([sys.executable, "-m", "shiftwatch", "serve-ray", "--model", "digits"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "error: Ray Serve deployments need ray, not installed: pip install 'shiftwatch[ray]'"
    )
