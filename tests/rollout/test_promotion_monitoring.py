"""Issue 23, item 9: monitoring continues after a promotion, through the real gateway and the HTTP API.

v1 is watched and alerts on a shift; v2 is rolled out on the shifted traffic and approved. The
promotion carries v1's detectors to v2, pins what v2 served during its rollout as v2's reference,
and resolves v1's alert with a link to the rollout. v2's traffic as approved stays quiet; a second
shift on it alerts from the carried-over detectors.
"""

from __future__ import annotations

import io
from datetime import timedelta

import numpy as np
from PIL import Image
from sqlalchemy import func, select

from shiftwatch.collector.tables import Prediction
from shiftwatch.db import utcnow
from shiftwatch.detectors import runs
from shiftwatch.rollout import controller
from shiftwatch.rollout.schemas import RolloutPlan
from tests.support.rollout import add_version, post_and_drain

PLAN = RolloutPlan(canary_steps=[0.5, 1.0], min_shadow_pairs=20, min_step_predictions=10, require_labels=False)
# Pixel ranges (0..1): the traffic v1 was watched on, the first shift (v2 is approved on it), the second shift.
PLAIN, BRIGHT, DARK = (0.0, 1.0), (0.5, 1.0), (0.0, 0.5)


def image(seed: int, pixels: tuple[float, float]) -> bytes:
    low, high = pixels
    values = np.random.default_rng(seed).uniform(low, high, (32, 32)) * 255
    buffer = io.BytesIO()
    Image.fromarray(values.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def send(api, n: int, pixels: tuple[float, float], offset: int) -> list[dict]:
    """n images through the gateway from n clients on three cameras (X-Stream-ID)."""
    ids = range(offset, offset + n)
    headers = [{"x-client-key": f"client-{i}", "x-stream-id": f"cam-{i % 3}"} for i in ids]
    return post_and_drain(api, "digits", [image(i, pixels) for i in ids], headers)


def check(api, version: str) -> dict:
    answer = api.post(f"/v1/models/digits/versions/{version}/check", json={})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_promoted_version_inherits_detectors_and_a_reference_and_alerts_on_a_later_shift(db, settings, api):
    add_version(db, settings, "v1", state="production")
    add_version(db, settings, "v2")
    gateway = api.app.state.gateway
    gateway.refresh("digits")

    # Lap 1: v1 watched on plain traffic, then the traffic brightens and v1's detectors alert.
    start = utcnow() - timedelta(seconds=1)
    send(api, 150, PLAIN, offset=0)
    pinned = api.put("/v1/models/digits/versions/v1/reference", json={"start": start.isoformat(),
                                                                        "end": utcnow().isoformat()})  # fmt: skip
    assert pinned.status_code == 200 and pinned.json()["n"] == 150
    for detector, params in (("auto", {"n_permutations": 200}), ("bbsd", {})):
        body = {"model": "digits", "version": "v1", "detector": detector, "params": params, "window_last_n": 100,
                "schedule_seconds": 60, "confirm_runs": 1}  # fmt: skip
        assert api.post("/v1/detector-configs", json=body).status_code == 201
    send(api, 120, BRIGHT, offset=1000)
    v1_alerts = sorted(check(api, "v1")["opened"])
    assert len(v1_alerts) == 1  # one alert per drift episode of a version ...
    episode = api.get(f"/v1/alerts/{v1_alerts[0]}").json()
    assert sorted(episode["evidence"]["combined"]["detectors"]) == ["auto", "bbsd"]  # ... both detectors in it

    # v2 rolls out on the bright traffic and is approved.
    with db.session() as session:
        rollout_id = controller.start_rollout(session, settings.data_dir, "digits", "v2", PLAN, actor="alice").id
    for step, expected in enumerate(["advance", "advance", "await_approval"]):
        gateway.refresh("digits")
        send(api, 60, BRIGHT, offset=2000 + 100 * step)
        assert [o.decision for o in controller.tick(db)] == [expected]
    approved = api.post(f"/v1/rollouts/{rollout_id}/approve", json={"reason": "labels lag; agreement is 100 %"})
    assert approved.status_code == 200, approved.text
    monitoring = approved.json()["audit"][-1]["evidence"]["monitoring"]
    assert monitoring["resolved_alerts"] == v1_alerts and len(monitoring["carried_configs"]) == 2

    # Its detectors, its reference (what it served in shadow and canary), v1's alert resolved with a link.
    carried = api.get("/v1/detector-configs", params={"model": "digits", "version": "v2"}).json()
    assert [(c["id"], c["name"], c["params"], c["window_last_n"], c["enabled"]) for c in carried] == [
        (monitoring["carried_configs"][0], "auto", {"n_permutations": 200}, 100, True),
        (monitoring["carried_configs"][1], "bbsd", {}, 100, True),
    ]
    with db.session() as session:
        served = session.scalar(
            select(func.count()).select_from(Prediction).where(Prediction.model_version_id == carried[0]["model_version_id"])
        )
    reference = api.get("/v1/models/digits/versions/v2/reference").json()
    assert (reference["source"], reference["n"], reference["embedding_dim"]) == ("rollout", served, 16)
    assert monitoring["reference"].startswith(f"its rollout window (n={served}, ")
    for alert in api.get("/v1/alerts", params={"model": "digits", "version": "v1"}).json():
        assert (alert["state"], alert["resolved_by"]) == ("resolved", f"rollout {rollout_id}")
        assert alert["resolution"].startswith(f"digits:v1 was retired when rollout {rollout_id} promoted digits:v2")
        assert alert["resolution"].endswith(f"/console/rollouts/{rollout_id}")
    page = api.get(f"/console/alerts/{v1_alerts[0]}")
    assert page.status_code == 200 and f'<span id="resolution">digits:v1 was retired when rollout {rollout_id}' in page.text

    # Lap 2: the traffic v2 was approved on is its normal; a second shift alerts from the carried detectors.
    gateway.refresh("digits")
    assert {a["version"] for a in send(api, 120, BRIGHT, offset=3000)} == {"v2"}
    quiet = check(api, "v2")
    assert [(r["config_id"], r["status"], r["decision"]) for r in quiet["runs"]] == [
        (c["id"], "ok", False) for c in carried
    ]
    send(api, 120, DARK, offset=4000)
    report = runs.run_due_detectors(db, settings, utcnow() + timedelta(minutes=2))  # the scheduler's tick
    assert report.failures == () and report.runs == 2 and report.opened
    opened = [api.get(f"/v1/alerts/{a}").json() for a in report.opened]
    assert {(a["version"], a["state"]) for a in opened} == {("v2", "open")}
    assert {a["config_id"] for a in opened} <= {c["id"] for c in carried}
