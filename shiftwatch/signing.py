"""HMAC signatures for webhooks, out (alerts) and in (Label Studio): timestamped, so a replay goes stale."""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Shiftwatch-Signature"
TIMESTAMP_HEADER = "X-Shiftwatch-Timestamp"
DEFAULT_TOLERANCE_S = 300


def sign(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Headers to send with ``body``: the timestamp and ``sha256=<hex HMAC of "timestamp.body">``."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: f"sha256={digest}"}


def verify(
    secret: str,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """True when the signature matches and the timestamp is within ``tolerance_s`` of now."""
    if not timestamp or not signature or not timestamp.isdigit():
        return False
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > tolerance_s:
        return False
    expected = sign(secret, body, int(timestamp))[SIGNATURE_HEADER]
    return hmac.compare_digest(expected.encode(), signature.encode())  # bytes: non-ASCII text raises TypeError
