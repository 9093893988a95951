"""``POST /v1/artifacts``: an ONNX file streamed to disk within a size and time limit, verified, then stored.

The body goes to a part file under ``data_dir/artifacts/.incoming`` (never into memory), is checked
by ``verify_onnx_artifact`` off the event loop, and lands at ``artifacts/<sha256>.onnx`` in one
rename; a refused or interrupted upload leaves nothing behind. At most ``MAX_UPLOADS`` run at once
per process (more get 503 + Retry-After: stalled uploads held a slot each for the whole timeout),
and a client that disconnects mid-upload is one log line, not a traceback.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from pathlib import Path

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from shiftwatch.artifacts import ARTIFACTS_DIR, ArtifactCheck, verify_onnx_artifact
from shiftwatch.collector.bodies import SlowBody
from shiftwatch.errors import Invalid, TooLarge, Unavailable

MAX_UPLOADS = 2  # artifact uploads in flight per process; each may take SHIFTWATCH_ARTIFACT_UPLOAD_TIMEOUT_S
_uploads = threading.BoundedSemaphore(MAX_UPLOADS)


async def receive_artifact(
    request: Request, expected_sha256: str | None, *, data_dir: Path, limit: int, timeout_s: float
) -> tuple[str, ArtifactCheck]:
    """Store the uploaded artifact; returns its registry path (``artifacts/<sha256>.onnx``) and what was verified.

    ``limit`` is SHIFTWATCH_ARTIFACT_MAX_BYTES, ``timeout_s`` SHIFTWATCH_ARTIFACT_UPLOAD_TIMEOUT_S.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"artifact: {declared} bytes, over the limit of {limit} (SHIFTWATCH_ARTIFACT_MAX_BYTES)")
    root = Path(data_dir) / ARTIFACTS_DIR
    incoming = root / ".incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    part = incoming / f"{uuid.uuid4().hex}.part"
    if not _uploads.acquire(blocking=False):
        raise Unavailable(f"{MAX_UPLOADS} artifact uploads are already in progress; retry later", retry_after_s=5.0)
    try:
        await _stream_to(request, part, limit, timeout_s)
        check = await run_in_threadpool(verify_onnx_artifact, part, expected_sha256, limit)
        os.replace(part, root / f"{check.sha256}.onnx")  # same bytes, same name: a re-upload is harmless
    finally:
        part.unlink(missing_ok=True)
        _uploads.release()
    return f"{ARTIFACTS_DIR}/{check.sha256}.onnx", check


async def _stream_to(request: Request, part: Path, limit: int, timeout_s: float) -> None:
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            with part.open("wb") as handle:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise TooLarge(f"artifact: over the limit of {limit} bytes (SHIFTWATCH_ARTIFACT_MAX_BYTES)")
                    await run_in_threadpool(handle.write, chunk)
    except ClientDisconnect:
        raise Invalid("body", f"the client disconnected after {size} bytes; nothing was stored") from None
    except TimeoutError:
        raise SlowBody(
            f"artifact: not received within {timeout_s:g} s, SHIFTWATCH_ARTIFACT_UPLOAD_TIMEOUT_S"
            f" ({size} bytes arrived)"
        ) from None
