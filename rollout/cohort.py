"""Which clients a canary step serves with the candidate: sticky per client key, and never empty for lack of keys.

A key hashes to a fixed point in [0, 1) (``routing.bucket``) and is in the canary while its point is
below the step's share. With few keys that can leave the canary without a single client: 50 keys
miss a 5 % share 7.7 % of the time (0.95^50), and the step then waits forever. So the cohort also
takes the keys seen so far with the lowest points, floor(share x keys seen) of them: 50 keys at 5 %
give the canary 2 clients. That bound only ever rises during a rollout, so a client once in the
canary stays in it (at this share and every later one); while keys are still being learned a client
may move into the canary, as when the share rises, never back (a key seen late with a point under
the bound joins too: one more client than floor, never fewer). The lowest points are the same in
every replica that has seen the same keys. Fewer keys than 1/share (under 20 at 5 %) cannot fill a
step this way: the controller says so (``guardrails.starved``).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass, field

from shiftwatch.rollout.routing import bucket

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
    floor_bound: float = -1.0  # keys at or below this point are in the canary whatever the share; only rises
    share: float = 0.0

    def in_canary(self, routing_key: str, share: float) -> bool:
        point = bucket(self.rollout_id, routing_key)
        if point not in self.known and len(self.known) < MAX_TRACKED_KEYS:
            self.known.add(point)
            insort(self.points, point)
        self.share = share
        wanted = math.floor(share * len(self.points))  # clients the share asks for among those seen
        if wanted:
            self.floor_bound = max(self.floor_bound, self.points[wanted - 1])
        return point < share or point <= self.floor_bound

    def census(self) -> KeyCensus:
        hashed_in = bisect_left(self.points, self.share)  # points below the share
        by_floor = bisect_right(self.points, self.floor_bound)
        return KeyCensus(self.rollout_id, self.share, len(self.points), max(hashed_in, by_floor), hashed_in)
