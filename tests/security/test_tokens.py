"""Scoped API tokens: issued once, stored hashed, resolved to scopes, revoked for good."""

from __future__ import annotations

import hashlib
import json

import pytest
from sqlalchemy import select, text
from typer.testing import CliRunner

from shiftwatch.auth_tables import ApiToken
from shiftwatch.errors import Conflict, Invalid, NotFound
from shiftwatch.tokens import TOKEN_PREFIX, TokenResolver, create_token, list_tokens, resolve_token, revoke_token


def test_token_is_stored_only_as_its_hash(db):
    token = create_token(db, "gateway", ["ingest"])
    assert token.startswith(TOKEN_PREFIX) and len(token) >= 40
    with db.session() as session:
        row = session.scalar(select(ApiToken))
        dumped = " ".join(str(v) for v in session.execute(text("SELECT * FROM api_tokens")).one())
    assert row.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
    assert token not in dumped and token[len(TOKEN_PREFIX):] not in dumped


def test_token_resolves_to_its_scopes_and_records_use(db):
    token = create_token(db, "reader", ["read", "operate", "read"])
    principal = resolve_token(db, token)
    assert principal is not None and principal.name == "reader"
    assert principal.scopes == frozenset({"read", "operate"})
    assert list_tokens(db)[0].last_used_at is not None


@pytest.mark.parametrize("presented", ["", "sw_", "sw_" + "A" * 43, "Bearer x", "x" * 5000])
def test_unknown_tokens_resolve_to_nobody(db, presented):
    create_token(db, "someone", ["read"])
    assert resolve_token(db, presented) is None


def test_revoked_token_resolves_to_nobody(db):
    token = create_token(db, "old", ["approve"])
    revoke_token(db, "old")
    assert resolve_token(db, token) is None
    assert list_tokens(db)[0].revoked_at is not None


def test_bad_token_requests_are_refused_before_writing(db):
    with pytest.raises(Invalid) as bad_scope:
        create_token(db, "x", ["admin"])
    assert bad_scope.value.field == "scope"
    with pytest.raises(Invalid):
        create_token(db, "x", [])
    create_token(db, "x", ["read"])
    with pytest.raises(Conflict):
        create_token(db, "x", ["read"])
    with pytest.raises(NotFound):
        revoke_token(db, "nobody")
    assert [t.name for t in list_tokens(db)] == ["x"]


def test_resolver_cache_expires_so_revocation_reaches_the_process(db):
    now = [0.0]
    resolver = TokenResolver(db, ttl_s=5.0, clock=lambda: now[0])
    token = create_token(db, "cached", ["read"])
    assert resolver(token) is not None
    revoke_token(db, "cached")
    assert resolver(token) is not None  # within the cache window
    now[0] = 5.1
    assert resolver(token) is None


def test_cli_creates_lists_and_revokes(db, db_url, monkeypatch):
    from shiftwatch import cli

    monkeypatch.setenv("SHIFTWATCH_DATABASE_URL", db_url)
    runner = CliRunner()
    created = runner.invoke(cli.app, ["token", "create", "--name", "ci", "--scope", "ingest", "--scope", "read"])
    assert created.exit_code == 0, created.output
    token = created.stdout.strip().splitlines()[0]
    assert resolve_token(db, token).scopes == frozenset({"ingest", "read"})
    listed = runner.invoke(cli.app, ["token", "list"])
    assert "ci" in listed.stdout and token not in listed.stdout
    assert runner.invoke(cli.app, ["token", "revoke", "ci"]).exit_code == 0
    assert resolve_token(db, token) is None
    as_json = runner.invoke(cli.app, ["token", "list", "--json"])
    (row,) = json.loads(as_json.stdout)
    assert (row["name"], row["scopes"], row["revoked_at"] is not None) == ("ci", ["ingest", "read"], True)
    assert token not in as_json.stdout


@pytest.mark.parametrize("backend", ["sqlite"])  # a subprocess start costs seconds; the backend does not matter here
def test_cli_bad_scope_is_one_line_and_exit_code_2(backend, db_url, tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "SHIFTWATCH_DATABASE_URL": db_url}
    result = subprocess.run(
        [sys.executable, "-c", "from shiftwatch.cli import main; main()", "token", "create", "--name", "n", "--scope", "root"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "error: scope: 'root' is not one of ingest, read, label, operate, approve"


def test_auth_on_refuses_a_short_secret_key():
    from pydantic import ValidationError

    from shiftwatch.settings import Settings

    with pytest.raises(ValidationError, match="secret_key"):
        Settings(auth_required=True, secret_key="change-me-in-production")
    assert Settings(auth_required=True, secret_key="SBjKiilOlm7_AG_Us5pKzEUhWI5doHkL").auth_required  # 32 random characters
    assert Settings().secret_key == ""  # unset: shiftwatch.secret_key generates one under data_dir
