"""Who is calling, and may they? Scoped API tokens, checked by one dependency on every route."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Depends, Request

from shiftwatch.errors import Forbidden, Unauthorized
from shiftwatch.scopes import SCOPES


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: a person or a service, with the scopes its token grants."""

    name: str
    scopes: frozenset[str]


LOCAL_ADMIN = Principal(name="local-admin", scopes=frozenset(SCOPES))


def current_principal(request: Request) -> Principal:
    """Resolve the bearer token; with ``auth_required`` off (embedded demo), everyone is the local admin."""
    settings = request.app.state.settings
    if not settings.auth_required:
        return LOCAL_ADMIN
    resolver = getattr(request.app.state, "resolve_token", None)
    header = request.headers.get("authorization", "")
    if resolver is None or not header.lower().startswith("bearer "):
        raise Unauthorized("missing bearer token")
    principal = resolver(header[7:].strip())
    if principal is None:
        raise Unauthorized("unknown or revoked token")
    return principal


def scope_guard(scope: str, principal_of, what: str = "this"):  # type: ignore[no-untyped-def]
    """Dependency: the caller found by ``principal_of`` (token or console session) must hold ``scope``."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    def dependency(principal: Principal = Depends(principal_of)) -> Principal:
        if scope not in principal.scopes:
            raise Forbidden(f"{what} needs the {scope!r} scope")
        return principal

    dependency.required_scope = scope  # type: ignore[attr-defined]  # read by the route-table test
    return dependency


def require(scope: str):  # type: ignore[no-untyped-def]
    """Dependency factory: the route needs a token with ``scope``."""
    return scope_guard(scope, current_principal)
