"""The key that signs console sessions, CSRF tokens, labeling links and the Label Studio webhook secret.

``SHIFTWATCH_SECRET_KEY`` when set; otherwise, as Jupyter does with its cookie secret, a
random key generated once and kept in ``DATA_DIR/secret_key`` (mode 0600, created
atomically), so every process on that data folder (``serve``, the CLI, replicas sharing it)
signs and checks with the same key, and restarts keep sessions and links valid.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from shiftwatch.errors import Invalid
from shiftwatch.settings import Settings, secret_key_problem

KEY_FILE_NAME = "secret_key"
# 48 random bytes: 64 url-safe characters, twice the minimum a configured key must have.
GENERATED_KEY_BYTES = 48
FIELD = "SHIFTWATCH_SECRET_KEY"

log = logging.getLogger(__name__)
_lock = threading.Lock()
# data folder -> (the key file's identity when read, the key); a replaced or deleted file is read again.
_cache: dict[Path, tuple[tuple[int, int] | None, str]] = {}


@dataclass(frozen=True, slots=True)
class SecretKey:
    """The key in use and where it came from (``path`` is None when it was configured)."""

    value: str
    path: Path | None
    created: bool

    def notice(self) -> str:
        """The one line said when the key was generated."""
        return (f"no {FIELD} set: generated one and saved it to {self.path} (mode 0600); it signs console "
                f"sessions and links, so replicas must share this file or set {FIELD}")


def key_file(data_dir: Path) -> Path:
    return data_dir / KEY_FILE_NAME


def ensure_secret_key(settings: Settings) -> SecretKey:
    """The configured key, else the one in ``DATA_DIR/secret_key``, generating that file if it does not exist yet."""
    if settings.secret_key:
        return SecretKey(settings.secret_key, None, created=False)
    path = key_file(settings.data_dir)
    try:
        existing = _read(path)
        if existing is not None:
            return SecretKey(existing, path, created=False)
        created = _create(path)
        return SecretKey(_read(path) or "", path, created=created)
    except OSError as exc:  # a read-only data folder, or a file in its place: say what to do, not a traceback
        raise Invalid(FIELD, f"is unset and {path} cannot be read or written ({exc.strerror or exc}); "
                             f"set {FIELD}, or make SHIFTWATCH_DATA_DIR a writable folder") from None


def secret_key(settings: Settings) -> str:
    """The signing key for ``settings``: generated on first use, then read again only when its file changes."""
    if settings.secret_key:
        return settings.secret_key
    where = settings.data_dir.resolve()
    with _lock:
        cached = _cache.get(where)
        if cached is None or cached[0] != _identity(key_file(where)):
            key = ensure_secret_key(settings)
            if key.created:
                log.warning(key.notice())
            cached = _cache[where] = (_identity(key_file(where)), key.value)
        return cached[1]


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        status = path.stat()
    except OSError:  # absent (or unreadable: ensure_secret_key then says why)
        return None
    return status.st_ino, status.st_mtime_ns


def _read(path: Path) -> str | None:
    """The key in ``path``, or None when there is no file; a file others may read, or a weak key, is refused."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(mode):
        raise Invalid(FIELD, f"{path} is not a regular file; remove it, or set {FIELD}")
    if mode & 0o077:
        raise Invalid(FIELD, f"{path} is readable by others (mode {stat.S_IMODE(mode):04o}); chmod 600 it, "
                             f"or set {FIELD}")
    value = path.read_text(encoding="ascii", errors="replace").strip()
    problem = secret_key_problem(value)
    if problem is not None:  # written by hand, or cut short: a weak file key is as forgeable as a weak setting
        raise Invalid(FIELD, f"{path} {problem}; delete it to generate a new key (this ends every console "
                             f"session), or set {FIELD}")
    return value


def _create(path: Path) -> bool:
    """Write a new key to ``path`` unless another process got there first; True when this call wrote it.

    The key goes to a private temporary file first and is then hard-linked into place: the
    link fails when ``path`` exists, so two replicas starting together never overwrite each
    other, and a reader never sees a half-written file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(secrets.token_urlsafe(GENERATED_KEY_BYTES) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        return True
    finally:
        temporary.unlink(missing_ok=True)
