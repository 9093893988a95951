"""Issue 16.8: console sessions live on the server, logging out ends them, and the browser is told to keep them safe.

Through the real console routes and ASGI app with auth on, on both backends.
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select, update

from shiftwatch.app import create_app
from shiftwatch.auth_tables import ApiToken, ConsoleSession
from shiftwatch.db import utcnow
from shiftwatch.sessions import COOKIE_NAME
from shiftwatch.settings import Settings
from shiftwatch.tokens import create_token, revoke_token

SECRET = "b3Q1xWm9Yc2L_vKpR7tZ0sNfHjE4uAdG8iOyT6wXqVe"
ORIGIN = "http://127.0.0.1:8000"  # the default public URL, which the client below calls
SECURITY_HEADERS = {"x-content-type-options": "nosniff", "x-frame-options": "DENY",
                    "content-security-policy": "frame-ancestors 'none'", "referrer-policy": "same-origin"}


@pytest.fixture
def settings(db_url, tmp_path) -> Settings:
    return Settings(database_url=db_url, data_dir=tmp_path / "data", scheduler_enabled=False, auth_required=True,
                    secret_key=SECRET)


def console_client(settings: Settings, db) -> TestClient:
    return TestClient(create_app(settings, db), base_url=ORIGIN, follow_redirects=False)


@pytest.fixture
def client(settings, db):
    with console_client(settings, db) as client:
        yield client


def log_in(client: TestClient, token: str, **headers: str):
    client.cookies.clear()
    return client.post("/console/login", data={"token": token, "next": "/console/models"}, headers=headers)


def page_csrf_token(client: TestClient) -> str:
    """The CSRF token a console page's forms carry (every page has the logout form)."""
    page = client.get("/console/models")
    assert page.status_code == 200
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found is not None, page.text
    return found.group(1)


def test_a_cookie_captured_before_logout_no_longer_works(client, db):
    assert log_in(client, create_token(db, "alice", ["read"])).status_code == 303
    captured = client.cookies.get(COOKIE_NAME)
    assert client.get("/console/models").status_code == 200
    assert client.post("/console/logout", data={"csrf_token": page_csrf_token(client)}).status_code == 303
    client.cookies.clear()
    client.cookies.set(COOKIE_NAME, captured)
    answer = client.get("/console/models")
    assert answer.status_code == 303 and "/console/login" in answer.headers["location"]
    with db.session() as session:
        assert session.scalars(select(ConsoleSession.revoked_at)).one() is not None


def test_a_database_copy_and_the_key_cannot_mint_a_session(client, db):
    assert log_in(client, create_token(db, "alice", ["read", "approve"])).status_code == 303
    cookie = client.cookies.get(COOKIE_NAME)
    with db.session() as session:
        token_hash = session.scalars(select(ApiToken.token_sha256)).one()
        session_hash = session.scalars(select(ConsoleSession.session_sha256)).one()
    signer = URLSafeTimedSerializer(SECRET, salt="session")
    sid = signer.loads(cookie)
    assert isinstance(sid, str) and len(sid) >= 43 and token_hash not in cookie and session_hash not in cookie
    # What an attacker with both could sign: the old cookie shape, and either stored hash as an id.
    for forged in (signer.dumps({"sid": "x", "th": token_hash}), signer.dumps(token_hash), signer.dumps(session_hash)):
        client.cookies.clear()
        client.cookies.set(COOKIE_NAME, forged)
        assert client.get("/console/models").status_code == 303


def test_revoking_the_token_or_expiry_ends_the_session(client, db):
    assert log_in(client, create_token(db, "alice", ["read"])).status_code == 303
    assert client.get("/console/models").status_code == 200
    revoke_token(db, "alice")
    assert client.get("/console/models").status_code == 303
    with db.session() as session:
        assert session.scalars(select(ConsoleSession.revoked_at)).one() is not None

    assert log_in(client, create_token(db, "bob", ["read"])).status_code == 303
    assert client.get("/console/models").status_code == 200
    with db.session() as session:
        session.execute(update(ConsoleSession).where(ConsoleSession.revoked_at.is_(None))
                        .values(expires_at=utcnow() - timedelta(seconds=1)))
    assert client.get("/console/models").status_code == 303


@pytest.mark.parametrize("header", ["Origin", "Referer"])
def test_a_login_posted_from_another_site_is_refused(client, db, header):
    token = create_token(db, "attacker", ["read"])
    refused = log_in(client, token, **{header: "https://evil.example/form"})
    assert refused.status_code == 403 and "cross-site" in refused.text
    assert COOKIE_NAME not in refused.headers.get("set-cookie", "")
    with db.session() as session:
        assert session.scalars(select(ConsoleSession)).all() == []
    assert log_in(client, token, **{header: f"{ORIGIN}/console/login"}).status_code == 303


