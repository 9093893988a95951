"""shiftwatch on Ray Serve, on a real local Ray cluster (a head and 2 worker nodes on loopback).

The router deployment holds the built-in Gateway over one deployment per version: canary share, shadow
pairs and logging must come out as the built-in gateway's do, each answered request stored exactly once,
and a version replica killed mid-load must leave answers or clean 503s, never a doubled row.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select

from shiftwatch.collector.tables import Prediction
from shiftwatch.rollout import controller
from shiftwatch.rollout.routing import goes_to_canary
from shiftwatch.rollout.schemas import RolloutPlan
from tests.support.rollout import add_version, png_image
from tests.support.servers import free_port

ray = pytest.importorskip("ray", reason="the [ray] extra is not installed (make install installs it)")
serve = pytest.importorskip("ray.serve")

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.parametrize("backend", ["postgres"])]


@pytest.fixture(scope="module")
def ray_port() -> Iterator[int]:
    """One small cluster for the module (starting one costs ~15 s): head + 2 workers, 1 CPU each."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        yield port
    finally:
        serve.shutdown()
        ray.shutdown()
        cluster.shutdown()


def deploy(settings, replicas: int = 1):
    from shiftwatch.rollout.ray_serve import APP_NAME, Scaling, build_app

    return serve.run(build_app(settings, "digits", Scaling(replicas=replicas)), name=APP_NAME, route_prefix="/")


def post_all(port: int, headers: list[dict[str, str]], concurrency: int = 16) -> list[httpx.Response | Exception]:
    """POST ``png_image(i)`` with ``headers[i]``, ``concurrency`` at a time; a response or the client's error each."""

    async def main() -> list[httpx.Response | Exception]:
        gate = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:

            async def one(i: int, extra: dict[str, str]) -> httpx.Response | Exception:
                async with gate:
                    try:
                        return await client.post("/v1/models/digits/predict", content=png_image(i % 50),
                                                 headers={"content-type": "image/png", **extra})
                    except httpx.HTTPError as exc:
                        return exc

            return await asyncio.gather(*(one(i, extra) for i, extra in enumerate(headers)))

    return asyncio.run(main())


def rows_by_route(db) -> Counter[str]:
    with db.session() as session:
        return Counter(dict(session.execute(select(Prediction.route, func.count()).group_by(Prediction.route)).all()))


def start_rollout(db, settings, *, canary: bool) -> int:
    plan = RolloutPlan(canary_steps=[0.3, 1.0])
    with db.session() as session:
        rollout = controller.start_rollout(session, settings.data_dir, "digits", "v2", plan, actor="test")
        if canary:
            rollout.step_started_at = rollout.stage_started_at
            controller.transition(session, rollout, "canary", actor="test", action="start_canary", reason="test")
        return rollout.id


def test_canary_share_and_every_answer_stored_once(ray_port, db, settings):
    add_version(db, settings, "v1", state="production")
    add_version(db, settings, "v2", noise=0.1)
    rollout_id = start_rollout(db, settings, canary=True)
    handle = deploy(settings)
    try:
        n = 240
        responses = post_all(ray_port, [{"x-request-id": f"r{i}"} for i in range(n)])
        assert all(isinstance(r, httpx.Response) and r.status_code == 200 for r in responses), responses[0]
        routes = Counter(r.json()["route"] for r in responses)
        # Each request's route is the gateway's own per-request split, so it must match it exactly ...
        expected = {f"r{i}": "canary" if goes_to_canary(rollout_id, f"r{i}", 0.3) else "production" for i in range(n)}
        assert {r.json()["request_id"]: r.json()["route"] for r in responses} == expected
        # ... and the share is within binomial bounds (n=240, p=0.3: sd 0.030; 4 sd of headroom).
        assert abs(routes["canary"] / n - 0.3) < 0.12, routes
        assert {r.json()["version"] for r in responses if r.json()["route"] == "canary"} == {"v2"}
        assert handle.drain.remote().result(timeout_s=60)
        assert rows_by_route(db) == routes  # sent = answered = stored, per route
    finally:
        serve.delete("shiftwatch")


def test_shadow_pairs_are_stored_and_sticky_keys_hold(ray_port, db, settings):
    add_version(db, settings, "v1", state="production")
    add_version(db, settings, "v2", noise=0.1)
    start_rollout(db, settings, canary=False)
    handle = deploy(settings)
    try:
        n = 80
        responses = post_all(ray_port, [{"x-request-id": f"s{i}", "x-client-key": f"c{i % 7}"} for i in range(n)])
        assert all(isinstance(r, httpx.Response) and r.status_code == 200 for r in responses)
        assert {r.json()["route"] for r in responses} == {"production"}
        assert handle.drain.remote().result(timeout_s=60)
        with db.session() as session:
            pairs = Counter(session.execute(select(Prediction.request_id, Prediction.route)).all())
        assert set(pairs.values()) == {1}  # nothing stored twice
        by_request: dict[str, set[str]] = {}
        for request_id, route in pairs:
            by_request.setdefault(request_id, set()).add(route)
        assert by_request == {f"s{i}": {"production", "shadow"} for i in range(n)}
    finally:
        serve.delete("shiftwatch")


def test_a_replica_killed_mid_load_leaves_answers_or_clean_failures_and_no_double_rows(ray_port, db, settings):
    add_version(db, settings, "v1", state="production")
    handle = deploy(settings, replicas=2)
    try:
        replicas = [a for a in ray.util.list_named_actors(all_namespaces=True) if "digits-v1" in a["name"]]
        assert len(replicas) == 2, replicas

        async def load_and_kill() -> list[httpx.Response | Exception]:
            task = asyncio.create_task(asyncio.to_thread(post_all, ray_port, [{"x-request-id": f"k{i}"} for i in range(400)]))
            await asyncio.sleep(0.5)
            assert not task.done(), "the load ended before the kill: send more requests"
            victim = ray.get_actor(replicas[0]["name"], namespace=replicas[0]["namespace"])
            ray.kill(victim, no_restart=True)
            return await task

        responses = asyncio.run(load_and_kill())
        statuses = Counter(r.status_code if isinstance(r, httpx.Response) else type(r).__name__ for r in responses)
        assert set(statuses) <= {200, 503}, statuses  # answered, or a clean "model failed to predict"
        assert statuses[200] >= 200, statuses  # the surviving replica kept answering
        assert handle.drain.remote().result(timeout_s=60)
        answered = {r.json()["request_id"] for r in responses if isinstance(r, httpx.Response) and r.status_code == 200}
        with db.session() as session:
            stored = Counter(session.scalars(select(Prediction.request_id)).all())
        assert set(stored.values()) == {1} and set(stored) == answered
    finally:
        serve.delete("shiftwatch")
