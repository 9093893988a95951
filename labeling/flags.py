"""The one place labeling reads what the drift detectors flagged (``shiftwatch.detectors.flagged``).

Kept thin on purpose: the detectors own the notion of "atypical"; we only need, per flagged
prediction, its id, a score (higher = more atypical) and the method that flagged it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from shiftwatch.detectors.flagged import flagged_samples


@dataclass(frozen=True, slots=True)
class FlaggedItem:
    """A sample a drift detector flagged as atypical, with its score in the detector's own unit."""

    prediction_id: uuid.UUID
    score: float
    method: str = "detector"


def detector_flags(session: Session, model_version_id: int, since: datetime | None = None) -> list[FlaggedItem]:
    """Samples the detectors flagged for this version since ``since``; empty while the detectors flag nothing."""
    return [as_flagged_item(item) for item in flagged_samples(session, model_version_id, since=since)]


def as_flagged_item(item: Any) -> FlaggedItem:
    """Accept the detectors' record (attributes or a mapping) with ``prediction_id``, ``score`` and a method name."""

    def field(name: str, default: Any = None) -> Any:
        if isinstance(item, dict):
            return item.get(name, default)
        return getattr(item, name, default)

    prediction_id = field("prediction_id")
    if not isinstance(prediction_id, uuid.UUID):
        prediction_id = uuid.UUID(str(prediction_id))
    # detectors.flagged.Flagged names its method ``reason`` (e.g. "mmd_witness").
    method = field("method") or field("detector") or field("reason") or "detector"
    return FlaggedItem(prediction_id=prediction_id, score=float(field("score", 1.0)), method=str(method))
