"""Every route is guarded: walk the app's route table with auth on; no token is 401, a wrong scope is 403.

The scope each route needs is read from its dependency tree (``require(scope)`` and
``require_console(scope)`` mark their dependency with ``required_scope``), so a route
added tomorrow is checked without touching this file, and one that forgets ``require``
fails here unless it is added to PUBLIC on purpose.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import fastapi.routing
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.responses import Response

from shiftwatch.auth import PUBLIC_PREFIXES as PUBLIC_PREFIXES_WHY
from shiftwatch.auth import PUBLIC_ROUTES, SCOPES, SIGNED_LINK_ROUTES
from shiftwatch.sessions import COOKIE_NAME, console_principal, login
from shiftwatch.settings import Settings
from shiftwatch.tokens import create_token
from tests.support.servers import TEST_CLIENT_HOST

# Public on purpose, each with its reason, in one place: shiftwatch.auth (and docs/security.md).
PUBLIC = {(method, path) for path in PUBLIC_ROUTES for method in ("GET", "HEAD")}
# No token, but a credential of their own; checked below to refuse unsigned calls.
SIGNED_LINK = {("GET", path) for path in SIGNED_LINK_ROUTES}
PUBLIC_PREFIXES = tuple(PUBLIC_PREFIXES_WHY)
SECRET = "NbU2_DWcUolDAJjbT0sZ9f_21VPfzbDnwYvRcaNJ"


@pytest.fixture
def settings(db_url, tmp_path) -> Settings:
    return Settings(
        database_url=db_url, data_dir=tmp_path / "data", scheduler_enabled=False, auth_required=True, secret_key=SECRET,
        allowed_hosts=[TEST_CLIENT_HOST],
    )


def required_scopes(dependant) -> set[str]:
    found = set()
    for dep in dependant.dependencies:
        scope = getattr(dep.call, "required_scope", None)
        if scope is not None:
            found.add(scope)
        found |= required_scopes(dep)
    return found


def uses_console_session(dependant) -> bool:
    return any(dep.call is console_principal or uses_console_session(dep) for dep in dependant.dependencies)


def concrete(path: str) -> str:
    """A path with every ``{param}`` filled; auth runs before parameters are validated."""
    return re.sub(r"\{[^}]+\}", "1", path)


def all_routes(app) -> list:
    """Every route as mounted, with included routers flattened (their prefixes and dependencies applied)."""
    if hasattr(fastapi.routing, "iter_route_contexts"):  # FastAPI >= 0.16x keeps included routers nested
        return list(fastapi.routing.iter_route_contexts(app.routes))
    return list(app.routes)


def is_api_route(route) -> bool:
    return isinstance(getattr(route, "original_route", route), APIRoute)


def api_routes(app) -> Iterator[tuple[str, APIRoute]]:
    for route in all_routes(app):
        if is_api_route(route):
            for method in sorted(route.methods):
                yield method, route


def is_public(method: str, path: str) -> bool:
    return (method, path) in PUBLIC or (method, path) in SIGNED_LINK or path.startswith(PUBLIC_PREFIXES)


def test_every_route_in_the_openapi_schema_is_in_the_route_walk(app):
    walked = {(method, route.path) for method, route in api_routes(app)}
    for path, operations in app.openapi()["paths"].items():
        for method in operations:
            assert (method.upper(), path) in walked


def test_no_route_is_unguarded_unless_public_on_purpose(app):
    unguarded = [
        f"{method} {route.path}"
        for method, route in api_routes(app)
        if not required_scopes(route.dependant) and not is_public(method, route.path)
    ]
    others = [
        route.path
        for route in all_routes(app)
        if not is_api_route(route)
        and not all(is_public(m, route.path) for m in (getattr(route, "methods", None) or {"GET"}))
    ]
    assert unguarded == [], "routes without require(scope): add the dependency, or list them in PUBLIC with a reason"
    assert others == [], "plain Starlette routes or mounts bypass require(); list them in PUBLIC if that is intended"


def _call(client: TestClient, method: str, path: str, headers: dict | None = None, cookies: dict | None = None):
    client.cookies.clear()
    for key, value in (cookies or {}).items():
        client.cookies.set(key, value)
    body = {} if method in ("POST", "PUT", "PATCH") else None
    return client.request(method, concrete(path), json=body, headers=headers or {}, follow_redirects=False)


def _session_cookie(db, settings: Settings, token: str) -> dict:
    response = Response()
    login(db, settings, token, response)
    header = response.headers["set-cookie"]
    return {COOKIE_NAME: header.split(";", 1)[0].split("=", 1)[1]}


def test_every_guarded_route_refuses_no_token_and_wrong_scope(app, db, settings):
    all_scopes = create_token(db, "everything", SCOPES)
    checked = 0
    with TestClient(app) as client:
        for method, route in api_routes(app):
            scopes = required_scopes(route.dependant)
            if not scopes:
                continue
            lacking = [s for s in SCOPES if s not in scopes]
            wrong = create_token(db, f"lacks-{method}-{route.path}"[:200], lacking) if lacking else None
            where = f"{method} {route.path} (needs {sorted(scopes)})"
            if uses_console_session(route.dependant):
                anonymous = _call(client, method, route.path)
                assert anonymous.status_code in (401, 303), where
                if wrong:
                    assert _call(client, method, route.path, cookies=_session_cookie(db, settings, wrong)).status_code == 403, where
            else:
                assert _call(client, method, route.path).status_code == 401, where
                bogus = {"Authorization": "Bearer sw_not-a-real-token"}
                assert _call(client, method, route.path, headers=bogus).status_code == 401, where
                if wrong:
                    assert _call(client, method, route.path, headers={"Authorization": f"Bearer {wrong}"}).status_code == 403, where
                allowed = _call(client, method, route.path, headers={"Authorization": f"Bearer {all_scopes}"})
                assert allowed.status_code not in (401, 403), where
            checked += 1
    assert checked >= 8  # the collector alone has this many; fewer means the walk found nothing


def test_signed_link_routes_refuse_unsigned_or_forged_calls(app, settings):
    present = {(m, r.path) for m, r in api_routes(app)} & SIGNED_LINK
    with TestClient(app) as client:
        for method, path in present:
            name = "0" * 64 + ".png"
            assert client.request(method, path.replace("{name}", name)).status_code in (401, 403, 422)
            forged = {"expires": "9999999999", "signature": "0" * 64}
            assert client.request(method, path.replace("{name}", name), params=forged).status_code in (401, 403)


def test_public_routes_answer_without_a_token(api):
    assert api.get("/health").status_code == 200
    assert api.get("/openapi.json").status_code == 200


def test_metrics_need_the_read_scope(api, db):
    assert api.get("/metrics").status_code == 401
    token = create_token(db, "prometheus", ["read"])
    assert api.get("/metrics", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_the_walk_flags_a_route_that_forgot_require(app):
    router = fastapi.APIRouter(prefix="/v1")

    @router.get("/forgotten")
    def forgotten() -> dict:
        return {}

    app.include_router(router)
    flagged = [f"{m} {r.path}" for m, r in api_routes(app) if not required_scopes(r.dependant) and not is_public(m, r.path)]
    assert flagged == ["GET /v1/forgotten"]


def test_default_settings_answer_401_everywhere_but_the_public_routes(db, db_url, tmp_path, monkeypatch):
    """A fresh install (only the database and data folder set) is closed: no token, no data."""
    from shiftwatch.app import create_app

    for name in [n for n in os.environ if n.startswith("SHIFTWATCH_")]:
        monkeypatch.delenv(name)
    app = create_app(Settings(database_url=db_url, data_dir=tmp_path / "data"), db)
    schema_paths = {(m.upper(), p) for p, operations in app.openapi()["paths"].items() for m in operations}
    walked = {(m, r.path) for r in all_routes(app) for m in (getattr(r, "methods", None) or {"GET"})}
    assert schema_paths <= walked and len(schema_paths) >= 30  # the issue counted 36 routes; fewer: the walk is broken
    refused = 0
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:  # the default public URL
        for method, path in sorted(walked):
            answer = _call(client, method, path)
            where = f"{method} {path}: {answer.status_code}"
            if path in PUBLIC_ROUTES or path.startswith(PUBLIC_PREFIXES):
                assert answer.status_code < 500, where
            elif (method, path) in SIGNED_LINK:
                assert answer.status_code in (401, 403, 422), where  # no signature: no file
            elif path.startswith("/console") and answer.status_code == 303:
                assert answer.headers["location"].split("?")[0].endswith("/console/login"), where
                refused += 1
            else:
                assert answer.status_code == 401, where
                refused += 1
        assert client.get("/health").status_code == 200
        assert client.get("/metrics").status_code == 401  # metrics need a read token, like every other read
    assert refused >= len(schema_paths) - len(PUBLIC_ROUTES) - len(SIGNED_LINK)
