"""Grafana dashboards: every panel's SQL runs against a real PostgreSQL with the schema and returns rows
after demo-like data is loaded (Grafana itself is not packaged here); push goes through grafana-client."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import inspect, text

from shiftwatch.dashboards.provision import load_dashboards, panel_queries, push
from tests.support.console import load_demo_like_data

VIEWS = ("sw_ingest_per_minute", "sw_drift_runs", "sw_alerts_per_minute", "sw_estimated_accuracy",
         "sw_labeled_accuracy", "sw_canary_comparisons", "sw_canary_metrics")


def grafana_sql(sql: str) -> str:
    """What Grafana sends for the last day of model ``digits``: its macros and variable expanded."""
    return (sql.replace("$__timeFilter(time)", "time BETWEEN now() - interval '1 day' AND now() + interval '1 hour'")
            .replace("$model", "digits"))


@pytest.mark.parametrize("backend", ["postgres"])  # the dashboards' data source is PostgreSQL
def test_every_panel_query_returns_rows_on_postgres_after_demo_like_data(backend, db, settings) -> None:
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


def test_views_exist_on_postgres_and_are_not_created_on_sqlite(backend, db) -> None:
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

            def do_GET(self) -> None:
                if self._authorized():
                    self._answer(200, grafana.folders)

            def do_POST(self) -> None:
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


def test_the_cli_pushes_and_prints_each_dashboard_url() -> None:
    import subprocess
    import sys

    grafana = FakeGrafana(token="glsa_cli")
    try:
        result = subprocess.run(
            [sys.executable, "-c", "from shiftwatch.cli import main; main()", "dashboards", "push",
             "--grafana-url", grafana.url, "--token", "glsa_cli"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        grafana.stop()
    assert result.returncode == 0, result.stderr
    assert sorted(url.rsplit("/", 1)[1] for url in result.stdout.split()) == sorted(
        d["uid"] for d in load_dashboards().values())
