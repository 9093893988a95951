"""The project's few exceptions; one HTTP handler and one CLI wrapper map them for people."""

from __future__ import annotations

from typing import Any


class ShiftwatchError(Exception):
    """Base class: a message meant for the person who caused it."""

    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(ShiftwatchError):
    status_code = 404


class Invalid(ShiftwatchError):
    """Bad input: names the field that is wrong and why; ``details`` lists each bad item when there are many."""

    status_code = 422

    def __init__(self, field: str, why: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(f"{field}: {why}")
        self.field = field
        self.why = why
        self.details = details


class Conflict(ShiftwatchError):
    status_code = 409


class TooLarge(ShiftwatchError):
    status_code = 413


class Unavailable(ShiftwatchError):
    """The server is overloaded or a dependency is down; the client should retry later."""

    status_code = 503

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Unauthorized(ShiftwatchError):
    status_code = 401


class Forbidden(ShiftwatchError):
    status_code = 403
