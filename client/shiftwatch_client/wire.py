"""The compact binary batch format shared by the SDK and the server (numpy ``.npz``, no pickle).

One request carries a batch in columns: per-row metadata as small arrays, embeddings
and probabilities as float32 matrices. It is ~4 bytes per embedding value instead of
~10 as JSON text, and decodes without a Python loop over values.
"""

from __future__ import annotations

import io
import math
import uuid
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

CONTENT_TYPE = "application/x-shiftwatch-npz"
STRING_COLUMNS = ("model", "version", "route", "request_id", "stream_id", "input_ref")


@dataclass
class ColumnBatch:
    """A batch of predictions in columns. Empty strings stand for "not given" in string columns, NaN in latency."""

    ids: np.ndarray  # (n, 16) uint8: UUID bytes
    ts_us: np.ndarray  # (n,) int64: microseconds since the Unix epoch, UTC
    model: np.ndarray  # (n,) str
    version: np.ndarray  # (n,) str
    route: np.ndarray  # (n,) str
    request_id: np.ndarray  # (n,) str
    stream_id: np.ndarray  # (n,) str
    input_ref: np.ndarray  # (n,) str
    predicted_class: np.ndarray  # (n,) int64
    confidence: np.ndarray  # (n,) float64
    latency_ms: np.ndarray  # (n,) float64, NaN = not given
    embeddings: np.ndarray | None = None  # (n, d) float32
    probabilities: np.ndarray | None = None  # (n, k) float32
    extra: dict[str, object] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def take(self, rows: np.ndarray) -> ColumnBatch:
        """The batch of just ``rows`` (a boolean mask or indices), in their order."""
        if rows.dtype == bool and rows.all():
            return self
        pick = {name: getattr(self, name)[rows] for name in ("ids", "ts_us", *STRING_COLUMNS, "predicted_class",
                                                              "confidence", "latency_ms")}  # fmt: skip
        return ColumnBatch(
            **pick,
            embeddings=None if self.embeddings is None else self.embeddings[rows],
            probabilities=None if self.probabilities is None else self.probabilities[rows],
        )

    def uuids(self) -> list[uuid.UUID]:
        return [uuid.UUID(bytes=bytes(row)) for row in self.ids]

    def timestamps(self) -> list[datetime]:
        return [datetime.fromtimestamp(int(t) / 1e6, tz=UTC) for t in self.ts_us]


def to_ts_us(value: datetime) -> int:
    if value.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def encode(batch: ColumnBatch) -> bytes:
    """Serialize a batch to ``.npz`` bytes (uncompressed; the transport may gzip it)."""
    arrays: dict[str, np.ndarray] = {
        "ids": np.ascontiguousarray(batch.ids, dtype=np.uint8),
        "ts_us": np.asarray(batch.ts_us, dtype=np.int64),
        "predicted_class": np.asarray(batch.predicted_class, dtype=np.int64),
        "confidence": np.asarray(batch.confidence, dtype=np.float64),
        "latency_ms": np.asarray(batch.latency_ms, dtype=np.float64),
    }
    for name in STRING_COLUMNS:
        arrays[name] = np.asarray(getattr(batch, name), dtype=np.str_)
    if batch.embeddings is not None:
        arrays["embeddings"] = np.asarray(batch.embeddings, dtype=np.float32)
    if batch.probabilities is not None:
        arrays["probabilities"] = np.asarray(batch.probabilities, dtype=np.float32)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]  # numpy's stub lets **arrays fill allow_pickle
    return buffer.getvalue()


class WireError(ValueError):
    """The body is not a valid batch; the message names the part that is wrong."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field = field
        self.why = why


def _check_member_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """Refuse a member whose ``.npy`` header claims more data than the member holds, before numpy allocates it.

    ``np.load`` allocates the array its header describes; an 8 TiB shape in a 100-byte member
    would otherwise fail inside numpy (MemoryError, a 500) or take the memory.
    """
    name = info.filename.removesuffix(".npy")
    try:
        with archive.open(info) as member:
            version = np.lib.format.read_magic(member)
            if version not in ((1, 0), (2, 0)):
                raise ValueError(f"format version {version} is not accepted")
            formats = np.lib.format
            read_header = formats.read_array_header_1_0 if version == (1, 0) else formats.read_array_header_2_0
            shape, _, dtype = read_header(member, max_header_size=10_000)  # type: ignore[call-arg]  # numpy>=1.24 has it, its stub not
            offset = member.tell()
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, SyntaxError) as exc:
        raise WireError(name, f"is not a valid .npy member ({exc})") from None
    if dtype.hasobject:
        raise WireError(name, "holds Python objects; only numeric and string arrays are accepted")
    claimed = dtype.itemsize * math.prod(shape)
    held = info.file_size - offset
    if claimed > held:
        raise WireError(name, f"header claims shape {tuple(shape)} of {dtype} ({claimed} bytes); the member holds {held}")


def decode(body: bytes, *, max_unpacked_bytes: int) -> ColumnBatch:
    """Parse ``.npz`` bytes into a batch, refusing pickles and archives that unpack too large."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(body))
        unpacked = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile as exc:
        raise WireError("body", f"not an .npz archive ({exc})") from None
    if unpacked > max_unpacked_bytes:
        raise WireError("body", f"unpacks to {unpacked} bytes, over the limit of {max_unpacked_bytes}")
    for info in archive.infolist():
        _check_member_header(archive, info)
    try:
        loaded = np.load(io.BytesIO(body), allow_pickle=False)
        arrays = {name: loaded[name] for name in loaded.files}
    except (ValueError, OSError, EOFError) as exc:
        raise WireError("body", f"cannot read arrays ({exc})") from None
    required = ("ids", "ts_us", "predicted_class", "confidence", "model", "version")
    for name in required:
        if name not in arrays:
            raise WireError(name, "missing from the batch")
    n = arrays["ids"].shape[0] if arrays["ids"].ndim == 2 else -1
    if arrays["ids"].ndim != 2 or arrays["ids"].shape[1] != 16 or arrays["ids"].dtype != np.uint8:
        raise WireError("ids", "must be an (n, 16) uint8 array of UUID bytes")

    def column(name: str, kind: str, default: object) -> np.ndarray:
        if name not in arrays:
            return np.full(n, default)
        value = arrays[name]
        if value.shape != (n,):
            raise WireError(name, f"has shape {value.shape}, expected ({n},)")
        if value.dtype.kind not in kind:
            raise WireError(name, f"has dtype {value.dtype}, expected kind {kind!r}")
        return value

    def matrix(name: str) -> np.ndarray | None:
        if name not in arrays:
            return None
        value = arrays[name]
        if value.ndim != 2 or value.shape[0] != n:
            raise WireError(name, f"has shape {value.shape}, expected ({n}, d)")
        if value.dtype.kind != "f":
            raise WireError(name, f"has dtype {value.dtype}, expected float")
        return value.astype(np.float32, copy=False)

    strings = {name: column(name, "U", "").astype(np.str_) for name in STRING_COLUMNS}
    if "route" not in arrays:
        strings["route"] = np.full(n, "production")
    return ColumnBatch(
        ids=arrays["ids"],
        ts_us=column("ts_us", "iu", 0).astype(np.int64),
        predicted_class=column("predicted_class", "iu", 0).astype(np.int64),
        confidence=column("confidence", "fiu", 0.0).astype(np.float64),
        latency_ms=column("latency_ms", "fiu", np.nan).astype(np.float64),
        embeddings=matrix("embeddings"),
        probabilities=matrix("probabilities"),
        **strings,  # type: ignore[arg-type]  # only STRING_COLUMNS: never fills extra
    )
