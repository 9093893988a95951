"""The demo runs with auth on, as production does: it issues the tokens its clients and its reader need.

Each is a real scoped token made by ``shiftwatch token create``, as a user makes theirs; the
person's one is printed so they can log in to the console.
"""

from __future__ import annotations

from dataclasses import dataclass

from shiftwatch.demo.shell import Shell
from shiftwatch.settings import Settings

OPERATOR = "demo-operator"
OPERATOR_SCOPES = ("read", "operate", "approve")


@dataclass(frozen=True, slots=True)
class DemoTokens:
    """The demo's tokens; ``label_studio`` only when Label Studio is configured without a callback token."""

    gateway: str  # ingest: the demo's clients sending images to the gateway
    operator: str  # read, operate, approve: the person browsing the console and pressing Approve
    label_studio: str | None = None  # label: sent back by Label Studio with its webhooks

    @property
    def gateway_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.gateway}"}


def create_token(shell: Shell, name: str, scopes: tuple[str, ...]) -> str:
    """``shiftwatch token create``: it prints only the token (the first command also migrates the store)."""
    args = ["token", "create", "--name", name]
    for scope in scopes:
        args += ["--scope", scope]
    return shell.run(*args, show_output=False).stdout.strip()


def issue_tokens(shell: Shell, settings: Settings) -> DemoTokens:
    """Create the demo's tokens in its fresh store."""
    wants_callback = bool(settings.label_studio_url) and not settings.label_studio_callback_token
    return DemoTokens(
        gateway=create_token(shell, "demo-gateway", ("ingest",)),
        operator=create_token(shell, OPERATOR, OPERATOR_SCOPES),
        label_studio=create_token(shell, "demo-label-studio", ("label",)) if wants_callback else None,
    )


def login_hint(console_url: str, tokens: DemoTokens) -> str:
    """How a person gets into the console: the login page and the operator token to paste."""
    return (f"open {console_url.rstrip('/')}/console/login and paste the token {tokens.operator} "
            f"(token {OPERATOR!r}: {', '.join(OPERATOR_SCOPES)})")
