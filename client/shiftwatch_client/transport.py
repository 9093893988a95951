"""The SDK's HTTP side: one keep-alive connection per sending thread, gzip when it pays, and the
retry policy (which answers are waited out, which count against a batch, which refuse it). Stdlib only."""

from __future__ import annotations

import gzip
import http.client
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from shiftwatch_client import wire
from shiftwatch_client.version import USER_AGENT, VERSION_HEADER, __version__

RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}
# A 502/503/504 says the server (or its database) is away, so it is waited out however long; other
# 5xx answers are the server failing on this batch, counted against ``max_server_errors``.
AWAY_STATUS = {502, 503, 504}


class Refused(Exception):
    """Retrying will not help: the server refused the batch (4xx), or kept failing on it (5xx)."""


class Unsent(Exception):
    """The deadline passed before the server took the batch; ``server_errors`` 5xx answers so far."""

    def __init__(self, message: str, server_errors: int, server_answered: bool) -> None:
        super().__init__(message)
        self.server_errors = server_errors
        self.server_answered = server_answered  # False: unreachable or away, so later batches would fail too


class ApiError(Exception):
    """The server refused an API call; ``status`` is the HTTP status, ``detail`` its reason."""

    def __init__(self, status: int, method: str, path: str, text: str) -> None:
        try:
            detail = str(json.loads(text).get("detail", text))
        except (ValueError, AttributeError):
            detail = text[:500]
        super().__init__(f"{method} {path}: HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Ack:
    """The server's answer to a batch: rows stored, duplicates, each row it refused (index, field, reason), and
    rows queued (a server with an ingest broker answers 202: its ingest workers store them)."""

    stored: int
    duplicates: int
    refusals: tuple[dict, ...] = ()
    queued: int = 0

    @classmethod
    def of(cls, answer: object) -> Ack:
        counts = answer if isinstance(answer, dict) else {}
        return cls(int(counts.get("stored", 0)), int(counts.get("duplicates", 0)), tuple(counts.get("refusals", ())),
                   int(counts.get("queued", 0)))  # fmt: skip


# The SDK asks the server to store a batch's valid rows and refuse the rest one by one.
INGEST_PATH = "/v1/predictions?partial=true"


class Transport:
    """POSTs encoded batches to ``/v1/predictions``; answers (status, Retry-After seconds, body text)."""

    def __init__(
        self, scheme: str, host: str, port: int | None, base_path: str, *, token: str | None, timeout_s: float,
        compress: bool,
    ) -> None:  # fmt: skip
        self._scheme, self._host, self._port, self._base_path = scheme, host, port, base_path
        self._token = token
        self.timeout_s = timeout_s
        self.compress = compress
        self._skip_compression = 0
        self._local = threading.local()

    @classmethod
    def for_url(cls, url: str, *, token: str | None, timeout_s: float, compress: bool) -> Transport:
        """A transport to the server at ``url``; ``ValueError`` unless it is http(s)://host[:port][/path]."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url must be http(s)://host[:port], got {url!r}")
        return cls(parts.scheme, parts.hostname, parts.port, parts.path.rstrip("/"), token=token,
                   timeout_s=timeout_s, compress=compress)  # fmt: skip

    def post(self, body: bytes) -> tuple[int, float | None, str]:
        """One attempt; raises ``OSError``/``http.client.HTTPException`` when the server cannot be reached."""
        try:
            return self._post(body)
        except (OSError, http.client.HTTPException):
            self._reset_connection()
            raise

    def _post(self, body: bytes) -> tuple[int, float | None, str]:
        headers = {"Content-Type": wire.CONTENT_TYPE}
        body, compressed = self._maybe_compress(body)
        if compressed:
            headers["Content-Encoding"] = "gzip"
        return self._exchange(self._connect(), "POST", INGEST_PATH, body, headers)

    def _exchange(
        self, connection: http.client.HTTPConnection, method: str, path: str, body: bytes | None,
        headers: dict[str, str],
    ) -> tuple[int, float | None, str]:  # fmt: skip
        # Every request names the client's version: the server refuses another API generation by name.
        headers |= {VERSION_HEADER: __version__, "User-Agent": USER_AGENT}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        connection.request(method, f"{self._base_path}{path}", body=body, headers=headers)
        response = connection.getresponse()
        text = response.read().decode("utf-8", "replace")
        retry_after = response.getheader("Retry-After")
        return response.status, float(retry_after) if retry_after and retry_after.isdigit() else None, text

    def call(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None) -> object:
        """One API request outside ingest (registration, references, alerts): the decoded JSON answer.

        Raises ``ApiError`` naming the server's reason on any non-2xx answer, ``OSError`` when
        the server cannot be reached. No retry, and a connection of its own: a script's calls are
        minutes apart, past any server's keep-alive, and a POST is not resent blindly.
        """
        headers = {"Accept": "application/json"} | ({"Content-Type": content_type} if content_type else {})
        connection = self._new_connection()
        try:
            status, _, text = self._exchange(connection, method, path, body, headers)
        finally:
            connection.close()
        if not 200 <= status < 300:
            raise ApiError(status, method, path, text)
        return json.loads(text) if text else None

    def _maybe_compress(self, body: bytes) -> tuple[bytes, bool]:
        """gzip a batch when it pays. Dense float32 embeddings barely compress (12% at ~95 us a row
        for random 512-d vectors, measured), sparse post-ReLU ones do; so probe one batch in 50
        and send uncompressed while gzip saves under 20%."""
        if not self.compress:
            return body, False
        if self._skip_compression > 0:
            self._skip_compression -= 1
            return body, False
        packed = gzip.compress(body, compresslevel=1)
        if len(packed) > 0.8 * len(body):
            self._skip_compression = 49
            return body, False
        return packed, True

    def _connect(self) -> http.client.HTTPConnection:
        """One keep-alive connection per sending thread."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = self._new_connection()
        return connection

    def _new_connection(self) -> http.client.HTTPConnection:
        factory = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
        return factory(self._host, self._port, timeout=self.timeout_s)

    def _reset_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
        self._local.connection = None


def send(
    transport: Transport,
    body: bytes,
    *,
    give_up_after: float,
    server_errors: int,
    max_server_errors: int,
    stop_when_unreachable: Callable[[], bool],
    on_retry: Callable[[str], None],
) -> Ack:
    """POST one encoded batch until it is accepted, with jittered exponential backoff (honouring
    ``Retry-After``). Raises ``Refused`` on a 4xx or at the ``max_server_errors``-th 5xx answer
    (counting ``server_errors`` from earlier tries), ``Unsent`` when ``give_up_after`` passes first."""
    deadline = time.monotonic() + give_up_after
    delay = 0.1
    while True:
        try:
            status, retry_after, text = transport.post(body)
        except (OSError, http.client.HTTPException) as exc:
            status, retry_after, text = None, None, str(exc)
        if status is not None and 200 <= status < 300:
            return Ack.of(json.loads(text))
        if status is not None and status not in RETRYABLE_STATUS and status < 500:
            raise Refused(f"HTTP {status}: {text[:500]}")
        error = f"HTTP {status}: {text[:200]}" if status else text
        if status is not None and status >= 500 and status not in AWAY_STATUS:
            server_errors += 1
            if server_errors >= max_server_errors:
                raise Refused(f"gave up after {server_errors} server errors; the last: {error}")
        on_retry(error)
        wait = retry_after if retry_after is not None else delay * (0.5 + random.random())
        if time.monotonic() + wait > deadline or (status is None and stop_when_unreachable()):
            answered = status is not None and status not in AWAY_STATUS and status != 429
            raise Unsent(f"gave up after {give_up_after:.0f}s: {error}", server_errors, answered)
        time.sleep(wait)
        delay = min(delay * 2, 5.0)
