"""Webhook signatures (HMAC over timestamp + body): the right secret verifies; tampering, staleness and replays do not."""

from __future__ import annotations

import json

from shiftwatch.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, verify

SECRET = "whsec-test-0123456789"
BODY = json.dumps({"alert": 7, "model": "digits", "drift": True}).encode()
NOW = 1_800_000_000


def _verify(body: bytes, headers: dict, secret: str = SECRET, now: float = NOW) -> bool:
    return verify(secret, body, headers.get(TIMESTAMP_HEADER), headers.get(SIGNATURE_HEADER), now=now)


def test_signed_body_verifies():
    assert _verify(BODY, sign(SECRET, BODY, NOW))


def test_tampered_body_fails():
    headers = sign(SECRET, BODY, NOW)
    assert not _verify(BODY.replace(b"true", b"false"), headers)
    assert not _verify(BODY + b" ", headers)


def test_other_secret_fails():
    assert not _verify(BODY, sign("another-endpoint-secret", BODY, NOW))


def test_stale_or_future_timestamp_fails():
    headers = sign(SECRET, BODY, NOW)
    assert _verify(BODY, headers, now=NOW + 299)
    assert not _verify(BODY, headers, now=NOW + 301)
    assert not _verify(BODY, headers, now=NOW - 301)


def test_timestamp_cannot_be_moved_forward_to_replay():
    old = sign(SECRET, BODY, NOW - 3600)
    replayed = {TIMESTAMP_HEADER: str(NOW), SIGNATURE_HEADER: old[SIGNATURE_HEADER]}
    assert not _verify(BODY, replayed)


def test_missing_or_malformed_headers_fail():
    good = sign(SECRET, BODY, NOW)
    assert not verify(SECRET, BODY, None, good[SIGNATURE_HEADER], now=NOW)
    assert not verify(SECRET, BODY, str(NOW), None, now=NOW)
    assert not verify(SECRET, BODY, "-5", good[SIGNATURE_HEADER], now=NOW)
    assert not verify(SECRET, BODY, str(NOW), "sha256=" + "0" * 64, now=NOW)
    assert not verify(SECRET, BODY, str(NOW), good[SIGNATURE_HEADER].removeprefix("sha256="), now=NOW)
