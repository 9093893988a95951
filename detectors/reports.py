"""The Evidently HTML drift report attached to an alert: reference vs current model outputs, as plots.

Columns: confidence, predicted class, the probabilities of the most frequent reference classes
and a few principal components of the embeddings (PCA fitted on the reference), so a person
sees which outputs moved, not only that something did.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.decomposition import PCA

from shiftwatch.extras import require_extra

if TYPE_CHECKING:
    import pandas as pd

# Evidently renders every row into the page; 5,000 per side keeps the report a few MB and ~1 s.
MAX_ROWS = 5000
TOP_CLASSES = 3
PCA_COMPONENTS = 3
REPORTS_DIR = "reports"  # below data_dir; alerts store "reports/<name>"


def _frame(
    confidence: np.ndarray,
    predicted_class: np.ndarray,
    probabilities: np.ndarray | None,
    components: np.ndarray | None,
    classes: list[int],
    class_names: list[str],
) -> pd.DataFrame:
    def name(c: int) -> str:
        return class_names[c] if c < len(class_names) else str(c)

    columns: dict[str, object] = {
        "confidence": confidence.astype(float),
        "predicted_class": [name(int(c)) for c in predicted_class],
    }
    if probabilities is not None:
        for c in classes:
            columns[f"p_{name(c)}"] = probabilities[:, c].astype(float)
    if components is not None:
        for j in range(components.shape[1]):
            columns[f"embedding_pc{j + 1}"] = components[:, j].astype(float)
    return require_extra("pandas").DataFrame(columns)


def _subsample(n: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(n, MAX_ROWS, replace=False)) if n > MAX_ROWS else np.arange(n)


def write_drift_report(
    path: Path,
    *,
    reference: dict[str, np.ndarray | None],
    current: dict[str, np.ndarray | None],
    class_names: list[str],
    seed: int = 0,
) -> Path:
    """Render Evidently's data-drift preset for the two windows into ``path`` (HTML); returns ``path``.

    ``reference`` / ``current``: ``confidence`` (n,), ``predicted_class`` (n,), optional
    ``probabilities`` (n, k) and ``embeddings`` (n, d).
    """
    require_extra("evidently")  # the [reports] extra; heavy import (~10 s cold): only when a report is due
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    rng = np.random.default_rng(seed)
    frames = []
    pca = None
    ref_embeddings = reference.get("embeddings")
    if ref_embeddings is not None and current.get("embeddings") is not None:
        n_components = min(PCA_COMPONENTS, ref_embeddings.shape[1], len(ref_embeddings))
        pca = PCA(n_components=n_components, random_state=seed).fit(ref_embeddings)
    ref_probs = reference.get("probabilities")
    classes: list[int] = []
    if ref_probs is not None and current.get("probabilities") is not None:
        counts = np.bincount(np.asarray(reference["predicted_class"], dtype=np.int64), minlength=ref_probs.shape[1])
        classes = [int(c) for c in np.argsort(-counts)[:TOP_CLASSES]]
    for window in (reference, current):
        rows = _subsample(len(window["confidence"]), rng)  # type: ignore[arg-type]  # every window has confidence
        probabilities = window.get("probabilities") if classes else None
        embeddings = window.get("embeddings")
        frames.append(
            _frame(
                window["confidence"][rows],  # type: ignore[index]  # as above
                window["predicted_class"][rows],  # type: ignore[index]  # and predicted_class
                None if probabilities is None else probabilities[rows],
                None if pca is None or embeddings is None else pca.transform(embeddings[rows]),
                classes,
                class_names,
            )
        )
    numerical = [c for c in frames[0].columns if c != "predicted_class"]
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=["predicted_class"])
    snapshot = Report([DataDriftPreset()]).run(
        reference_data=Dataset.from_pandas(frames[0], data_definition=definition),
        current_data=Dataset.from_pandas(frames[1], data_definition=definition),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".html.partial")
    snapshot.save_html(str(partial))
    partial.replace(path)  # a reader never sees half a report
    return path


def render_window_report(data_dir: Path, name: str, ref_data: Any, window: Any, class_names: list[str]) -> str:
    """The report of a reference and a current window under ``data_dir/reports``; returns its path relative to data_dir."""
    fields = ("confidence", "predicted_class", "probabilities", "embeddings")
    write_drift_report(
        data_dir / REPORTS_DIR / name,
        reference={f: getattr(ref_data, f) for f in fields},
        current={f: getattr(window, f) for f in fields},
        class_names=class_names,
    )
    return f"{REPORTS_DIR}/{name}"


def remove_reports(data_dir: Path, relative_paths: list[str]) -> None:
    """Delete superseded reports; only plain file names directly in ``data_dir/reports`` are touched."""
    reports = (data_dir / REPORTS_DIR).resolve()
    for relative in relative_paths:
        path = (data_dir / relative).resolve()
        if path.parent == reports:
            path.unlink(missing_ok=True)
