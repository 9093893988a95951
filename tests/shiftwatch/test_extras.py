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
