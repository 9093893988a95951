"""The one place labeling reads what the drift detectors flagged (``shiftwatch.detectors.flagged``).

Kept thin on purpose: the detectors own the notion of "atypical"; we only need, per flagged
prediction, its id, a score (higher = more atypical) and the method that flagged it.
"""

from __future__ import annotations

import importlib
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from shiftwatch.labeling.queue import FlaggedItem


def detector_flags(session: Session, model_version_id: int, since: datetime | None = None) -> list[FlaggedItem]:
    """Samples the detectors flagged for this version since ``since``; empty while the detectors flag nothing."""
    try:
        flagged = importlib.import_module("shiftwatch.detectors.flagged")
    except ModuleNotFoundError as exc:
        if exc.name is not None and "shiftwatch.detectors.flagged".startswith(exc.name):
            return []
        raise
    return [as_flagged_item(item) for item in flagged.flagged_samples(session, model_version_id, since=since)]


def as_flagged_item(item: Any) -> FlaggedItem:
    """Accept the detectors' record (attributes or a mapping) with ``prediction_id``, ``score`` and a method name."""

    def field(name: str, default: Any = None) -> Any:
        if isinstance(item, dict):
            return item.get(name, default)
        return getattr(item, name, default)

    prediction_id = field("prediction_id")
    if not isinstance(prediction_id, uuid.UUID):
        prediction_id = uuid.UUID(str(prediction_id))
    method = field("method") or field("detector") or "detector"
    return FlaggedItem(prediction_id=prediction_id, score=float(field("score", 1.0)), method=str(method))
