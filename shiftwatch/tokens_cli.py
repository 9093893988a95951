"""``shiftwatch token create|list|revoke``: issue and withdraw scoped API tokens."""

from __future__ import annotations

import typer

from shiftwatch.cli_output import JSON_OPTION, emit_json, emit_table, when
from shiftwatch.scopes import SCOPES

token_app = typer.Typer(no_args_is_help=True, help="Scoped API tokens (stored hashed; shown once).")


def _db():
    """The configured database, migrated first: the first token is often made before the first `serve`."""
    from shiftwatch.cli import settings_or_exit
    from shiftwatch.db import Database
    from shiftwatch.migrate import upgrade

    url = settings_or_exit().database_url
    upgrade(url)
    return Database.connect(url)


@token_app.command("create")
def create(
    name: str = typer.Option(..., "--name", help="who or what holds it, e.g. gateway-eu1"),
    scope: list[str] = typer.Option(..., "--scope", help=f"repeat for several: {', '.join(SCOPES)}"),  # noqa: B008 - once, at import
) -> None:
    """Issue a token and print it once: it cannot be shown again."""
    from shiftwatch.tokens import create_token

    db = _db()
    try:
        token = create_token(db, name, scope)
    finally:
        db.dispose()
    typer.echo(token)
    typer.echo(f"token {name!r} with scopes {', '.join(dict.fromkeys(scope))}: store it now, it is not kept", err=True)


@token_app.command("list")
def list_(as_json: bool = JSON_OPTION) -> None:
    """Show tokens (names, scopes, dates); never the secrets."""
    from shiftwatch.tokens import list_tokens

    db = _db()
    try:
        tokens = list_tokens(db)
    finally:
        db.dispose()
    if as_json:
        emit_json([{"name": t.name, "scopes": list(t.scopes), "created_at": t.created_at,
                    "last_used_at": t.last_used_at, "revoked_at": t.revoked_at} for t in tokens])  # fmt: skip
        return
    emit_table(
        ("name", "scopes", "created", "last used", "revoked"),
        [(t.name, ",".join(t.scopes), when(t.created_at), when(t.last_used_at), when(t.revoked_at)) for t in tokens],
        title="tokens",
    )


@token_app.command("revoke")
def revoke(name: str = typer.Argument(..., help="the token's name")) -> None:
    """Revoke a token; every replica refuses it within a few seconds."""
    from shiftwatch.tokens import revoke_token

    db = _db()
    try:
        revoke_token(db, name)
    finally:
        db.dispose()
    typer.echo(f"token {name!r} revoked")


def register(app: typer.Typer) -> None:
    app.add_typer(token_app, name="token")
