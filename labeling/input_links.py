"""Signed, expiring links to stored inputs, so Label Studio's annotators see images without a shiftwatch token.

An annotator's browser loads the image straight from shiftwatch and cannot send our bearer
token; the link carries an HMAC (keyed by the secret key, ``shiftwatch.secret_key``) over the
input name and an expiry instead. It grants exactly one content-addressed file until it expires.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import urlencode

from shiftwatch.secret_key import secret_key
from shiftwatch.settings import Settings

ROUTE = "/v1/labeling/inputs"


def _signature(secret: str, name: str, expires: int) -> str:
    return hmac.new(secret.encode(), f"labeling-input:{name}:{expires}".encode(), hashlib.sha256).hexdigest()


def input_link(settings: Settings, input_ref: str, now: float | None = None) -> str:
    """Public URL of ``input_ref`` (``inputs/<sha256>.png``) valid for ``settings.labeling_link_ttl_s``."""
    name = input_ref.removeprefix("inputs/")
    expires = int((time.time() if now is None else now) + settings.labeling_link_ttl_s)
    query = urlencode({"expires": expires, "signature": _signature(secret_key(settings), name, expires)})
    return f"{settings.public_url.rstrip('/')}{ROUTE}/{name}?{query}"


def link_is_valid(settings: Settings, name: str, expires: int, signature: str, now: float | None = None) -> bool:
    if expires < (time.time() if now is None else now):
        return False
    # bytes, not str: compare_digest raises TypeError on non-ASCII text (found by schemathesis)
    return hmac.compare_digest(_signature(secret_key(settings), name, expires).encode(), signature.encode())
