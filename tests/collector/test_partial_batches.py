"""One bad row no longer sinks its batch (issue 27, item 2): asked for ``?partial=true`` the server stores
the good rows and refuses each bad one with its reason; the SDK asks for it, keeps only the refused
rows, and refuses at ``log()`` what it can know; ``replay-rejected`` delivers what can be delivered."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import func, select

from shiftwatch.collector.tables import Prediction
from shiftwatch_client import wire
from shiftwatch_client.client import Client
from shiftwatch_client.spill import SpillDir
from shiftwatch_client.wire import CONTENT_TYPE
from tests.collector.test_replay import replay
from tests.support.collector import as_json, as_npz, records


def stored(db) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Prediction)))


# A field of one row set to what the server refuses, the field its refusal must name, its status, and
# the formats that can carry it (JSON has no NaN).
BAD_ROWS = [
    ({"ts": datetime.now(UTC) - timedelta(days=40)}, "ts", 422, ("json", "npz")),
    ({"predicted_class": 10}, "predicted_class", 422, ("json", "npz")),
    ({"predicted_class": 2**40}, "predicted_class", 422, ("json", "npz")),
    ({"version": "v9"}, "version", 404, ("json", "npz")),
    ({"request_id": "r" * 201}, "request_id", 422, ("json", "npz")),
    ({"embedding": np.full(64, np.nan, dtype=np.float32)}, "embedding", 422, ("npz",)),
]
CASES = [(bad, name, status, fmt) for bad, name, status, fmts in BAD_ROWS for fmt in fmts]


def _with_bad_row(n: int, at: int, bad: dict) -> list:
    batch = records(n, seed=3)
    for name, value in bad.items():
        setattr(batch[at], name, value)
    return batch


@pytest.mark.parametrize(
    ("bad", "name", "status", "fmt"), CASES, ids=[f"{c[1]}-{i}-{c[3]}" for i, c in enumerate(CASES)]
)
def test_the_good_rows_of_a_batch_are_stored_and_the_bad_one_refused_with_its_reason(
    api, db, digits_model, fmt, bad, name, status
) -> None:
    batch = _with_bad_row(256, 100, bad)
    if fmt == "json":
        response = api.post("/v1/predictions?partial=true", json=as_json(batch))
    else:
        response = api.post(
            "/v1/predictions?partial=true", content=as_npz(batch), headers={"content-type": CONTENT_TYPE}
        )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["received"], answer["stored"], answer["duplicates"], answer["refused"]) == (256, 255, 0, 1)
    (refusal,) = answer["refusals"]
    assert refusal["index"] == 100 and refusal["field"] == f"predictions[100].{name}" and refusal["status"] == status
    assert refusal["reason"]
    assert stored(db) == 255
    with db.session() as session:
        assert session.scalar(select(func.count()).where(Prediction.id == batch[100].id)) == 0


def test_without_partial_a_bad_row_still_refuses_the_whole_batch(api, db, digits_model) -> None:
    batch = _with_bad_row(20, 7, {"predicted_class": 10})
    response = api.post("/v1/predictions", content=as_npz(batch), headers={"content-type": CONTENT_TYPE})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("predictions[7].predicted_class")
    assert stored(db) == 0


def test_partial_refuses_a_moved_id_and_a_row_the_json_schema_refuses_row_by_row(api, db, digits_model) -> None:
    batch = records(30, seed=4)
    assert api.post("/v1/predictions", json=as_json(batch[:5])).status_code == 200
    body = as_json(batch)
    body["predictions"][2]["ts"] = (batch[2].ts + timedelta(seconds=1)).isoformat()  # stored with another ts
    body["predictions"][10]["confidence"] = 1.5  # the schema refuses it before any row check
    body["predictions"][11]["predicted_class"] = 2**63  # past int4: the schema again
    body["predictions"][12] = "not a row"
    answer = api.post("/v1/predictions?partial=true", json=body).json()
    assert (answer["received"], answer["stored"], answer["duplicates"], answer["refused"]) == (30, 22, 4, 4)
    by_index = {r["index"]: r for r in answer["refusals"]}
    assert sorted(by_index) == [2, 10, 11, 12]
    assert by_index[2]["status"] == 409 and "keep the ts" in by_index[2]["reason"]
    assert by_index[10]["field"] == "predictions[10].confidence"
    assert by_index[11]["field"] == "predictions[11].predicted_class"
    assert stored(db) == 5 + 22


def test_a_batch_of_only_bad_rows_stores_nothing_and_says_why_for_each(api, db, digits_model) -> None:
    batch = records(3, seed=5, predicted_class=12)
    answer = api.post(
        "/v1/predictions?partial=true", content=as_npz(batch), headers={"content-type": CONTENT_TYPE}
    ).json()
    assert (answer["stored"], answer["refused"]) == (0, 3)
    assert [r["field"] for r in answer["refusals"]] == [f"predictions[{i}].predicted_class" for i in range(3)]
    assert stored(db) == 0


def test_the_sdk_stores_255_good_rows_and_keeps_only_the_bad_one_with_its_reason(
    live_server, db, digits_model, tmp_path
) -> None:
    spill = tmp_path / "spill"
    with Client(live_server.url, batch_size=256, flush_interval_s=5, spill_dir=spill) as client:
        for i in range(256):
            ts = datetime.now(UTC) - timedelta(days=40 if i == 200 else 0)
            client.log("digits", "v1", i % 10, 0.9, embedding=np.full(64, i, dtype=np.float32), ts=ts)
        assert client.flush(timeout=60) is False  # a row was refused
        stats = client.stats
        assert (stats.logged, stats.stored, stats.sent, stats.rejected, stats.spilled) == (256, 255, 255, 1, 0)
        assert client.flush(timeout=10), "nothing failed since"
    assert stored(db) == 255
    (kept,) = SpillDir(spill).rejected()
    rows = wire.decode(kept.path.read_bytes(), max_unpacked_bytes=10**7)
    assert len(rows) == 1 and float(rows.embeddings[0, 0]) == 200.0
    assert kept.reason.splitlines()[1].startswith("predictions[0].ts: HTTP 422: must lie between")


def test_the_sdk_refuses_at_log_what_it_can_know(live_server, db, digits_model, tmp_path) -> None:
    with Client(live_server.url, spill_dir=tmp_path / "spill") as client:
        with pytest.raises(ValueError, match="predicted_class"):
            client.log("digits", "v1", 2**63, 0.9)  # crashed the encoder, taking its batch with it
        with pytest.raises(ValueError, match="predicted_class"):
            client.log("digits", "v1", 2**40, 0.9)
        with pytest.raises(ValueError, match="ts"):
            client.log("digits", "v1", 1, 0.9, ts=datetime.now(UTC) + timedelta(days=3))
        client.log("digits", "v1", 10, 0.9)  # the client has not seen the model: the server decides
        client.list_models()
        client.list_versions("digits")
        with pytest.raises(ValueError, match=r"outside \[0, 10\)"):
            client.log("digits", "v1", 10, 0.9)
        with pytest.raises(ValueError, match="probabilities has 3 values"):
            client.log("digits", "v1", 1, 0.9, probabilities=[0.1, 0.2, 0.7])
        with pytest.raises(ValueError, match="expects 64"):
            client.log("digits", "v1", 1, 0.9, embedding=np.zeros(63))
        client.log("digits", "v1", 1, 0.9, embedding=np.zeros(64))
        assert client.flush(timeout=60) is False
        assert (client.stats.logged, client.stats.stored, client.stats.rejected) == (2, 1, 1)
    assert stored(db) == 1


def test_replay_rejected_delivers_the_good_rows_of_an_old_whole_batch_file(
    live_server, db, digits_model, tmp_path
) -> None:
    spill = SpillDir(tmp_path / "spill")
    batch = _with_bad_row(256, 17, {"ts": datetime.now(UTC) - timedelta(days=40)})
    path = spill.reject(as_npz(batch), None, "HTTP 422: predictions[17].ts: must lie between ...")  # as before

    first = replay(live_server.url, spill.root, "--json")
    assert first.returncode == 1, "a row is still refused"
    (outcome,) = json.loads(first.stdout)
    assert (outcome["outcome"], outcome["stored"], outcome["refused"]) == ("partly", 255, 1)
    assert stored(db) == 255
    left = wire.decode(path.read_bytes(), max_unpacked_bytes=10**7)
    assert [uuid.UUID(bytes=bytes(i)) for i in left.ids] == [batch[17].id]
    assert "predictions[0].ts" in path.with_suffix(".txt").read_text()

    again = replay(live_server.url, spill.root, "--json")  # nothing fixed: refused again, nothing stored twice
    assert again.returncode == 1 and json.loads(again.stdout)[0]["outcome"] == "refused"
    assert stored(db) == 255 and path.exists()


def test_replay_rejected_delivers_the_good_lines_of_a_json_lines_file(live_server, db, digits_model, tmp_path) -> None:
    spill = SpillDir(tmp_path / "spill")
    batch = records(10, seed=6)
    batch[4].confidence = 1.5
    path = spill.reject(None, batch, "client error: could not encode")
    result = replay(live_server.url, spill.root, "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout)[0]["stored"] == 9 and stored(db) == 9
    (line,) = path.read_text().splitlines()
    assert json.loads(line)["id"] == str(batch[4].id)
    assert "predictions[0].confidence" in path.with_suffix(".txt").read_text()
