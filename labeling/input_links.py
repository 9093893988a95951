"""Signed, expiring links to stored inputs, so Label Studio's annotators see images without a shiftwatch token.

An annotator's browser loads the image straight from shiftwatch and cannot send our bearer
token; the link carries an HMAC (keyed by the secret key, ``shiftwatch.secret_key``) over the
input name and an expiry instead. It grants exactly one content-addressed file until it expires.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from urllib.parse import urlencode

from shiftwatch.secret_key import secret_key
from shiftwatch.settings import Settings

ROUTE = "/v1/labeling/inputs"


@dataclass(frozen=True, slots=True)
class InputLinks:
    """Signs and checks input links for one server: its public URL, its secret key, how long a link lives."""

    public_url: str
    secret: str
    ttl_s: float

    @classmethod
    def of(cls, settings: Settings) -> InputLinks:
        return cls(settings.public_url.rstrip("/"), secret_key(settings), settings.labeling_link_ttl_s)

    def _signature(self, name: str, expires: int) -> str:
        return hmac.new(self.secret.encode(), f"labeling-input:{name}:{expires}".encode(), hashlib.sha256).hexdigest()

    def link(self, input_ref: str, now: float | None = None) -> str:
        """Public URL of ``input_ref`` (``inputs/<sha256>.png``), valid for ``ttl_s``."""
        name = input_ref.removeprefix("inputs/")
        expires = int((time.time() if now is None else now) + self.ttl_s)
        query = urlencode({"expires": expires, "signature": self._signature(name, expires)})
        return f"{self.public_url}{ROUTE}/{name}?{query}"

    def is_valid(self, name: str, expires: int, signature: str, now: float | None = None) -> bool:
        if expires < (time.time() if now is None else now):
            return False
        # bytes, not str: compare_digest raises TypeError on non-ASCII text (found by schemathesis)
        return hmac.compare_digest(self._signature(name, expires).encode(), signature.encode())
