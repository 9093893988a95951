"""What ``shiftwatch serve`` checks and says before it listens: no open address without auth, and how to get a token.

Like Redis's protected mode: with ``auth_required`` off every caller is the local admin, so
``serve`` binds only to loopback then, and refuses any other address with one line (exit 2)
before it touches the database.
"""

from __future__ import annotations

import ipaddress

from shiftwatch.errors import Invalid
from shiftwatch.secret_key import ensure_secret_key
from shiftwatch.settings import Settings

AUTH_FIELD = "SHIFTWATCH_AUTH_REQUIRED"
TOKEN_HINT = "shiftwatch token create --name NAME --scope read --scope operate"


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 (IPv4-mapped too) and ``localhost``; any other name or address is not."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False  # a host name: it may resolve anywhere, so it is treated as reachable from outside
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def check_exposure(auth_required: bool, host: str) -> None:
    """Refuse to serve without auth on anything but loopback (raises Invalid: one line, exit code 2)."""
    if not auth_required and not is_loopback(host):
        raise Invalid(AUTH_FIELD, f"is false, so anyone who reaches {host} would act as admin; refusing to "
                                  f"serve there: set {AUTH_FIELD}=true (the default) and create a token, "
                                  "or serve on 127.0.0.1")


def has_active_token(database_url: str) -> bool:
    """Whether anyone could call the API yet: at least one token that is not revoked."""
    from shiftwatch.db import Database
    from shiftwatch.tokens import list_tokens

    db = Database.connect(database_url)
    try:
        return any(token.revoked_at is None for token in list_tokens(db))
    finally:
        db.dispose()


def prepare_to_serve(settings: Settings, host: str) -> list[str]:
    """``serve``'s start: check the address, migrate, make sure the secret key exists; returns the lines to print."""
    from shiftwatch.migrate import upgrade

    check_exposure(settings.auth_required, host)
    key = ensure_secret_key(settings)  # now, not on the first request: a bad key file stops the start
    upgrade(settings.database_url)
    notices = [f"note: {key.notice()}"] if key.created else []
    if not settings.auth_required:
        notices.append(f"warning: {AUTH_FIELD}=false: every request to {host} acts as the local admin, no token "
                       "needed; fine on loopback for a demo, never on a shared machine")
    elif not has_active_token(settings.database_url):
        notices.append(f"note: no API token exists yet, so the API and console answer 401; create one with "
                       f"`{TOKEN_HINT}` (scopes: ingest, read, label, operate, approve)")
    return notices
