"""A feature whose pip extra is missing says which extra to install, in one line; the rest imports.

``sys.modules[name] = None`` makes Python's own import fail for that package, as in an install
without the extra.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from shiftwatch.extras import MissingExtra


def test_label_studio_without_its_extra_names_the_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "label_studio_sdk", None)
    from shiftwatch.labeling.studio import Studio

    with pytest.raises(MissingExtra, match=r"pip install 'shiftwatch\[labelstudio\]'") as missing:
        Studio("http://127.0.0.1:1", "token")
    assert missing.value.status_code == 501 and "\n" not in missing.value.message


def test_a_drift_report_without_its_extra_names_the_install(monkeypatch, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "evidently", None)
    from shiftwatch.detectors.reports import write_drift_report

    window = {"confidence": np.full(40, 0.9), "predicted_class": np.zeros(40, dtype=np.int64),
              "probabilities": None, "embeddings": None}  # fmt: skip
    with pytest.raises(MissingExtra, match=r"pip install 'shiftwatch\[reports\]'"):
        write_drift_report(tmp_path / "r.html", reference=window, current=window, class_names=["a"])
    assert not (tmp_path / "r.html").exists()


def test_serving_without_an_onnx_runtime_flavour_names_the_three_installs(tmp_path) -> None:
    """No flavour installed: `shiftwatch serve` (which loads the gateway) stops with one line and exit 2."""
    import subprocess

    script = ("import sys; sys.modules['onnxruntime'] = None; sys.argv = ['shiftwatch', 'serve'];"
              "from shiftwatch.cli import main; main()")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={"SHIFTWATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'sw.db'}", "PATH": "/usr/bin:/bin",
                               "SHIFTWATCH_DATA_DIR": str(tmp_path / "data")})
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ONNX Runtime is not installed: pip install 'shiftwatch[cpu]'"), lines
    assert "shiftwatch[openvino]" in lines[-1] and "shiftwatch[gpu]" in lines[-1] and "Traceback" not in done.stderr
