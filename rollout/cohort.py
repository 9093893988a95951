"""Which clients a canary step serves with the candidate: sticky per client key, and never empty for lack of keys.

A key hashes to a fixed point in [0, 1) (``routing.bucket``) and is in the canary while its point is
below the step's share. With few keys that can leave the canary without a single client: 50 keys
miss a 5 % share 7.7 % of the time (0.95^50), and the step then waits forever. So when the hash
gives the step fewer than min(floor(share x keys seen), 2) of the keys seen so far, the cohort
admits the next-lowest keys until it has that many: 50 keys at 5 % give the canary at least 2
clients. An admitted key stays in for the rest of the rollout, so a client once in the canary
stays in it (at this share and every later one); while keys are still being learned a client may
move into the canary, as when the share rises, never back. With many keys the hash alone gives
the share and the floor adds at most 2 clients admitted early on. Fewer keys than 1/share (under
20 at 5 %) cannot give a step a client this way: the controller says so (``guardrails.starved``).
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from dataclasses import dataclass, field

from shiftwatch.db import Database, utcnow
from shiftwatch.rollout.routing import bucket
from shiftwatch.rollout.tables import CanaryKeyCount

# The floor gives a step at most this many clients beyond what the hash gives it: enough that one idle
# client does not stall the step, few enough that with many keys (where the hash alone gives the share)
# the floor almost never acts and no client moves during warm-up.
MIN_CANARY_CLIENTS = 2
# Distinct keys remembered per rollout (8 bytes each, their points, never the keys). Past this many
# the hash alone already puts the share of clients within a fraction of a point of the step's share.
MAX_TRACKED_KEYS = 10_000


@dataclass(frozen=True, slots=True)
class KeyCensus:
    """What one gateway process has seen of a rollout's client keys (``/v1/gateway/stats``)."""

    rollout_id: int
    share: float
    keys_seen: int
    keys_in_canary: int
    keys_hashed_in: int  # of those, the ones whose point is below the share (the rest came in by the floor)


@dataclass(slots=True)
class KeyCohort:
    """One rollout's canary clients in this process. Used from the event loop only: no lock."""

    rollout_id: int
    points: list[float] = field(default_factory=list)  # of the distinct keys seen, sorted
    known: set[float] = field(default_factory=set)
    admitted: set[float] = field(default_factory=set)  # keys the floor put in the canary: they stay
    share: float = 0.0

    def in_canary(self, routing_key: str, share: float) -> bool:
        point = bucket(self.rollout_id, routing_key)
        if point not in self.known and len(self.known) < MAX_TRACKED_KEYS:
            self.known.add(point)
            insort(self.points, point)
        self.share = share
        hashed_in = bisect_left(self.points, share)
        wanted = min(math.floor(share * len(self.points)), MIN_CANARY_CLIENTS)  # never more than the share asks
        if hashed_in + len(self.admitted) < wanted:  # the hash left the step short: admit the next-lowest keys
            for candidate in self.points[hashed_in:]:
                if hashed_in + len(self.admitted) >= wanted:
                    break
                self.admitted.add(candidate)
        return point < share or point in self.admitted

    def census(self) -> KeyCensus:
        hashed_in = bisect_left(self.points, self.share)  # points below the share
        by_floor = sum(point >= self.share for point in self.admitted)
        return KeyCensus(self.rollout_id, self.share, len(self.points), hashed_in + by_floor, hashed_in)


class KeyCohorts:
    """Every canary's cohort in one gateway process, and their census written to ``canary_key_counts``.

    ``in_canary`` runs on the event loop; ``record`` and ``keep_only`` on the refresh thread (list and
    dict operations are atomic under the GIL; a census read mid-insert is at most one key behind).
    """

    def __init__(self, db: Database, replica: str) -> None:
        self.db = db
        self.replica = replica[:200]
        self._cohorts: dict[int, KeyCohort] = {}
        self._recorded: dict[int, KeyCensus] = {}

    def in_canary(self, rollout_id: int, routing_key: str, share: float) -> bool:
        cohort = self._cohorts.get(rollout_id)
        if cohort is None:
            cohort = self._cohorts[rollout_id] = KeyCohort(rollout_id)
        return cohort.in_canary(routing_key, share)

    def census(self, rollout_id: int) -> KeyCensus | None:
        cohort = self._cohorts.get(rollout_id)
        return None if cohort is None else cohort.census()

    def keep_only(self, rollout_ids: set[int]) -> None:
        """Forget finished rollouts' clients."""
        for rollout_id in [r for r in list(self._cohorts) if r not in rollout_ids]:
            self._cohorts.pop(rollout_id, None)
            self._recorded.pop(rollout_id, None)

    def record(self) -> int:
        """Write each census that changed since it was last written, so the controller can read it; how many."""
        changed = [c for c in (cohort.census() for cohort in list(self._cohorts.values()))
                   if self._recorded.get(c.rollout_id) != c]  # fmt: skip
        if not changed:
            return 0
        with self.db.session() as session:
            for c in changed:
                session.merge(CanaryKeyCount(rollout_id=c.rollout_id, replica=self.replica, share=c.share,
                                             keys_seen=c.keys_seen, keys_in_canary=c.keys_in_canary,
                                             keys_hashed_in=c.keys_hashed_in, updated_at=utcnow()))  # fmt: skip
        self._recorded.update((c.rollout_id, c) for c in changed)
        return len(changed)
