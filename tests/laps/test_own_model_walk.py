"""docs/own-model.md's two-lap walk runs as written: its ``<!-- walk -->`` bash blocks, in order, in one shell.

Only what the doc says may change is substituted: the port (8765) and the database URL (here a
PostgreSQL database; the demo's tests run the loop on SQLite). The blocks start and stop their own
``shiftwatch serve``; afterwards the CLI reads back what they did: both promotions approved without
``--force``, monitoring handed over to each new version, the retired versions' alerts closed, and
users' answers right again after each fix.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.databases import create_pg_database, drop_pg_database, pg_unavailable_reason
from tests.support.servers import free_port

pytest.importorskip("torch")
pytestmark = pytest.mark.slow

DOC = Path(__file__).resolve().parents[2] / "docs" / "own-model.md"
MARK = "<!-- walk -->"
DOC_PORT = "8765"
DOC_DATABASE = "sqlite:///$PWD/walk.db"


def walk_blocks(text: str) -> list[str]:
    """The bash blocks that follow a walk mark, in document order."""
    return re.findall(re.escape(MARK) + r"\n```bash\n(.*?)\n```", text, flags=re.DOTALL)


@pytest.fixture
def database_url() -> Iterator[str]:
    problem = pg_unavailable_reason()
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI but unavailable: {problem}")
        pytest.skip(f"PostgreSQL unavailable: {problem}")
    url = create_pg_database("sw_walk")
    yield url
    drop_pg_database(url)


def test_the_doc_marks_five_walk_blocks_that_name_what_may_be_substituted() -> None:
    blocks = walk_blocks(DOC.read_text())
    assert len(blocks) == 5
    assert DOC_PORT in blocks[0] and DOC_DATABASE in blocks[0]
    assert not any("--force" in block for block in blocks)


def test_the_two_lap_walk_in_docs_own_model_runs_as_written(tmp_path: Path, database_url: str) -> None:
    port = str(free_port())
    blocks = [block.replace(DOC_PORT, port).replace(DOC_DATABASE, database_url) for block in walk_blocks(DOC.read_text())]
    # The harness's own lines: stop at the first failing command, and never leave the server running.
    script = "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + "\n".join(blocks) + "\n"
    environment = {key: value for key, value in os.environ.items() if not key.startswith("SHIFTWATCH_")}
    environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment['PATH']}"
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=environment, capture_output=True, text=True,
                          timeout=1200, check=False)
    walk = tmp_path / "glyphs-walk"
    log = (walk / "serve.log").read_text() if (walk / "serve.log").exists() else ""
    assert done.returncode == 0, f"{done.stdout[-6000:]}\n{done.stderr[-6000:]}\nserve.log:\n{log[-3000:]}"

    environment |= {"SHIFTWATCH_DATABASE_URL": database_url, "SHIFTWATCH_DATA_DIR": str(walk / "data")}

    def cli(*args: str) -> object:
        ran = subprocess.run([sys.executable, "-m", "shiftwatch", *args, "--json"], cwd=walk, env=environment,
                             capture_output=True, text=True, check=True)
        return json.loads(ran.stdout)

    shown = cli("models", "show", "--model", "glyphs")
    states = {v["version"]: v["state"] for v in shown["versions"]}  # type: ignore[index]
    assert states == {"v1": "retired", "v2": "retired", "v3": "production"}
    rollouts = cli("rollout", "status")
    assert [r["state"] for r in rollouts] == ["production", "production"]  # type: ignore[union-attr,index]
    assert not any(entry["forced"] for r in rollouts for entry in r["audit"])  # type: ignore[union-attr,index]
    # Each promotion handed monitoring over: v3 is watched as v1 was, the retired versions' alerts are closed.
    assert [c["detector"] for c in cli("detectors", "list", "--model", "glyphs", "--version", "v3")] == ["mmd"]  # type: ignore[union-attr,index]
    for retired in ("v1", "v2"):
        assert cli("alerts", "list", "--model", "glyphs", "--version", retired, "--state", "open") == [], retired
    # The send lines: clean traffic right, each shift wrong, each fix right again.
    right = [(world, int(share)) for world, share in re.findall(r"(\w+): \d+ requests, (\d+)% answered right", done.stdout)]
    assert right[0][0] == "clean" and right[0][1] >= 90, right
    assert right[-1][0] == "noisy" and right[-1][1] >= 70, right
