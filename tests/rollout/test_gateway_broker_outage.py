"""With ingest through NATS, the gateway stores every prediction it answered while the broker was down.

Publishing fails (BrokerUnavailable), so the log writer spills the answered rows to disk and replays
them straight into the database; what JetStream took before the outage is stored by a worker.
Answered = stored, each id once.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from shiftwatch.app import create_app
from shiftwatch.db import Database
from shiftwatch.settings import Settings
from tests.collector.test_client_losses import wait_for
from tests.collector.test_ingest_broker import stored, worker_thread
from tests.support.nats_servers import PrivateNats, broker_settings
from tests.support.rollout import add_version, png_image

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.parametrize("backend", ["postgres"])]


def predict(api, i: int) -> int:
    return api.post("/v1/models/digits/predict", content=png_image(i), headers={"content-type": "image/png"}).status_code


def test_rows_answered_while_the_broker_is_down_are_spilled_and_stored(settings: Settings, db: Database, tmp_path) -> None:
    pytest.importorskip("nats")
    server = PrivateNats(tmp_path / "nats").start()
    settings = broker_settings(settings, server.url)
    add_version(db, settings, "v1", state="production")
    try:
        with TestClient(create_app(settings, db)) as api:
            writer = api.app.state.gateway.writer
            answered = sum(predict(api, i) == 200 for i in range(10))  # published: JetStream holds them
            assert writer.flush() and writer.spilled == 0 and stored(db) == (0, 0)
            server.stop()
            answered += sum(predict(api, i) == 200 for i in range(10, 40))
            assert writer.flush() and answered == 40
            assert writer.spilled + stored(db)[0] >= 30, (writer.spilled, stored(db))  # kept, and maybe replayed already
            assert wait_for(lambda: writer.spilled == 0, 60), writer.spilled
            assert stored(db) == (30, 30), "the spilled rows go straight to the database"
            assert api.get("/v1/gateway/stats", params={"model": "digits"}).json()["log_failed"] == 0
        server.start()
        with worker_thread(db, settings):
            assert wait_for(lambda: stored(db)[0] == 40, 30), stored(db)
        assert stored(db) == (40, 40)
    finally:
        server.stop()
