"""Thin adapters to the packages below rollout: labels, the labeling queue, the scheduler's tick claim.

Each is one function so that the wiring to labeling/ and detectors/ lives in one place.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from shiftwatch.db import Database

log = logging.getLogger(__name__)


def known_labels(session: Session, input_refs: list[str]) -> dict[str, int]:
    """True classes of the inputs people have labeled (empty until labeling/ provides them)."""
    return {}


def send_disagreements(session: Session, model_version_id: int, items: list[dict[str, Any]], reason: str) -> int:
    """Queue shadow disagreements for labeling; returns how many were handed over."""
    log.info("%d disagreements for version %d not queued: labeling is not installed", len(items), model_version_id)
    return 0


def claim_tick(db: Database, job_name: str, tick: int) -> bool:
    """True in exactly one replica per tick (single process until detectors/ provides the claim)."""
    return True
