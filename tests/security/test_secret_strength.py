"""Issue 16.10: a secret key must be random, not only long; a weak one stops ``serve`` with one line, exit 2."""

from __future__ import annotations

import random
import string

import pytest
from pydantic import ValidationError
from sqlalchemy import create_engine, inspect

from shiftwatch.errors import Invalid
from shiftwatch.secret_key import ensure_secret_key, key_file
from shiftwatch.settings import MIN_SECRET_KEY_BITS, Settings, estimated_key_bits, secret_key_problem
from tests.security.test_serve import serve_cli

URL_SAFE = string.ascii_letters + string.digits + "-_"
WEAK_KEYS = {
    "one character": "k" * 32,
    "one character, long": "x" * 200,
    "two characters": "ab" * 20,
    "a word repeated": "Passw0rd" * 4,
    "digits only, short": "1234567890" * 3 + "12",
}


@pytest.mark.parametrize("key", WEAK_KEYS.values(), ids=WEAK_KEYS.keys())
def test_a_long_but_patterned_key_is_refused_when_auth_is_on(key):
    with pytest.raises(ValidationError, match="looks patterned, not random"):
        Settings(auth_required=True, secret_key=key)


@pytest.mark.parametrize(("length", "alphabet"), [(43, URL_SAFE), (64, URL_SAFE), (64, string.hexdigits[:16])])
def test_random_keys_pass_with_headroom(length, alphabet):
    # 43 url-safe characters = secrets.token_urlsafe(32); 64 hex = `openssl rand -hex 32`.
    rng = random.Random(1610)
    keys = ["".join(rng.choices(alphabet, k=length)) for _ in range(2000)]
    assert all(secret_key_problem(key) is None for key in keys)
    assert min(estimated_key_bits(key) for key in keys) > MIN_SECRET_KEY_BITS + 20


def test_a_weak_key_file_is_refused_by_name_and_left_as_found(tmp_path):
    path = key_file(tmp_path)
    path.write_text("k" * 64)
    path.chmod(0o600)
    with pytest.raises(Invalid) as refused:
        ensure_secret_key(Settings(data_dir=tmp_path))
    assert refused.value.field == "SHIFTWATCH_SECRET_KEY" and "looks patterned" in refused.value.why
    assert path.read_text() == "k" * 64


def test_serve_with_a_weak_key_exits_2_with_one_line_and_migrates_nothing(db_url, backend, tmp_path):
    # A fresh database per backend (the migrated test one would hide a migration): nothing may be created in it.
    if backend == "postgres":
        from tests.support.databases import create_pg_database, drop_pg_database

        fresh = create_pg_database("sw_weakkey")
    else:
        fresh = f"sqlite:///{tmp_path / 'weak.db'}"
    try:
        result = serve_cli(env={"SHIFTWATCH_DATABASE_URL": fresh, "SHIFTWATCH_DATA_DIR": str(tmp_path / "data"),
                                "SHIFTWATCH_SECRET_KEY": "k" * 32})
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("error: configuration: SHIFTWATCH_SECRET_KEY:") and "looks patterned" in lines[0]
        engine = create_engine(fresh)
        try:
            assert inspect(engine).get_table_names() == []
        finally:
            engine.dispose()
    finally:
        if backend == "postgres":
            drop_pg_database(fresh)
