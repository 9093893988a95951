"""Grafana dashboards: every panel's SQL runs against a real PostgreSQL with the schema and returns rows
after demo-like data is loaded (Grafana itself is not packaged here); push goes through grafana-client."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from sqlalchemy import inspect, text

from shiftwatch.collector import registry
from shiftwatch.collector.records import PredictionRecord
from shiftwatch.collector.service import log_predictions
from shiftwatch.dashboards.provision import load_dashboards, panel_queries, push
from shiftwatch.db import utcnow

VIEWS = ("sw_ingest_per_minute", "sw_drift_runs", "sw_alerts_per_minute", "sw_estimated_accuracy",
         "sw_labeled_accuracy", "sw_canary_comparisons", "sw_canary_metrics")


def grafana_sql(sql: str) -> str:
    """What Grafana sends for the last day of model ``digits``: its macros and variable expanded."""
    return (sql.replace("$__timeFilter(time)", "time BETWEEN now() - interval '1 day' AND now() + interval '1 hour'")
            .replace("$model", "digits"))


def predictions(version: str, n: int, *, shift: float = 0.0, route: str = "production", seed: int = 0,
                minutes_ago: float = 30.0) -> list[PredictionRecord]:
    rng = np.random.default_rng(seed)
    start = utcnow() - timedelta(minutes=minutes_ago)
    records = []
    for i in range(n):
        probabilities = rng.dirichlet(np.ones(10) * 0.3).astype(np.float32)
        predicted = int(probabilities.argmax())
        records.append(PredictionRecord(
            model="digits", version=version, predicted_class=predicted, confidence=float(probabilities[predicted]),
            embedding=(rng.normal(shift, 1.0, 64)).astype(np.float32), probabilities=probabilities, route=route,
            request_id=f"{route}-{seed}-{i}", input_ref=f"inputs/{uuid.uuid4().hex}{uuid.uuid4().hex}.png",
            latency_ms=float(rng.gamma(2.0, 2.0)), ts=start + timedelta(seconds=i * 2),
        ))
    return records


def load_demo_like_data(db, settings) -> None:  # type: ignore[no-untyped-def]
    """The demo's story in miniature, written by each package's own functions: traffic, a drift run that
    opens an alert, oracle labels, and a canary comparison computed by the rollout controller's code."""
    from shiftwatch.detectors import configs, references, runs
    from shiftwatch.labeling.oracle import label_with_oracle
    from shiftwatch.labeling.queue import select_for_labeling
    from shiftwatch.rollout.comparisons import compare_canary
    from shiftwatch.rollout.models import Comparison, Rollout
    from shiftwatch.rollout.schemas import RolloutPlan

    with db.session() as session:
        registry.register_model(session, "digits", [str(i) for i in range(10)])
        v1 = registry.register_version(session, "digits", "v1", embedding_dim=64, state="production")
        v2 = registry.register_version(session, "digits", "v2", embedding_dim=64, state="canary")
        v1_id, v2_id, model_id = v1.id, v2.id, v1.model_id
    log_predictions(db, settings, predictions("v1", 300, minutes_ago=50))
    reference_end = utcnow() - timedelta(minutes=35)
    log_predictions(db, settings, predictions("v1", 300, shift=0.8, seed=1, minutes_ago=30))
    with db.session() as session:
        references.pin_time_range(session, v1_id, reference_end - timedelta(hours=1), reference_end)
        configs.create(session, v1_id, "mmd", window_last_n=300, schedule_seconds=1, confirm_runs=1)
    report = runs.run_due_detectors(db, settings, utcnow())
    assert report.opened, "the shifted window should open an alert"
    with db.session() as session:
        select_for_labeling(session, settings, "digits", start=utcnow() - timedelta(hours=2), batch_size=40, seed=0)
        assert label_with_oracle(session, "digits", lambda ref: 3) > 0
    step_start = utcnow() - timedelta(minutes=10)
    log_predictions(db, settings, predictions("v1", 100, seed=2, minutes_ago=9))
    log_predictions(db, settings, predictions("v2", 100, route="canary", seed=3, minutes_ago=9))
    with db.session() as session:
        plan = RolloutPlan()
        rollout = Rollout(model_id=model_id, candidate_version_id=v2_id, baseline_version_id=v1_id, state="canary",
                          stage_started_at=step_start, step_started_at=step_start, plan=plan.model_dump(),
                          last_decision={}, created_by="test")
        session.add(rollout)
        session.flush()
        now = utcnow()
        metrics = compare_canary(session, rollout, plan, now, lambda s, refs: {ref: 3 for ref in refs})
        session.add(Comparison(rollout_id=rollout.id, stage="canary", step=0, computed_at=now, decision="hold",
                               metrics=metrics))


