"""The SDK's files on disk: ``pending-*`` batches waiting to be replayed, ``rejected-*`` batches kept with their reason.

A pending file's name carries its row count and how many 5xx answers it has had, so the
client can count what waits on disk without reading it, and move a batch that keeps
failing on the server to the rejected store instead of replaying it for ever.
Names start with the spill time, so replay goes oldest first. One replayer at a time per
directory (``replay_lock``). Numpy and stdlib only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_PENDING = re.compile(r"^pending-(\d+)-([0-9a-f]+)(?:-r(\d+)-e(\d+))?\.npz$")


def default_spill_dir(url: str) -> Path:
    """Where a ``Client`` for ``url`` keeps its files unless told otherwise: one folder per server."""
    return Path.home() / ".shiftwatch" / "spill" / hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class RejectedBatch:
    """One refused batch kept on disk: the batch as sent (``.npz``) or as JSON lines, and its reason."""

    path: Path
    reason: str

    @property
    def reason_path(self) -> Path:
        return self.path.with_suffix(".txt")


@dataclass(frozen=True, slots=True)
class PendingBatch:
    """One spilled batch: where it is, how many rows it holds, how many 5xx answers it has had."""

    path: Path
    rows: int
    server_errors: int


def _jsonable(value: object) -> object:
    if isinstance(value, np.ndarray):
        return value.tolist()
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - the value that broke the batch may break str() too
        return repr(value)


class SpillDir:
    """A directory of pending and rejected batches; every file appears whole (write, then rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @contextmanager
    def replay_lock(self, name: str = "replay") -> Iterator[bool]:
        """Yield whether this caller may replay the directory now: an exclusive, non-blocking ``flock`` on
        ``.<name>.lock``, so processes (and clients) sharing a directory never send the same file twice.
        The kernel drops the lock when its holder dies. Where ``fcntl`` is missing (Windows), always True."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            yield True
            return
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f".{name}.lock", "a+b") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _write(self, name: str, data: bytes) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / name
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(data)
        partial.replace(path)
        return path

    @staticmethod
    def _stamp() -> str:
        return f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"

    def pending(self) -> list[PendingBatch]:
        """Pending batches, oldest first (files from before row counts were in names are read once)."""
        if not self.root.exists():
            return []
        out = []
        for path in sorted(self.root.glob("pending-*.npz")):
            found = _PENDING.match(path.name)
            if found is None:
                continue
            if found.group(3) is None:
                try:
                    with np.load(path, allow_pickle=False) as archive:
                        rows = int(archive["ids"].shape[0])
                except (OSError, ValueError, KeyError):
                    rows = 0  # unreadable: the server will say why when it is replayed
                out.append(PendingBatch(path, rows, 0))
            else:
                out.append(PendingBatch(path, int(found.group(3)), int(found.group(4))))
        return out

    def spill(self, body: bytes, rows: int, server_errors: int = 0) -> PendingBatch:
        path = self._write(f"pending-{self._stamp()}-r{rows}-e{server_errors}.npz", body)
        return PendingBatch(path, rows, server_errors)

    def count_server_error(self, batch: PendingBatch, server_errors: int) -> PendingBatch:
        """Rename the file to carry its new 5xx count (it keeps its place in the replay order)."""
        found = _PENDING.match(batch.path.name)
        assert found is not None, batch.path  # pending() only yields names that match
        moved = batch.path.with_name(f"pending-{found.group(1)}-{found.group(2)}-r{batch.rows}-e{server_errors}.npz")
        batch.path.replace(moved)
        return PendingBatch(moved, batch.rows, server_errors)

    def reject(self, body: bytes | None, records: list | None, reason: str) -> Path:
        """Keep a refused batch with the reason next to it: as sent (``.npz``), or as JSON lines when it
        could not even be encoded. Returns the batch's path."""
        stamp = self._stamp()
        if body is not None:
            path = self._write(f"rejected-{stamp}.npz", body)
        else:
            lines = [json.dumps(dataclasses.asdict(r), default=_jsonable) for r in records or []]
            path = self._write(f"rejected-{stamp}.jsonl", ("\n".join(lines) + "\n").encode())
        self._write(f"rejected-{stamp}.txt", (reason + "\n").encode())
        return path

    def rejected(self) -> list[RejectedBatch]:
        """Refused batches, oldest first, each with the reason it was last refused for."""
        if not self.root.exists():
            return []
        found = sorted(p for p in self.root.glob("rejected-*") if p.suffix in (".npz", ".jsonl"))
        out = []
        for path in found:
            reason_path = path.with_suffix(".txt")
            out.append(RejectedBatch(path, reason_path.read_text().strip() if reason_path.exists() else ""))
        return out

    def refused_again(self, batch: RejectedBatch, reason: str) -> None:
        """Record why a replayed batch was refused this time; the batch stays for another fix."""
        self._write(batch.reason_path.name, (reason + "\n").encode())

    def rewrite(self, batch: RejectedBatch, data: bytes, reason: str) -> None:
        """Replace a refused batch with the part of it still refused (the rest was stored), and its reason."""
        self._write(batch.path.name, data)
        self._write(batch.reason_path.name, (reason + "\n").encode())

    def forget(self, batch: RejectedBatch) -> None:
        """Delete a batch the server has now taken, and its reason."""
        batch.path.unlink(missing_ok=True)
        batch.reason_path.unlink(missing_ok=True)
