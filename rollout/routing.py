"""Sticky canary assignment: a client's routing key hashes to a fixed point in [0, 1).

The point depends on the rollout id and the key only, so one client sees one model for the
whole rollout, and raising the share from 5% to 25% keeps the first 5% in the canary
(monotone cohorts: nobody flips back and forth between models).
"""

from __future__ import annotations

import hashlib

CLIENT_KEY_HEADER = "x-client-key"
REQUEST_ID_HEADER = "x-request-id"
STREAM_ID_HEADER = "x-stream-id"


def bucket(rollout_id: int, routing_key: str) -> float:
    digest = hashlib.sha256(f"{rollout_id}:{routing_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def goes_to_canary(rollout_id: int, routing_key: str, share: float) -> bool:
    return bucket(rollout_id, routing_key) < share
