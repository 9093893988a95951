"""What an episode is: concept drift (accuracy fell on labels, the inputs did not move), drift, or an unplaced accuracy drop.

Pure concept drift -- a class redefined, a product renamed -- moves no embedding and no
confidence; only labels show it. An episode says "concept drift" when its labeled detectors
fired, none of its input or output detectors did, and at least one of those watches the version
(has tested it). Without one nobody knows whether the inputs moved: "accuracy drop".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from shiftwatch.detectors.configs import LABELED_INPUT
from shiftwatch.detectors.tables import DetectorConfig, DriftRun


@dataclass(frozen=True, slots=True)
class Kind:
    """The words an alert's title uses for its episode, and why, in a sentence for its evidence."""

    words: str  # "concept drift", "drift" or "accuracy drop"
    why: str


def watching(session: Session, model_version_id: int) -> list[str]:
    """Names of the version's enabled input and output detectors that have tested it at least once."""
    tested = exists().where(DriftRun.config_id == DetectorConfig.id, DriftRun.status == "ok")
    stmt = select(DetectorConfig.name).where(
        DetectorConfig.model_version_id == model_version_id,
        DetectorConfig.enabled.is_(True),
        DetectorConfig.input != LABELED_INPUT,
        tested,
    )
    with session.no_autoflush:  # asked while an alert is being built: nothing half-made is written for it
        return list(session.scalars(stmt.order_by(DetectorConfig.id)))


def of_episode(session: Session, model_version_id: int, detectors: dict[str, dict[str, Any]]) -> Kind:
    """The kind of an episode from the detectors that fired in it (``alert.evidence["detectors"]``)."""
    labeled = [e["name"] for e in detectors.values() if e.get("input") == LABELED_INPUT]
    unlabeled = [e["name"] for e in detectors.values() if e.get("input") != LABELED_INPUT]
    if not labeled:
        return Kind("drift", f"the inputs or outputs moved ({', '.join(unlabeled)})")
    if unlabeled:
        return Kind("drift", f"the inputs or outputs moved ({', '.join(unlabeled)}) and accuracy on labels fell ({', '.join(labeled)})")
    quiet = watching(session, model_version_id)
    if not quiet:
        return Kind("accuracy drop", f"accuracy on labels fell ({', '.join(labeled)}); no input or output detector "
                                     "watches this version, so whether the inputs moved is unknown")  # fmt: skip
    return Kind("concept drift", f"accuracy on labels fell ({', '.join(labeled)}) while the input and output "
                                 f"detectors saw no shift ({', '.join(quiet)}): the right answer changed, not the inputs")  # fmt: skip