@pytest.mark.parametrize(
    ("public_url", "trusted", "forwarded", "secure"),
    [("https://sw.example.com", [], "", True), ("http://127.0.0.1:8000", [], "", False),
     ("http://127.0.0.1:8000", ["testclient"], "https", True), ("http://127.0.0.1:8000", [], "https", False)],
)
def test_the_cookie_is_secure_when_served_over_https(settings, db, public_url, trusted, forwarded, secure):
    # TestClient's peer address is "testclient": trusting it stands for trusting the reverse proxy.
    configured = settings.model_copy(update={"public_url": public_url, "trusted_proxies": trusted})
    with console_client(configured, db) as client:
        headers = {"X-Forwarded-Proto": forwarded} if forwarded else {}
        answer = log_in(client, create_token(db, "alice", ["read"]), **headers)
    assert answer.status_code == 303
    attributes = [part.strip().lower() for part in answer.headers["set-cookie"].split(";")]
    assert ("secure" in attributes) is secure and "httponly" in attributes


def test_every_answer_carries_the_security_headers(client, db):
    token = create_token(db, "alice", ["read"])
    answers = [client.get("/console/login"), log_in(client, token), client.get("/console/models"),
               client.get("/v1/models", headers={"authorization": f"Bearer {token}"}), client.get("/v1/models"),
               client.get("/health", headers={"host": "evil.example"}), client.get("/v1/models", headers={"host": "evil.example"})]
    assert [a.status_code for a in answers] == [200, 303, 200, 200, 401, 200, 400]
    for answer in answers:
        assert {name: answer.headers.get(name) for name in SECURITY_HEADERS} == SECURITY_HEADERS


def test_every_console_answer_says_no_store_and_the_api_does_not(client, db):
    """Issue 27.7: console pages were cacheable, so the back button or a shared cache could show them after logout."""
    token = create_token(db, "alice", ["read"])
    client.cookies.clear()
    console = [client.get("/console/models"), client.get("/console/login"), log_in(client, token),
               client.get("/console"), client.get("/console/models"), client.get("/console/alerts"),
               client.get("/console/static/console.css"), client.get("/console/no-such-page")]
    assert [a.status_code for a in console] == [303, 200, 303, 303, 200, 200, 200, 404]
    for answer in console:
        assert answer.headers.get("cache-control") == "no-store", answer.request.url
    api = client.get("/v1/models", headers={"authorization": f"Bearer {token}"})
    assert api.status_code == 200 and "no-store" not in api.headers.get("cache-control", "")


def _flash_for(cookie: str, text: str, secret: str = SECRET) -> str:
    """A flash value as the console signs it for the session behind ``cookie``."""
    sid = URLSafeTimedSerializer(SECRET, salt="session").loads(cookie)
    bound = hashlib.sha256(f"csrf:{sid}".encode()).hexdigest()
    return URLSafeTimedSerializer(secret, salt="flash").dumps([bound, text])


def test_a_flash_shows_only_text_this_server_signed_for_this_session(client, db):
    """Issue 27.7: ``?flash=`` put any text an attacker chose on a console page (a phishing aid)."""
    token = create_token(db, "alice", ["read"])
    log_in(client, token)
    lure = "Your token expired: paste it at evil.example to renew"
    page = client.get("/console/models", params={"flash": lure})
    assert page.status_code == 200 and "evil.example" not in page.text and 'class="flash"' not in page.text
    genuine = client.get("/console/models", params={"flash": _flash_for(client.cookies.get(COOKIE_NAME), "Approved by alice.")})
    assert 'class="flash" role="status">Approved by alice.<' in genuine.text
    forged = client.get("/console/models", params={"flash": _flash_for(client.cookies.get(COOKIE_NAME), lure, "k" * 40)})
    assert "evil.example" not in forged.text  # signed with another key
    other = client.cookies.get(COOKIE_NAME)
    log_in(client, token)  # a new session: a flash signed for the old one is not shown in it
    assert "Approved" not in client.get("/console/models", params={"flash": _flash_for(other, "Approved by alice.")}).text


@pytest.mark.parametrize("headers", [{}, {"origin": "https://evil.example"}])
def test_a_logout_without_the_csrf_token_is_refused_and_the_session_stays(client, db, headers):
    """Issue 27.7: another site could log a person out (a form posting to /console/logout)."""
    log_in(client, create_token(db, "alice", ["read"]))
    assert client.post("/console/logout", headers=headers).status_code == 403
    assert client.post("/console/logout", data={"csrf_token": "forged"}, headers=headers).status_code == 403
    assert client.get("/console/models").status_code == 200  # still logged in
    with db.session() as session:
        assert session.scalars(select(ConsoleSession.revoked_at)).one() is None
    assert client.post("/console/logout", data={"csrf_token": page_csrf_token(client)}).status_code == 303
    with db.session() as session:
        assert session.scalars(select(ConsoleSession.revoked_at)).one() is not None
