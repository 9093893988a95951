"""``shiftwatch replay-rejected`` against a real uvicorn: a refused batch is resent once its cause is
fixed, stored once, and deleted; one refused again keeps the new reason; nothing is lost on the way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from sqlalchemy import func, select

from shiftwatch.collector import registry
from shiftwatch.collector.tables import Prediction
from shiftwatch_client.client import Client
from shiftwatch_client.records import PredictionRecord
from shiftwatch_client.spill import SpillDir
from tests.support.servers import free_port


def stored(db) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Prediction)))


def replay(url: str, spill: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIFTWATCH_")} | {"COLUMNS": "80"}
    return subprocess.run(
        [sys.executable, "-c", "from shiftwatch.cli import main; main()", "replay-rejected", "--url", url,
         "--spill-dir", str(spill), *extra],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip


def test_a_batch_refused_for_an_unregistered_version_is_stored_once_registered(live_server, db, digits_model,
                                                                               tmp_path) -> None:
    spill = tmp_path / "spill"
    with Client(live_server.url, spill_dir=spill) as client:
        for i in range(40):
            client.log("digits", "v2", i % 10, 0.9, embedding=np.full(64, i, dtype=np.float32))
        assert client.flush() is False
        assert client.stats.rejected == 40
    (kept,) = SpillDir(spill).rejected()
    assert "v2" in kept.reason

    listed = replay(live_server.url, spill, "--dry-run", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [(o["file"], o["outcome"]) for o in json.loads(listed.stdout)] == [(kept.path.name, "kept")]
    assert kept.path.exists()

    still = replay(live_server.url, spill, "--json")  # nothing fixed yet: refused again, kept
    assert still.returncode == 1
    assert json.loads(still.stdout)[0]["outcome"] == "refused" and kept.path.exists()

    with db.session() as session:
        registry.register_version(session, "digits", "v2", embedding_dim=64, state="production")
    done = replay(live_server.url, spill)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "stored" in done.stdout and kept.path.name in done.stdout  # the table keeps the name whole
    assert stored(db) == 40 and SpillDir(spill).rejected() == [] and list(spill.glob("rejected-*")) == []


def test_an_edited_json_lines_batch_is_refused_with_the_new_reason_then_stored(live_server, db, digits_model,
                                                                               tmp_path) -> None:
    spill = SpillDir(tmp_path / "spill")
    records = [PredictionRecord(model="digits", version="v1", predicted_class=3, confidence=c,
                                embedding=np.zeros(64, dtype=np.float32)) for c in (0.5, 1.5)]  # fmt: skip
    path = spill.reject(None, records, "client error: could not encode")
    assert path.suffix == ".jsonl"

    refused = replay(live_server.url, spill.root, "--json")
    assert refused.returncode == 1
    (outcome,) = json.loads(refused.stdout)
    assert (outcome["outcome"], outcome["stored"]) == ("partly", 1) and "confidence" in outcome["reason"]
    assert "confidence" in path.with_suffix(".txt").read_text() and stored(db) == 1  # the good row went in

    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 1, "the file keeps only the refused row"
    rows[0]["confidence"] = 0.95  # the person's fix
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    fixed = replay(live_server.url, spill.root, "--json")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert [(o["outcome"], o["stored"]) for o in json.loads(fixed.stdout)] == [("stored", 1)]
    assert stored(db) == 2 and not path.exists() and not path.with_suffix(".txt").exists()

    again = replay(live_server.url, spill.root)
    assert again.returncode == 0 and again.stdout.strip() == f"no rejected batches in {spill.root}"


def test_an_unreachable_server_changes_nothing_and_exits_1(tmp_path) -> None:
    spill = SpillDir(tmp_path / "spill")
    path = spill.reject(b"not sent", None, "HTTP 422: something")
    result = replay(f"http://127.0.0.1:{free_port()}", spill.root, "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout)[0]["outcome"] == "unsent"
    assert path.read_bytes() == b"not sent" and path.with_suffix(".txt").read_text() == "HTTP 422: something\n"


def test_bad_arguments_are_one_line_and_exit_2(tmp_path) -> None:
    missing = replay("http://127.0.0.1:1", tmp_path / "nope")
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"error: --spill-dir: {tmp_path / 'nope'} is not a folder"
    bad_url = replay("ftp://x", tmp_path)
    assert bad_url.returncode == 2 and "--url" in bad_url.stderr and len(bad_url.stderr.strip().splitlines()) == 1
