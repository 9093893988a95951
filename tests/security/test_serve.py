"""Safe by default: ``serve`` refuses an open address without auth, and the generated secret key outlives restarts.

Through the real CLI in a child process (``shiftwatch serve``), as an operator would start it.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from shiftwatch.errors import Invalid
from shiftwatch.exposure import is_loopback
from shiftwatch.secret_key import ensure_secret_key, key_file, secret_key
from shiftwatch.sessions import COOKIE_NAME
from shiftwatch.settings import Settings
from shiftwatch.tokens import create_token
from tests.support.pg_processes import ServeProcess


def serve_cli(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SHIFTWATCH_")} | env
    return subprocess.run(
        [sys.executable, "-c", "from shiftwatch.cli import main; main()", "serve", *args],
        capture_output=True, text=True, env=full_env, timeout=timeout,
    )  # fmt: skip


def test_fresh_settings_require_tokens():
    fresh = Settings()
    assert fresh.auth_required is True
    assert fresh.secret_key == ""  # not a well-known default: one is generated under data_dir


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LOCALHOST", "::ffff:127.0.0.1"])
def test_loopback_addresses_are_recognised(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "10.0.0.5", "192.168.1.2", "example.com", "localhost.evil.com"])
def test_every_other_address_is_not_loopback(host):
    assert not is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3"])
def test_serve_without_auth_on_an_open_address_exits_2_with_one_line_and_writes_nothing(tmp_path, host):
    database = tmp_path / "serve.db"
    result = serve_cli("--host", host, env={
        "SHIFTWATCH_AUTH_REQUIRED": "false",
        "SHIFTWATCH_DATABASE_URL": f"sqlite:///{database}",
        "SHIFTWATCH_DATA_DIR": str(tmp_path / "data"),
    })  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: SHIFTWATCH_AUTH_REQUIRED: is false"), result.stderr
    assert host in lines[0] and "127.0.0.1" in lines[0]
    assert not database.exists() and not (tmp_path / "data").exists()  # refused before touching anything


def test_serve_without_auth_on_loopback_starts_and_warns(tmp_path):
    server = ServeProcess(f"sqlite:///{tmp_path / 'serve.db'}", tmp_path / "data").start()  # auth off, 127.0.0.1
    try:
        assert httpx.get(f"{server.url}/v1/models", timeout=10).status_code == 200  # the local admin needs no token
    finally:
        server.stop()
    log = server.log.read_text()
    warnings = [line for line in log.splitlines() if line.startswith("warning: SHIFTWATCH_AUTH_REQUIRED=false")]
    assert len(warnings) == 1, log
    assert "token create" not in log


def test_generated_key_is_private_and_survives_a_restart_with_the_sessions_it_signed(tmp_path):
    database_url = f"sqlite:///{tmp_path / 'serve.db'}"
    data_dir = tmp_path / "data"
    first = ServeProcess(database_url, data_dir, auth_required="true").start()
    try:
        first_log = first.log.read_text()
        path = key_file(data_dir)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        key = path.read_text().strip()
        assert len(key) >= 64
        assert f"generated one and saved it to {path}" in first_log, first_log
        assert "shiftwatch token create --name NAME --scope" in first_log  # no token yet: how to make one
        assert httpx.get(f"{first.url}/v1/models", timeout=10).status_code == 401

        from shiftwatch.db import Database

        db = Database.connect(database_url)
        token = create_token(db, "alice", ["read"])
        db.dispose()
        login = httpx.post(f"{first.url}/console/login", data={"token": token, "next": "/console/models"}, timeout=10)
        assert login.status_code == 303
        cookies = dict(login.cookies)
        assert cookies
    finally:
        first.stop()

    second = ServeProcess(database_url, data_dir, port=first.port, auth_required="true")
    second.log = data_dir / "serve-second.log"
    second.start()
    try:
        page = httpx.get(f"{second.url}/console/models", cookies=cookies, timeout=10)
        assert page.status_code == 200  # the first start's session cookie still verifies: same key
        assert httpx.get(f"{second.url}/console/models", timeout=10).status_code in (401, 303)
    finally:
        second.stop()
    second_log = second.log.read_text()
    assert path.read_text().strip() == key and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "generated one" not in second_log and "token create" not in second_log, second_log


def test_racing_processes_agree_on_one_generated_key(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    barrier = threading.Barrier(8)
    results = []

    def start() -> None:
        barrier.wait()
        results.append(ensure_secret_key(settings))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({r.value for r in results}) == 1
    assert sum(r.created for r in results) == 1
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["secret_key"]  # no temporary file left behind


def test_a_configured_key_is_used_and_no_file_is_written(tmp_path):
    configured = "D1csXWykWRxjAuekUaX2OvELFZ0qPZW9LDDHyCT1"
    settings = Settings(data_dir=tmp_path / "data", secret_key=configured)
    assert secret_key(settings) == configured
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("content", "mode", "why"),
    [("k" * 64, 0o644, "readable by others"), ("short", 0o600, "fewer than 32"), ("", 0o600, "fewer than 32")],
)
def test_a_key_file_others_can_read_or_too_short_is_refused_by_name(tmp_path, content, mode, why):
    path = key_file(tmp_path)
    path.write_text(content)
    path.chmod(mode)
    with pytest.raises(Invalid) as refused:
        ensure_secret_key(Settings(data_dir=tmp_path))
    assert refused.value.field == "SHIFTWATCH_SECRET_KEY" and why in refused.value.why and str(path) in refused.value.why
    assert path.read_text() == content  # left as found: the person decides


def test_serve_with_a_bad_key_file_exits_2_with_one_line(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    key_file(data_dir).write_text("k" * 64)
    key_file(data_dir).chmod(0o644)
    result = serve_cli(env={"SHIFTWATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}", "SHIFTWATCH_DATA_DIR": str(data_dir)})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: SHIFTWATCH_SECRET_KEY: {key_file(data_dir)} is readable by others (mode 0644); chmod 600 it, "
        "or set SHIFTWATCH_SECRET_KEY"
    ]
    assert not Path(tmp_path / "serve.db").exists()


def test_a_key_file_replaced_while_running_is_read_again(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    first = secret_key(settings)
    assert first == key_file(settings.data_dir).read_text().strip()
    key_file(settings.data_dir).unlink()  # what the demo does to its data folder before each run
    second = secret_key(settings)
    assert second != first and second == key_file(settings.data_dir).read_text().strip()


def test_a_data_dir_that_cannot_hold_the_key_is_refused_by_name(tmp_path):
    not_a_folder = tmp_path / "data"
    not_a_folder.write_text("a file where the data folder should be")
    with pytest.raises(Invalid) as refused:
        secret_key(Settings(data_dir=not_a_folder))  # what create_app and every signer call
    assert refused.value.field == "SHIFTWATCH_SECRET_KEY" and "cannot be read or written" in refused.value.why
    assert not_a_folder.read_text() == "a file where the data folder should be"


def _login_cookie_secure(server: ServeProcess, database_url: str) -> bool:
    """Log in over plain http from loopback, claiming a TLS-terminating proxy; whether the cookie came back Secure."""
    from shiftwatch.db import Database

    db = Database.connect(database_url)
    token = create_token(db, "alice", ["read"])
    db.dispose()
    login = httpx.post(f"{server.url}/console/login", data={"token": token, "next": "/console/models"},
                       headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}, timeout=10)
    assert login.status_code == 303, login.text
    cookie = login.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=")
    return "secure" in [part.strip().lower() for part in cookie.split(";")]


@pytest.mark.parametrize(("trusted", "secure"), [("", False), ("10.9.8.7", False), ("127.0.0.1", True)])
def test_forwarded_headers_are_believed_only_from_the_trusted_proxies(tmp_path, trusted, secure):
    """Issue 27.7: uvicorn believed X-Forwarded-* from any loopback client, whatever SHIFTWATCH_TRUSTED_PROXIES
    said, so a forged ``X-Forwarded-Proto: https`` marked the cookie Secure. Now only the listed proxies count."""
    database_url = f"sqlite:///{tmp_path / 'serve.db'}"
    server = ServeProcess(database_url, tmp_path / "data", auth_required="true", trusted_proxies=trusted).start()
    try:
        assert _login_cookie_secure(server, database_url) is secure
    finally:
        server.stop()
