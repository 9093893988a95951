"""``shiftwatch detect`` and ``shiftwatch estimate-accuracy``: the detectors on .npy files, one JSON object out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from shiftwatch.cli_aliases import deprecated_option, renamed, renamed_required, renamed_value
from shiftwatch.detectors import DETECTORS, EMBEDDING_DETECTORS, PROBABILITY_DETECTORS
from shiftwatch.errors import Invalid

if TYPE_CHECKING:
    import numpy as np


KINDS = ("embeddings", "probabilities")  # the API's field names; ``probs`` is the old spelling
# estimate-accuracy's options before they took the API's name (hidden; they warn and still work).
OLD_REFERENCE_PROBS = deprecated_option("--reference-probs", "--reference-probabilities")
OLD_CURRENT_PROBS = deprecated_option("--current-probs", "--current-probabilities")
OLD_SLICE_PROBS = deprecated_option("--slice-probs", "--slice-probabilities")


def load_array(path: Path, option: str) -> np.ndarray:
    """A numeric array from a .npy file; never unpickles (a pickled file is refused, not run)."""
    import numpy as np  # here, not at module level: `shiftwatch --help` should not pay for it

    try:
        with open(path, "rb") as handle:
            magic = handle.read(6)
        if magic != b"\x93NUMPY":
            raise Invalid(option, f"not a .npy file: {path}")
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise Invalid(option, f"no such file: {path}") from None
    except IsADirectoryError:
        raise Invalid(option, f"is a directory: {path}") from None
    except ValueError as exc:
        why = "holds Python objects (pickle), refused" if "pickle" in str(exc).lower() else f"not a .npy array ({exc})"
        raise Invalid(option, why) from None
    except (OSError, EOFError) as exc:
        raise Invalid(option, f"unreadable: {exc}") from None
    if not isinstance(array, np.ndarray):
        raise Invalid(option, "holds an archive (.npz), expected one .npy array")
    return array


def pick_method(method: str, kind: str) -> str:
    """``auto``: the omnibus embedding test (MMD-Agg + per-feature KS) on embeddings, BBSD on probabilities."""
    if method != "auto":
        return method
    return "auto" if kind == "embeddings" else "bbsd"


def run_detect(
    reference: np.ndarray, current: np.ndarray, method: str, kind: str, alpha: float, overrides: dict[str, Any]
) -> dict[str, Any]:
    """Fit the chosen detector on the reference array and test the current one."""
    if kind not in KINDS:
        raise Invalid("--kind", f"must be {' or '.join(KINDS)}")
    name = pick_method(method, kind)
    from shiftwatch.detectors.effect import with_min_effect

    usable = EMBEDDING_DETECTORS + (PROBABILITY_DETECTORS if kind == "probabilities" else ())
    if name not in usable:
        raise Invalid("--method", f"{name!r} does not apply to --kind {kind}; use auto or one of {', '.join(usable)}")
    min_effect = overrides.pop("min_effect_size", None)
    detector = DETECTORS[name](alpha=alpha, **{k: v for k, v in overrides.items() if v is not None})  # type: ignore[call-arg]  # base.Detector declares no constructor; every registered one takes alpha
    result = with_min_effect(detector.fit(reference).test(current), min_effect)
    return result.to_dict()


app = typer.Typer()


@app.command()
def detect(
    reference: Path = typer.Option(..., "--reference", help="reference window, float (n, d) .npy"),
    current: Path = typer.Option(..., "--current", help="current window, float (m, d) .npy"),
    method: str = typer.Option(
        "auto", help="auto (MMD-Agg + per-feature KS) | mmd | lsdd | ks | ks_features | classifier | bbsd | bbsd_confidence | bbsd_label | bbsd_probs"
    ),
    alpha: float = typer.Option(0.05, min=0.0, max=1.0, help="significance level"),
    kind: str = typer.Option("embeddings", help="embeddings, or probabilities for (n, k) class probabilities (BBSD)"),
    min_effect: float | None = typer.Option(
        None, help="explicit practical threshold (method's unit); default: drift unless negligible at this window size"
    ),
    seed: int | None = typer.Option(None, help="seed for subsampling and permutations"),
) -> None:
    """Test whether CURRENT drifted from REFERENCE; prints one JSON object (significant, drift, severity, note)."""
    result = run_detect(
        load_array(reference, "--reference"),
        load_array(current, "--current"),
        method,
        renamed_value(kind, "--kind", "probs", "probabilities"),
        alpha,
        {"min_effect_size": min_effect, "seed": seed},
    )
    typer.echo(json.dumps(result))


@app.command("estimate-accuracy")
def estimate_accuracy(
    reference_probabilities: Path | None = typer.Option(
        None, "--reference-probabilities", help="labeled reference class probabilities, (n, k) .npy [required]"
    ),
    reference_labels: Path = typer.Option(..., "--reference-labels", help="reference labels, (n,) integer .npy"),
    current_probabilities: Path | None = typer.Option(
        None, "--current-probabilities", help="unlabeled current class probabilities, (m, k) .npy [required]"
    ),
    method: str = typer.Option("cbpe", help="cbpe (calibrated confidence, the default: best coverage and error in bench/accuracy_estimators.py) | atc | doc | confidence"),
    confidence_level: float = typer.Option(0.95, min=0.5, max=0.999, help="interval coverage"),
    slice_probabilities: Path | None = typer.Option(
        None, "--slice-probabilities", help="class probabilities of the current window's labeled random slice, (s, k) .npy"
    ),
    slice_labels: Path | None = typer.Option(None, "--slice-labels", help="labels of that slice, (s,) integer .npy"),
    reference_probs: Path | None = OLD_REFERENCE_PROBS,
    current_probs: Path | None = OLD_CURRENT_PROBS,
    slice_probs: Path | None = OLD_SLICE_PROBS,
) -> None:
    """Estimate CURRENT's accuracy without labels; prints one JSON object with an interval.

    With --slice-probabilities/--slice-labels (a uniform random sample of the window, labeled) it adds
    ``prediction_powered``: the estimate corrected by those labels, an interval valid under any shift.
    """
    from shiftwatch.detectors.accuracy import AccuracyEstimator

    reference_path = renamed_required(reference_probabilities, reference_probs, "--reference-probabilities", "--reference-probs")
    current_path = renamed_required(current_probabilities, current_probs, "--current-probabilities", "--current-probs")
    slice_path = renamed(slice_probabilities, slice_probs, "--slice-probabilities", "--slice-probs")
    if method not in ("atc", "cbpe", "doc", "confidence"):
        raise Invalid("--method", "must be cbpe, atc, doc or confidence")
    if (slice_path is None) != (slice_labels is None):
        raise Invalid(
            "--slice-labels" if slice_labels is None else "--slice-probabilities",
            "give both --slice-probabilities and --slice-labels, or neither",
        )
    estimator = AccuracyEstimator(method, confidence_level=confidence_level)  # type: ignore[arg-type]  # checked to be a known method above
    current = load_array(current_path, "--current-probabilities")
    estimator.fit(load_array(reference_path, "--reference-probabilities"), load_array(reference_labels, "--reference-labels"))
    out = estimator.estimate(current).to_dict()
    if slice_path is not None and slice_labels is not None:
        powered = estimator.estimate_with_labels(
            current, load_array(slice_path, "--slice-probabilities"), load_array(slice_labels, "--slice-labels")
        )
        out["prediction_powered"] = powered.to_dict()
    typer.echo(json.dumps(out))
