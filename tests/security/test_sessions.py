"""Console sessions: log in with a token, a signed cookie, CSRF on every POST, revocation ends the session."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.testclient import TestClient

from shiftwatch.auth import Principal
from shiftwatch.sessions import COOKIE_NAME, CSRF_HEADER, csrf_protect, csrf_token, login, logout, require_console
from shiftwatch.settings import Settings
from shiftwatch.tokens import create_token, revoke_token

SECRET = "eER_YEjj1WnZCvBLjtXPTDREWZHjnbCRsYTzU0YB"


@pytest.fixture
def settings(db_url, tmp_path) -> Settings:
    return Settings(
        database_url=db_url, data_dir=tmp_path / "data", scheduler_enabled=False, auth_required=True, secret_key=SECRET,
        public_url="https://console.test",
    )


def console_router() -> APIRouter:
    """The shape the console uses: a login form, a page, and a form POST that records the person."""
    router = APIRouter()

    @router.post("/login")
    def do_login(request: Request, response: Response, token: str = Form(...)) -> dict:
        principal = login(request.app.state.db, request.app.state.settings, token, response)
        return {"who": principal.name}

    @router.post("/logout")
    def do_logout(request: Request, response: Response) -> dict:
        logout(request, response)
        return {}

    @router.get("/console/approvals")
    def page(request: Request, who: Principal = Depends(require_console("read"))) -> dict:
        return {"who": who.name, "csrf": csrf_token(request)}

    @router.post("/console/approvals/1/approve", dependencies=[Depends(csrf_protect)])
    def approve(note: str = Form(""), who: Principal = Depends(require_console("approve"))) -> dict:
        return {"approved_by": who.name, "note": note}

    return router


@pytest.fixture
def client(app):
    app.include_router(console_router())
    with TestClient(app, base_url="https://console.test") as client:
        yield client


def _login(client: TestClient, token: str) -> str:
    client.cookies.clear()
    response = client.post("/login", data={"token": token})
    assert response.status_code == 200, response.text
    set_cookie = response.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=lax" in set_cookie
    return client.get("/console/approvals").json()["csrf"]


def test_person_approves_with_session_and_csrf_token_and_is_recorded(client, db):
    csrf = _login(client, create_token(db, "alice", ["read", "approve"]))
    response = client.post("/console/approvals/1/approve", data={"csrf_token": csrf, "note": "ok"})
    assert response.json() == {"approved_by": "alice", "note": "ok"}
    assert client.post("/console/approvals/1/approve", headers={CSRF_HEADER: csrf}).status_code == 200


def test_post_without_or_with_a_forged_csrf_token_is_refused(client, db):
    csrf = _login(client, create_token(db, "alice", ["read", "approve"]))
    assert client.post("/console/approvals/1/approve", data={"note": "x"}).status_code == 403
    assert client.post("/console/approvals/1/approve", data={"csrf_token": csrf[:-2] + "xx"}).status_code == 403
    assert client.post("/console/approvals/1/approve", data={"csrf_token": "garbage"}).status_code == 403


def test_csrf_token_of_another_session_is_refused(client, db):
    token = create_token(db, "alice", ["read", "approve"])
    first = _login(client, token)
    _login(client, token)  # a new session: a new session id
    assert client.post("/console/approvals/1/approve", data={"csrf_token": first}).status_code == 403


def test_cross_site_origin_is_refused_even_with_a_token(client, db):
    csrf = _login(client, create_token(db, "alice", ["read", "approve"]))
    evil = {"Origin": "https://evil.example"}
    assert client.post("/console/approvals/1/approve", data={"csrf_token": csrf}, headers=evil).status_code == 403
    same = {"Origin": "https://console.test"}
    assert client.post("/console/approvals/1/approve", data={"csrf_token": csrf}, headers=same).status_code == 200


def test_no_session_is_401_and_wrong_scope_is_403(client, db):
    client.cookies.clear()
    assert client.get("/console/approvals").status_code == 401
    csrf = _login(client, create_token(db, "viewer", ["read"]))
    assert client.post("/console/approvals/1/approve", data={"csrf_token": csrf}).status_code == 403


def test_bad_login_and_tampered_cookie_are_refused(client, db):
    client.cookies.clear()
    assert client.post("/login", data={"token": "sw_guess"}).status_code == 401
    _login(client, create_token(db, "alice", ["read"]))
    value = client.cookies.get(COOKIE_NAME)
    client.cookies.clear()
    client.cookies.set(COOKIE_NAME, value[:-3] + ("AAA" if not value.endswith("AAA") else "BBB"))
    assert client.get("/console/approvals").status_code == 401


def test_revoking_the_token_ends_the_session(client, db):
    _login(client, create_token(db, "alice", ["read"]))
    assert client.get("/console/approvals").status_code == 200
    revoke_token(db, "alice")
    assert client.get("/console/approvals").status_code == 401


def test_cookie_signed_with_another_key_is_refused(client, db, settings, app):
    _login(client, create_token(db, "alice", ["read"]))
    assert client.get("/console/approvals").status_code == 200
    app.state.settings = settings.model_copy(update={"secret_key": "ZjyDUT2sRBJsP8GhgeNTKZbhDhcwubN3ciycQiBu"})
    assert client.get("/console/approvals").status_code == 401
