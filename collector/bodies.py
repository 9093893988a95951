"""Reading request bodies with bounded work: size, time, and a server-wide budget of bytes held at once.

Ingest and the gateway read bodies here. A body is refused with 413 once it (or what it
inflates to) passes its limit, with 408 if it does not arrive within the read timeout, and
with 503 + Retry-After when the process already holds ``max_parse_bytes`` of bodies being
read and parsed: N concurrent big bodies queue at the client, not in this process's memory.
Decompression runs in a worker thread, so a large inflate never stalls the event loop.
"""

from __future__ import annotations

import asyncio
import threading
import zlib
from dataclasses import dataclass, field

from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from shiftwatch.errors import Invalid, ShiftwatchError, TooLarge, Unavailable
from shiftwatch.settings import Settings

INFLATE_CHUNK = 1024 * 1024  # inflate output is charged to the budget a MiB at a time


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """What a request body may take: bytes as sent, bytes a JSON body may inflate to, seconds to arrive."""

    max_request_bytes: int
    max_json_bytes: int
    read_timeout_s: float

    @classmethod
    def of(cls, settings: Settings) -> BodyLimits:
        return cls(settings.max_request_bytes, settings.max_json_bytes, settings.body_read_timeout_s)


class SlowBody(ShiftwatchError):
    """The body did not arrive within the read timeout (a stalled or deliberately slow upload)."""

    status_code = 408


class ByteBudget:
    """A semaphore over bytes: what every request in this process holds of bodies being read and parsed."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self._lock = threading.Lock()

    def take(self, n: int) -> bool:
        with self._lock:
            if self.held + n > self.limit:
                return False
            self.held += n
            return True

    def give(self, n: int) -> None:
        with self._lock:
            self.held -= n


@dataclass
class Reservation:
    """One request's share of a ``ByteBudget``; grows as its body is read, all given back on exit."""

    budget: ByteBudget
    held: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def charge(self, n: int) -> None:
        """Take ``n`` more bytes, or refuse the request with 503 (it holds nothing more once it is answered)."""
        # A single request bigger than the whole budget may still run, but only alone.
        n = min(n, max(0, self.budget.limit - self.held))
        if not self.budget.take(n):
            raise Unavailable("server is busy parsing other large requests; retry later", retry_after_s=1.0)
        with self._lock:
            self.held += n

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            held, self.held = self.held, 0
        self.budget.give(held)


async def read_raw(request: Request, limit: int, limit_name: str, timeout_s: float, reservation: Reservation) -> bytes:
    """The body as sent: 413 past ``limit`` (``Content-Length`` checked first), 408 past ``timeout_s``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"body: {declared} bytes, over the limit of {limit} ({limit_name})")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise TooLarge(f"body: over the limit of {limit} bytes ({limit_name})")
                reservation.charge(len(chunk))
                chunks.append(chunk)
    except TimeoutError:
        raise SlowBody(
            f"body: not received within {timeout_s:g} s, SHIFTWATCH_BODY_READ_TIMEOUT_S ({size} bytes arrived)"
        ) from None
    return b"".join(chunks)


def inflate(body: bytes, encoding: str, limit: int, limit_name: str, reservation: Reservation) -> bytes:
    """Decompress a gzip/deflate body, a MiB at a time, refusing it (413) the moment it passes ``limit``."""
    try:
        inflater = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
        parts: list[bytes] = []
        size = 0
        pending = body
        while pending or not inflater.eof:
            part = inflater.decompress(pending, INFLATE_CHUNK)
            pending = inflater.unconsumed_tail
            if not part:
                break
            size += len(part)
            if size > limit:
                raise TooLarge(f"body: decompresses to over the limit of {limit} bytes ({limit_name})")
            reservation.charge(len(part))
            parts.append(part)
    except zlib.error as exc:
        raise Invalid("body", f"not valid {encoding} data ({exc})") from None
    if not inflater.eof:
        raise Invalid("body", f"{encoding} data is truncated")
    return b"".join(parts)


def inflated_limit(media_type: str, limits: BodyLimits) -> tuple[int, str]:
    """How large a body of this media type may inflate to, and the setting that says so."""
    if media_type == "application/json":  # parse cost, not transfer, is what a JSON body's size bounds
        return min(limits.max_json_bytes, limits.max_request_bytes), "SHIFTWATCH_MAX_JSON_BYTES"
    return limits.max_request_bytes, "SHIFTWATCH_MAX_REQUEST_BYTES"


async def read_body(
    request: Request, limits: BodyLimits, *, limit: int, limit_name: str, reservation: Reservation
) -> bytes:
    """The request body, decompressed (gzip/deflate) in a worker thread, within ``limit`` bytes.

    As sent, a body may take ``max_request_bytes`` and ``body_read_timeout_s``; ``limit`` bounds
    what it inflates to and ``limit_name`` is the setting behind it, named in the 413.
    """
    encoding = request.headers.get("content-encoding", "").lower()
    if encoding not in ("", "identity", "gzip", "deflate"):
        raise Invalid("content-encoding", f"{encoding!r} is not supported (use gzip)")
    timeout_s = limits.read_timeout_s
    if encoding in ("", "identity"):
        return await read_raw(request, min(limits.max_request_bytes, limit), limit_name, timeout_s, reservation)
    body = await read_raw(request, limits.max_request_bytes, "SHIFTWATCH_MAX_REQUEST_BYTES", timeout_s, reservation)
    return await run_in_threadpool(inflate, body, encoding, limit, limit_name, reservation)
