"""The demo's stand-in for annotators: it answers the labeling queue from the demo's ground truth.

It does what a labeling team without Label Studio does (docs/labeling.md, "No Label Studio"): read
what is queued (``GET /v1/labeling/tasks``), write a labels file keyed by prediction id, and bring it in
with ``shiftwatch labeling import``. Its labels say ``annotator=oracle``: nobody mistakes them for a person's.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

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


def answer_queue(stage: Stage, traffic: Traffic, *, show: bool = True) -> Answered:
    """Label every pending task of the demo's model from the ground truth, through the import path."""
    tasks = stage.api.get("/v1/labeling/tasks", model=stage.model, state="pending", limit=PAGE)
    # Keyed by prediction id: in shadow one request id has two predictions (production's and the candidate's).
    rows = [(task["prediction_id"], traffic.truth[task["request_id"]]) for task in tasks
            if task.get("request_id") in traffic.truth]
    if not rows:
        return Answered(len(tasks), 0, None)
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
    return Answered(len(tasks), len(rows), path)
