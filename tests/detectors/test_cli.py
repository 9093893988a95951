"""``shiftwatch detect`` and ``shiftwatch estimate-accuracy``: one JSON object out, bad input is exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from shiftwatch import cli
from shiftwatch.errors import Invalid

SHIFTWATCH = str(Path(sys.executable).parent / "shiftwatch")


@pytest.fixture(scope="module")
def runner_app():
    return cli.app


@pytest.fixture
def arrays(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    paths = {}

    def save(name: str, value: np.ndarray, **kw) -> None:
        paths[name] = tmp_path / f"{name}.npy"
        np.save(paths[name], value, **kw)

    save("ref", rng.normal(size=(200, 8)).astype(np.float32))
    save("cur", rng.normal(size=(150, 8)).astype(np.float32) + 1.0)
    save("wide", rng.normal(size=(150, 9)))
    nan = rng.normal(size=(150, 8))
    nan[3, 2] = np.nan
    save("nan", nan)
    save("empty", np.zeros((0, 8)))
    save("objects", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    probs = rng.dirichlet(np.ones(4) * 0.5, size=300)
    save("probs", probs)
    save("labels", np.where(rng.random(300) < 0.8, probs.argmax(axis=1), rng.integers(0, 4, 300)))
    save("probs_cur", rng.dirichlet(np.ones(4) * 1.5, size=200))
    (tmp_path / "text.npy").write_text("not numpy")
    paths["text"] = tmp_path / "text.npy"
    paths["missing"] = tmp_path / "missing.npy"
    return paths


def detect(runner_app, *args: str):
    return CliRunner().invoke(runner_app, ["detect", *args])


@pytest.mark.parametrize("method", ["mmd", "lsdd", "ks", "ks_features", "classifier", "auto"])
def test_detect_prints_one_json_object_with_the_decision(runner_app, arrays, method: str) -> None:
    result = detect(runner_app, "--reference", str(arrays["ref"]), "--current", str(arrays["cur"]), "--method", method)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["method"] == method  # auto: the omnibus (MMD-Agg + per-feature KS)
    assert out["significant"] is True and out["severity"] in ("low", "medium", "high") and out["note"] == ""
    assert out["drift"] is True
    assert {"p_value", "statistic", "n_reference", "n_current", "effect_size", "effect_unit"} <= set(out)
    assert (out["n_reference"], out["n_current"]) == (200, 150) or method in ("ks", "lsdd")


def test_detect_on_probabilities_runs_bbsd(runner_app, arrays) -> None:
    result = detect(runner_app, "--reference", str(arrays["probs"]), "--current", str(arrays["probs_cur"]), "--kind", "probabilities")
    out = json.loads(result.stdout)
    assert out["method"] == "bbsd" and out["drift"] is True
    assert set(out["evidence"]) == {"bbsd_confidence", "bbsd_label", "bbsd_probs"}


@pytest.mark.parametrize("method", ["atc", "cbpe"])
def test_estimate_accuracy_prints_estimate_and_interval(runner_app, arrays, method: str) -> None:
    result = CliRunner().invoke(
        runner_app,
        ["estimate-accuracy", "--reference-probabilities", str(arrays["probs"]), "--reference-labels", str(arrays["labels"]),
         "--current-probabilities", str(arrays["probs_cur"]), "--method", method],
    )
    out = json.loads(result.stdout)
    low, high = out["interval"]
    assert 0 <= low <= out["estimated_accuracy"] <= high <= 1


def test_estimate_accuracy_defaults_to_cbpe(runner_app, arrays) -> None:
    result = CliRunner().invoke(
        runner_app,
        ["estimate-accuracy", "--reference-probabilities", str(arrays["probs"]), "--reference-labels", str(arrays["labels"]),
         "--current-probabilities", str(arrays["probs_cur"])],
    )
    assert json.loads(result.stdout)["method"] == "cbpe"


@pytest.mark.parametrize(
    ("current", "why"),
    [("wide", "dimensions"), ("nan", "NaN"), ("empty", "at least"), ("objects", "pickle"), ("text", "not a .npy"), ("missing", "no such file")],
)
def test_bad_current_window_is_refused_with_a_reason(runner_app, arrays, current: str, why: str) -> None:
    result = detect(runner_app, "--reference", str(arrays["ref"]), "--current", str(arrays[current]))
    assert isinstance(result.exception, Invalid)
    assert why in str(result.exception)


def test_unknown_method_and_bbsd_on_embeddings_are_refused(runner_app, arrays) -> None:
    for method in ("nope", "bbsd"):
        result = detect(runner_app, "--reference", str(arrays["ref"]), "--current", str(arrays["cur"]), "--method", method)
        assert isinstance(result.exception, Invalid)


@pytest.mark.slow  # starts the real command: a fresh interpreter importing every domain
@pytest.mark.parametrize("current", ["wide", "objects"])
def test_installed_command_exits_2_with_one_line_on_stderr(arrays, current: str) -> None:
    done = subprocess.run(
        [SHIFTWATCH, "detect", "--reference", str(arrays["ref"]), "--current", str(arrays[current])],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("error:")


def test_estimate_accuracy_with_a_labeled_slice_adds_the_prediction_powered_interval(runner_app, arrays, tmp_path) -> None:
    probs_cur = np.load(arrays["probs_cur"])
    slice_labels = probs_cur[:40].argmax(axis=1)  # the slice's model was right on all 40
    np.save(tmp_path / "slice_probs.npy", probs_cur[:40])
    np.save(tmp_path / "slice_labels.npy", slice_labels)
    base = ["estimate-accuracy", "--reference-probabilities", str(arrays["probs"]), "--reference-labels", str(arrays["labels"]),
            "--current-probabilities", str(arrays["probs_cur"]), "--method", "cbpe"]
    result = CliRunner().invoke(runner_app, [*base, "--slice-probabilities", str(tmp_path / "slice_probs.npy"),
                                             "--slice-labels", str(tmp_path / "slice_labels.npy")])
    assert result.exit_code == 0, result.output
    powered = json.loads(result.stdout)["prediction_powered"]
    assert powered["source"] == "prediction_powered" and powered["n_labeled"] == 40
    low, high = powered["interval"]
    assert 0 <= low <= powered["estimated_accuracy"] <= high <= 1
    half = CliRunner().invoke(runner_app, [*base, "--slice-probabilities", str(tmp_path / "slice_probs.npy")])
    assert isinstance(half.exception, Invalid) and "--slice-labels" in str(half.exception)


def accuracy_args(arrays, *, old: bool) -> list[str]:
    suffix = "probs" if old else "probabilities"
    return ["estimate-accuracy", f"--reference-{suffix}", str(arrays["probs"]), "--reference-labels", str(arrays["labels"]),
            f"--current-{suffix}", str(arrays["probs_cur"])]


def test_old_probs_spellings_still_work_with_a_warning_and_are_hidden(runner_app, arrays) -> None:
    """Scripts written against ``--kind probs`` / ``--*-probs`` keep working; help shows only the API's name."""
    new = detect(runner_app, "--reference", str(arrays["probs"]), "--current", str(arrays["probs_cur"]), "--kind", "probabilities")
    old = detect(runner_app, "--reference", str(arrays["probs"]), "--current", str(arrays["probs_cur"]), "--kind", "probs")
    assert old.exit_code == 0, old.output
    assert json.loads(old.stdout) == json.loads(new.stdout)
    assert "--kind probs is deprecated, use --kind probabilities" in old.stderr and new.stderr == ""
    estimated = {}
    for spelling in (False, True):
        result = CliRunner().invoke(runner_app, accuracy_args(arrays, old=spelling))
        assert result.exit_code == 0, result.output
        estimated[spelling] = json.loads(result.stdout)
    assert estimated[True] == estimated[False]
    assert "--reference-probs is deprecated, use --reference-probabilities" in result.stderr
    shown = CliRunner().invoke(runner_app, ["estimate-accuracy", "--help"], env={"COLUMNS": "200"}).stdout
    assert "--reference-probabilities" in shown and "--reference-probs " not in shown and "--slice-probs " not in shown


def test_a_renamed_option_given_twice_or_not_at_all_is_refused(runner_app, arrays) -> None:
    both = CliRunner().invoke(runner_app, [*accuracy_args(arrays, old=False), "--current-probs", str(arrays["probs_cur"])])
    assert isinstance(both.exception, Invalid) and both.exception.field == "--current-probabilities"
    missing = CliRunner().invoke(runner_app, accuracy_args(arrays, old=False)[:-2])
    assert isinstance(missing.exception, Invalid) and missing.exception.field == "--current-probabilities"
