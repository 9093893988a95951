"""The demo is a user (docs/STYLE.md): it reaches shiftwatch through the CLI, HTTP, the SDK and documented
Python only; it never opens the server's database nor calls a domain's internals."""

from __future__ import annotations

import ast
from pathlib import Path

import shiftwatch.demo

DEMO = Path(shiftwatch.demo.__file__).parent
# What the demo may import from shiftwatch besides itself, and why.
ALLOWED = {
    "shiftwatch.app",  # the server it runs, as `shiftwatch serve` builds it
    "shiftwatch.settings",  # that server's settings
    "shiftwatch.secret_key",  # the key `shiftwatch serve` generates on its first start
    "shiftwatch.signing",  # verify(): how a webhook receiver checks a signature (docs/alerts.md)
    "shiftwatch.console.svg",  # drawing the summary's chart
    "shiftwatch.labeling.studio_links",  # where Label Studio's links point, in words and ports (no state read)
    # The examples (image sets and networks the demo's "user" brings, docs/own-model.md) are allowed as a package.
    # The realistic user's own training run on the reference set's train split, with shiftwatch's loop
    # (docs/own-model.md: split_reference_set, fit, ContractModel).
    "shiftwatch.retrain.reference_set", "shiftwatch.retrain.trainer", "shiftwatch.retrain.torch_contract",
}


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module} if node.module != "shiftwatch.retrain" else {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


def test_the_demo_imports_no_internals_and_no_database_code() -> None:
    offending = {}
    for path in sorted(DEMO.glob("*.py")):
        modules = imported_modules(path)
        bad = {m for m in modules if m.startswith("shiftwatch") and not m.startswith(("shiftwatch.demo", "shiftwatch.examples"))
               and m not in ALLOWED}  # fmt: skip
        bad |= {m for m in modules if m.split(".")[0] == "sqlalchemy" or m == "shiftwatch.db"}
        if bad:
            offending[path.name] = sorted(bad)
    assert offending == {}


def test_the_demo_opens_no_session() -> None:
    assert [p.name for p in DEMO.glob("*.py") if ".session(" in p.read_text()] == []
