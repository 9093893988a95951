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

# The only routes that answer without a token (GET and HEAD), each with why; docs/security.md
# lists the same. tests/security/test_routes.py fails on any other route that needs no scope.
PUBLIC_ROUTES: dict[str, str] = {
    "/health": "liveness for load balancers; says only ok and the version",
    "/openapi.json": "the API description; it holds no data",
    "/docs": "the API description, as a page",
    "/docs/oauth2-redirect": "part of the /docs page",
    "/redoc": "the API description, as a page",
}
# Prefixes of console routes a person needs before logging in; they carry no data.
PUBLIC_PREFIXES: dict[str, str] = {
    "/console/static": "the console's CSS",
    "/console/login": "the login form and its submission (the token is the credential)",
    "/console/logout": "clears the session cookie",
}
# No token, a credential of their own: an HMAC and expiry in the query (Label Studio's annotators'
# browsers load images by signed link and cannot send a bearer token).
SIGNED_LINK_ROUTES: dict[str, str] = {
    "/v1/labeling/inputs/{name}": "signed, expiring link to one content-addressed input image",
}


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


def scope_guard(scope: str, principal_of, what: str = "this"):
    """Dependency: the caller found by ``principal_of`` (token or console session) must hold ``scope``."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    def dependency(principal: Principal = Depends(principal_of)) -> Principal:
        if scope not in principal.scopes:
            raise Forbidden(f"{what} needs the {scope!r} scope")
        return principal

    dependency.required_scope = scope  # type: ignore[attr-defined]  # read by the route-table test
    return dependency


def require(scope: str):
    """Dependency factory: the route needs a token with ``scope``."""
    return scope_guard(scope, current_principal)