def test_every_panel_query_returns_rows_on_postgres_after_demo_like_data(backend, db, settings) -> None:  # type: ignore[no-untyped-def]
    if backend != "postgres":
        pytest.skip("the dashboards' data source is PostgreSQL")
    load_demo_like_data(db, settings)
    queries = panel_queries()
    assert len(queries) >= 10
    empty = []
    with db.engine.connect() as connection:
        for query in queries:
            rows = connection.execute(text(grafana_sql(query.sql))).all()
            if not rows:
                empty.append(f"{query.dashboard}: {query.panel}")
    assert empty == []


def test_views_exist_on_postgres_and_are_not_created_on_sqlite(backend, db) -> None:  # type: ignore[no-untyped-def]
    views = set(inspect(db.engine).get_view_names())
    if backend == "postgres":
        assert set(VIEWS) <= views
    else:
        assert not views & set(VIEWS)


def test_every_panel_reads_only_documented_views() -> None:
    for query in panel_queries():
        if query.panel.startswith("variable"):
            continue
        assert any(view in query.sql for view in VIEWS), query.panel
        assert "$__timeFilter(time)" in query.sql, query.panel


class FakeGrafana:
    """Grafana's HTTP API, the three calls push makes, on a loopback port: records what it was sent."""

    def __init__(self, token: str) -> None:
        self.dashboards: list[dict] = []
        self.folders: list[dict] = []
        grafana = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorized(self) -> bool:
                if self.headers.get("authorization") != f"Bearer {token}":
                    self._answer(401, {"message": "invalid API key"})
                    return False
                return True

            def do_GET(self) -> None:  # noqa: N802
                if self._authorized():
                    self._answer(200, grafana.folders)

            def do_POST(self) -> None:  # noqa: N802
                if not self._authorized():
                    return
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                if self.path.startswith("/api/folders"):
                    folder = {"uid": "sw-folder", "title": body["title"]}
                    grafana.folders.append(folder)
                    self._answer(200, folder)
                else:
                    grafana.dashboards.append(body)
                    self._answer(200, {"status": "success", "url": f"/d/{body['dashboard']['uid']}"})

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_push_creates_the_folder_and_every_dashboard_pointing_at_the_data_source() -> None:
    grafana = FakeGrafana(token="glsa_test")
    try:
        urls = push(grafana.url, "glsa_test", datasource_uid="pg-prod")
    finally:
        grafana.stop()
    assert len(urls) == len(load_dashboards()) == len(grafana.dashboards) == 3
    for sent in grafana.dashboards:
        assert sent["folderUid"] == "sw-folder" and sent["overwrite"] is True
        uids = {t["datasource"]["uid"] for p in sent["dashboard"]["panels"] for t in p["targets"]}
        assert uids == {"pg-prod"}


def test_push_with_a_bad_token_is_one_clear_error() -> None:
    from shiftwatch.errors import Invalid

    grafana = FakeGrafana(token="right")
    try:
        with pytest.raises(Invalid, match="Grafana refused"):
            push(grafana.url, "wrong")
    finally:
        grafana.stop()
