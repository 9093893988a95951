"""Serving elsewhere: predictions logged through the SDK with route and request id get the same comparisons."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select

from shiftwatch.collector import registry
from shiftwatch.rollout import controller
from shiftwatch.rollout.schemas import RolloutPlan
from shiftwatch.rollout.tables import Comparison
from shiftwatch_client.client import Client


def test_rollout_of_versions_served_elsewhere_runs_on_sdk_logged_rows(db, settings, live_server, tmp_path):
    with db.session() as session:
        registry.register_model(session, "digits", [str(i) for i in range(10)])
        registry.register_version(session, "digits", "v1", embedding_dim=8, state="production")
        registry.register_version(session, "digits", "v2", embedding_dim=8)  # no artifact: served by Triton, say
        rollout_id = controller.start_rollout(
            session, settings.data_dir, "digits", "v2", RolloutPlan(canary_steps=[0.5, 1.0], min_shadow_pairs=50), actor="ops"
        ).id
    rng = np.random.default_rng(0)
    with Client(live_server.url, spill_dir=tmp_path / "spill") as client:
        for i in range(60):
            probs = rng.dirichlet(np.ones(10) * 0.3)
            cls = int(probs.argmax())
            shared = {"request_id": f"r{i}", "embedding": rng.random(8), "probabilities": probs, "latency_ms": 3.0}
            client.log("digits", "v1", cls, float(probs[cls]), route="production", **shared)
            client.log("digits", "v2", cls, float(probs[cls]), route="shadow", **shared)
        assert client.flush()
    (outcome,) = controller.tick(db)
    assert (outcome.decision, outcome.state_after) == ("advance", "canary")
    with db.session() as session:
        (comparison,) = session.scalars(select(Comparison).where(Comparison.rollout_id == rollout_id))
    agreement = comparison.metrics["agreement"]
    assert {k: agreement[k] for k in ("n_pairs", "agree", "rate")} == {"n_pairs": 60, "agree": 60, "rate": 1.0}
    assert 0.9 < agreement["interval"]["low"] < 1.0 == agreement["interval"]["high"]  # exact interval at 60/60: 0.940 to 1
    assert comparison.metrics["candidate"]["latency_p99_ms"] == 3.0
