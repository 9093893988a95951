"""JSON ingest is charged what parsing it really costs (issue 27, item 1): a 16 MiB body of bare numbers
held ~600 MB while charged 4x its bytes; now a body whose parse would exceed the whole parse budget
is refused (413) before it is parsed, and the charge stays above the measured peak of every shape."""

from __future__ import annotations

import gzip

import pytest
from sqlalchemy import func, select

from shiftwatch.collector.bodies import ByteBudget
from shiftwatch.collector.tables import Prediction
from tests.support.collector import as_json, as_npz, records
from tests.support.json_cost import MIB, body, measure


def stored(db) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Prediction)))


def test_a_16_mib_body_of_8_million_values_is_413_before_parsing(api, db, digits_model) -> None:
    bomb = gzip.compress(body("one_vector", 16 * MIB - 4096), compresslevel=6)  # ~30 KiB sent, under the JSON cap
    response = api.post("/v1/predictions", content=bomb,
                        headers={"content-type": "application/json", "content-encoding": "gzip"})  # fmt: skip
    assert response.status_code == 413, response.text
    assert "SHIFTWATCH_MAX_PARSE_BYTES" in response.json()["detail"] and "MiB" in response.json()["detail"]
    assert api.app.state.parse_budget.held == 0 and stored(db) == 0


def test_a_json_body_under_the_budget_is_parsed_and_a_budget_too_small_refuses_it(app, api, db, digits_model) -> None:
    assert api.post("/v1/predictions", json=as_json(records(20))).status_code == 200
    app.state.parse_budget = ByteBudget(10_000)
    response = api.post("/v1/predictions", json=as_json(records(20, seed=1)))
    assert response.status_code == 413 and "parse budget" in response.json()["detail"]
    assert stored(db) == 20 and app.state.parse_budget.held == 0


def test_an_npz_body_larger_than_the_whole_budget_still_runs_alone(app, api, db, digits_model) -> None:
    app.state.parse_budget = ByteBudget(10_000)
    response = api.post("/v1/predictions", content=as_npz(records(20)),
                        headers={"content-type": "application/x-shiftwatch-npz"})  # fmt: skip
    assert response.status_code == 200 and stored(db) == 20 and app.state.parse_budget.held == 0


@pytest.mark.parametrize("kind", ["capped_vectors", "small_rows"])
@pytest.mark.parametrize("partial", [False, True])
def test_the_charge_covers_the_measured_peak_of_a_parse(kind, partial) -> None:
    found = measure(kind, partial, size=4 * MIB)
    assert found["outcome"] == "parsed"
    assert found["peak_mib"] <= found["charged_mib"], found
