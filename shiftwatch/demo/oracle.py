"""The demo's stand-in for annotators: it answers the labeling queue from the demo's ground truth.

It does what a labeling team without Label Studio does (docs/labeling.md, "No Label Studio"): read
what is queued (``GET /v1/labeling/tasks``), write a labels file keyed by prediction id, and bring it in
with ``shiftwatch labeling import``. Its labels say ``annotator=oracle``: nobody mistakes them for a person's.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from shiftwatch.demo.stage import Stage
    from shiftwatch.demo.traffic import Traffic

ANNOTATOR = "oracle"
# Queued tasks read per page; the demo's queue is a few hundred at most.
PAGE = 1000


@dataclass(frozen=True, slots=True)
class Answered:
    """One pass of the oracle over the queue: how many tasks it found, and the labels file it imported."""

    pending: int
    imported: int
    path: Path | None


def write_and_import(stage: Stage, rows: list[tuple[str, int]], show: bool) -> Path:
    """A labels file (prediction_id, class name) in the demo's folder, brought in by ``shiftwatch labeling import``."""
    names = stage.api.get(f"/v1/models/{stage.model}")["class_names"]  # labels are written as class names
    folder = stage.out_dir / "labels"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"oracle-{sum(stage.labels_by_annotator.values()):06d}.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prediction_id", "label"])
        writer.writerows((prediction_id, names[label]) for prediction_id, label in rows)
    stage.shell.run("labeling", "import", str(path), "--model", stage.model, "--annotator", ANNOTATOR, show_output=show)
    stage.labels_by_annotator[ANNOTATOR] += len(rows)
    return path


def served_since(stage: Stage, traffic: Traffic, version: str, since: datetime, vectors: bool = False) -> list[dict[str, Any]]:
    """``version``'s production predictions since ``since`` that the demo knows the truth of (GET /v1/predictions;
    with their probabilities and embeddings if ``vectors``)."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = stage.api.get("/v1/predictions", model=stage.model, version=version, route="production",
                             start=since.isoformat(), limit=PAGE, cursor=cursor, include_vectors=vectors or None)
        found += [p for p in page["items"] if p.get("request_id") in traffic.truth]
        cursor = page["next_cursor"]
        if cursor is None:
            return found


def label_sample(stage: Stage, traffic: Traffic, version: str, since: datetime, size: int,
                 predicted: int | None = None) -> int:
    """Label ``size`` of ``version``'s production predictions since ``since`` (only those of class ``predicted``, if
    given), drawn uniformly (GET /v1/predictions).

    What a team does when the queue is short: a model that is confidently wrong gives the policy few
    uncertain samples, yet a fix needs a few hundred labels of the new traffic.
    """
    found = [p for p in served_since(stage, traffic, version, since) if predicted in (None, p["predicted_class"])]
    picks = np.random.default_rng(len(found)).permutation(len(found))[:size]
    rows = [(found[i]["id"], traffic.truth[found[i]["request_id"]]) for i in picks]
    if rows:
        write_and_import(stage, rows, show=True)
    return len(rows)


def answer_queue(stage: Stage, traffic: Traffic, *, show: bool = True) -> Answered:
    """Label every pending task of the demo's model from the ground truth, through the import path."""
    tasks = stage.api.get("/v1/labeling/tasks", model=stage.model, state="pending", limit=PAGE)
    # Keyed by prediction id: in shadow one request id has two predictions (production's and the candidate's).
    rows = [(task["prediction_id"], traffic.truth[task["request_id"]]) for task in tasks
            if task.get("request_id") in traffic.truth]
    if not rows:
        return Answered(len(tasks), 0, None)
    return Answered(len(tasks), len(rows), write_and_import(stage, rows, show))
