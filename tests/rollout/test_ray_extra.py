"""Without the [ray] extra, `shiftwatch serve-ray` says what to install and exits 2; its scaling options need no ray."""

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


def test_scaling_options_lift_rays_batch_cap_and_choose_replicas_or_autoscaling():
    from shiftwatch.rollout.ray_serve import Scaling

    fixed = Scaling(replicas=3).options(max_batch_size=32)
    assert fixed["num_replicas"] == 3 and "autoscaling_config" not in fixed
    assert fixed["max_ongoing_requests"] >= 32  # Ray's default (5) would cap every @serve.batch batch at 5
    scaled = Scaling(min_replicas=1, max_replicas=8).options(max_batch_size=4)
    assert "num_replicas" not in scaled
    assert scaled["autoscaling_config"] == {"min_replicas": 1, "max_replicas": 8, "target_ongoing_requests": 16.0}
