"""The serving gateway: which version answers a request, ONNX Runtime behind dynamic batching, logging off-path.

Per model it holds a ``RouteTable`` (production, and the rollout's candidate in shadow or canary).
A background thread re-reads the database every ``gateway_refresh_seconds``; new versions are
loaded (sha256-checked) in that thread and the table is swapped in one assignment, so serving
never waits for a load. Shadow copies run as fire-and-forget tasks after the production answer
is ready: they never add to the production response's latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from prometheus_client import Counter as PromCounter
from prometheus_client import Histogram

from shiftwatch.collector.broker import broker_publisher
from shiftwatch.collector.input_spec_check import check_input_spec
from shiftwatch.collector.tables import Model, ModelVersion
from shiftwatch.db import Database
from shiftwatch.errors import ShiftwatchError, Unavailable
from shiftwatch.retrain.contract import InputSpec
from shiftwatch.retrain.runtime import OnnxClassifier
from shiftwatch.rollout.batching import (
    BatchOutput,
    DynamicBatcher,
    ImageResult,
    InFlight,
    Runner,
    RunnerFactory,
    VersionToRun,
)
from shiftwatch.rollout.cohort import KeyCensus, KeyCohorts
from shiftwatch.rollout.images import DecodedInput, decode
from shiftwatch.rollout.loading import artifact_file, load_verified, wanted_versions
from shiftwatch.rollout.prediction_log import PendingError, PendingPrediction, PredictionLogWriter, check_log_metadata
from shiftwatch.rollout.routing import goes_to_canary
from shiftwatch.settings import Settings
from shiftwatch_client.records import PredictionRecord

log = logging.getLogger(__name__)

BATCH_SIZE = Histogram(
    "shiftwatch_gateway_batch_size", "Images per ONNX Runtime call", buckets=(1, 2, 4, 8, 16, 32, 64, 128)
)
PREDICTIONS = PromCounter("shiftwatch_gateway_predictions_total", "Gateway predictions", ["route"])
# A shadow copy is dropped rather than queued behind this many: the shadow must never starve production.
SHADOW_BACKLOG_LIMIT = 256


@dataclass(frozen=True, slots=True)
class ServedVersion:
    """A loaded, verified version with its own runner (the local batcher unless a factory says otherwise)."""

    version_id: int
    model: str
    version: str
    class_names: list[str]
    input_spec: dict[str, Any]
    spec: InputSpec  # input_spec parsed once: what decode applies for this version
    batcher: Runner


@dataclass(frozen=True, slots=True)
class RouteTable:
    """Who answers for one model right now. Replaced whole, never mutated."""

    production: ServedVersion
    candidate: ServedVersion | None = None
    stage: str | None = None  # "shadow" or "canary" while a rollout is active
    share: float = 0.0
    rollout_id: int | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    model: str
    version: str
    route: str
    request_id: str
    predicted_class: int
    label: str
    confidence: float
    probabilities: list[float]
    batch_size: int

    def body(self) -> dict[str, Any]:
        """The predict endpoint's JSON (``PredictOut``), built by hand: the hot path skips re-validation."""
        return {
            "model": self.model,
            "version": self.version,
            "route": self.route,
            "request_id": self.request_id,
            "class": self.predicted_class,
            "label": self.label,
            "confidence": self.confidence,
            "probabilities": self.probabilities,
        }


def _lower_thread_priority() -> None:
    with contextlib.suppress(AttributeError, OSError):  # other platforms: same priority, still off the response path
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)  # Linux: per-thread nice value


def _probabilities_and_embeddings(classifier: OnnxClassifier) -> Callable[[np.ndarray], BatchOutput]:
    def run(images: np.ndarray) -> BatchOutput:
        output = classifier.run(images)
        return output.probabilities, output.embeddings

    return run


class Gateway:
    """One per process (``app.state.gateway``); ``close()`` drains the log writer."""

    def __init__(self, db: Database, settings: Settings, runners: RunnerFactory | None = None) -> None:
        self.db = db
        self.settings = settings
        self.runners = runners or self._local_runner
        self.executor = ThreadPoolExecutor(max_workers=max(4, os.cpu_count() or 1), thread_name_prefix="ort")
        # Shadow copies run ORT in their own low-priority thread: on a busy host the production
        # path's threads win the CPU (ORT releases the GIL, so the nice value is what counts).
        self.shadow_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ort-shadow",
                                                  initializer=_lower_thread_priority)
        # Image decoding (CPU, and up to gateway_max_image_pixels x 3 bytes each) in its own few threads:
        # the event loop keeps answering, and concurrent huge images cannot all be in memory at once.
        self.decode_executor = ThreadPoolExecutor(max_workers=settings.gateway_decode_threads,
                                                  thread_name_prefix="decode")
        self.writer = PredictionLogWriter(
            db, settings.data_dir, input_max_bytes=settings.input_max_bytes,
            ingest_max_rows=settings.max_batch_rows, retention_days=settings.retention_days,
            embedding_keep_rate=settings.embedding_keep_rate, broker=broker_publisher(settings),
        )  # fmt: skip
        self.shadow_dropped = 0
        self._tables: dict[str, RouteTable] = {}
        self._loaded: dict[tuple[int, bool], ServedVersion] = {}  # (version id, as shadow) -> loaded
        self._refused: dict[int, str] = {}  # version id -> why its artifact was refused (not retried)
        self._load_lock = threading.Lock()
        self._shadow_tasks: set[asyncio.Task[None]] = set()
        self._first_loads: dict[str, asyncio.Future[RouteTable]] = {}
        self._in_flight: dict[str, InFlight] = {}
        self.cohorts = KeyCohorts(db, f"{socket.gethostname()}:{os.getpid()}")  # each canary's clients
        self._stop = threading.Event()
        self._refresher = threading.Thread(target=self._refresh_loop, name="gateway-refresh", daemon=True)
        self._refresher.start()

    # -- which versions serve ------------------------------------------------------------------
    def refresh(self, model_name: str) -> RouteTable:
        """Read the wanted versions, load any new one (blocking this thread only), swap the table."""
        with self._load_lock:
            with self.db.session() as session:
                model, production, rollout, candidate = wanted_versions(session, model_name)
            served = self._load(model, production, shadow=False)
            if served is None:
                raise Unavailable(f"production version of {model_name!r} cannot be served: {self._refused[production.id]}")
            table = RouteTable(production=served)
            if rollout is not None and candidate is not None:
                served_candidate = self._load(model, candidate, shadow=rollout.state == "shadow")
                if served_candidate is not None:
                    steps = rollout.plan.get("canary_steps", [0.0])
                    table = RouteTable(
                        production=served,
                        candidate=served_candidate,
                        stage=rollout.state,
                        share=float(steps[min(rollout.step, len(steps) - 1)]) if rollout.state == "canary" else 0.0,
                        rollout_id=rollout.id,
                    )
            self._tables[model_name] = table  # one assignment: requests see the old or the new table, whole
            self._unload_unused()
            return table

    def _unload_unused(self) -> None:
        """Drop versions no table serves any more (a finished rollout's candidate, a retired production)."""
        in_use = set()
        for table in self._tables.values():
            in_use.add(id(table.production))
            if table.candidate is not None:
                in_use.add(id(table.candidate))
        self.cohorts.keep_only({t.rollout_id for t in self._tables.values() if t.rollout_id is not None})
        for key, served in list(self._loaded.items()):
            if id(served) not in in_use:
                del self._loaded[key]
                served.batcher.close()

    def _load(self, model: Model, row: ModelVersion, *, shadow: bool) -> ServedVersion | None:
        if (row.id, shadow) in self._loaded:
            return self._loaded[(row.id, shadow)]
        if row.id in self._refused:
            return None
        if not row.artifact_path:  # served elsewhere: its rows come through the SDK
            log.info("%s:%s has no artifact; the gateway does not serve it", model.name, row.version)
            self._refused[row.id] = f"version {row.version!r} has no artifact"
            return None
        try:
            # Parsed and held to the pixel bound; a spec the model's dims refuse fails per call, counted as errors.
            spec = check_input_spec(row.input_spec, max_pixels=self.settings.gateway_max_image_pixels, onnx_dims=None)
            runner = self.runners(VersionToRun(
                row.id, model.name, row.version, artifact_file(self.settings.data_dir, row.artifact_path),
                row.artifact_sha256, shadow,
            ))  # fmt: skip
        except ShiftwatchError as exc:
            log.error("refusing to serve %s:%s: %s", model.name, row.version, exc.message)
            self._refused[row.id] = exc.message
            return None
        served = ServedVersion(
            version_id=row.id,
            model=model.name,
            version=row.version,
            class_names=list(model.class_names),
            input_spec=dict(row.input_spec or {}),
            spec=spec,
            batcher=runner,
        )
        self._loaded[(row.id, shadow)] = served
        return served

    def _local_runner(self, target: VersionToRun) -> Runner:
        """ONNX Runtime in this process behind a ``DynamicBatcher`` (the built-in gateway)."""
        classifier = load_verified(target.artifact, target.sha256, self.settings.gateway_ort_threads)
        return DynamicBatcher(
            _probabilities_and_embeddings(classifier),
            max_batch_size=self.settings.gateway_max_batch_size,
            max_wait_s=self.settings.gateway_max_wait_ms / 1000.0,
            executor=self.shadow_executor if target.shadow else self.executor,
            in_flight=InFlight() if target.shadow else self._in_flight.setdefault(target.model, InFlight()),
            parallelism=1 if target.shadow else self.settings.gateway_batch_parallelism,
        )

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.settings.gateway_refresh_seconds):
            for name in list(self._tables):
                try:
                    self.refresh(name)
                except Exception:  # keep serving the last good table
                    log.exception("gateway refresh of %s failed; serving the previous table", name)
            try:
                self.cohorts.record()
            except Exception:  # the counts only explain a stalled canary; serving goes on without them
                log.exception("writing the canary key counts failed; retried at the next refresh")

    async def table(self, model_name: str) -> RouteTable:
        table = self._tables.get(model_name)
        if table is not None:
            return table
        # Concurrent first requests share one load instead of queueing one database read each.
        pending = self._first_loads.get(model_name)
        if pending is None:
            pending = asyncio.ensure_future(asyncio.to_thread(self.refresh, model_name))
            self._first_loads[model_name] = pending
            pending.add_done_callback(lambda _: self._first_loads.pop(model_name, None))
        return await asyncio.shield(pending)

    # -- serving -------------------------------------------------------------------------------
    @contextmanager
    def arriving(self, model_name: str) -> Iterator[None]:
        """Count a request from before its body is read, so the batcher knows more are on their way."""
        counter = self._in_flight.setdefault(model_name, InFlight())
        counter.n += 1
        try:
            yield
        finally:
            counter.n -= 1

    async def predict(
        self,
        model_name: str,
        body: bytes,
        content_type: str,
        *,
        request_id: str | None = None,
        routing_key: str | None = None,
        stream_id: str | None = None,
    ) -> Answer:
        check_log_metadata(request_id=request_id, stream_id=stream_id)  # this client's 422, not the log batch's
        table = await self.table(model_name)
        request_id = request_id or uuid.uuid4().hex
        served, route = table.production, "production"
        if table.stage == "canary" and table.candidate is not None and table.rollout_id is not None and (
            self.cohorts.in_canary(table.rollout_id, routing_key, table.share)
            if routing_key
            else goes_to_canary(table.rollout_id, request_id, table.share)  # no client key: split per request
        ):
            served, route = table.candidate, "canary"
        decoded = await self._decode(served, body, content_type)
        try:
            result, latency_ms = await self._run(served, decoded)
        except Exception as exc:  # a failing canary falls back to production
            self.writer.put(PendingError(served.version_id, route, request_id, f"{type(exc).__name__}: {exc}"))
            if route != "canary":
                raise Unavailable(f"model {model_name!r} failed to predict") from exc
            decoded = await self._decode_again(table.production, served, decoded, body, content_type)
            served, route = table.production, "production"
            result, latency_ms = await self._run(served, decoded)
        self._log(served, route, decoded, result, latency_ms, request_id, stream_id)
        if table.stage == "shadow" and table.candidate is not None:
            task = asyncio.get_running_loop().create_task(
                self._shadow(table.candidate, served, decoded, body, content_type, request_id, stream_id)
            )
            self._shadow_tasks.add(task)
            task.add_done_callback(self._shadow_tasks.discard)
        probabilities = result.probabilities
        predicted = int(probabilities.argmax())
        return Answer(
            model=served.model,
            version=served.version,
            route=route,
            request_id=request_id,
            predicted_class=predicted,
            label=served.class_names[predicted] if predicted < len(served.class_names) else str(predicted),
            confidence=float(probabilities[predicted]),
            probabilities=[float(p) for p in probabilities],
            batch_size=result.batch_size,
        )

    def key_census(self, model_name: str) -> KeyCensus | None:
        """The canary's client keys as this process has seen them, while the model's rollout is in canary."""
        table = self._tables.get(model_name)
        return None if table is None or table.rollout_id is None else self.cohorts.census(table.rollout_id)

    async def _decode(self, served: ServedVersion, body: bytes, content_type: str) -> DecodedInput:
        return await asyncio.get_running_loop().run_in_executor(
            self.decode_executor,
            partial(decode, body, content_type, served.spec, max_pixels=self.settings.gateway_max_image_pixels),
        )

    async def _decode_again(
        self, target: ServedVersion, source: ServedVersion, decoded: DecodedInput, body: bytes, content_type: str
    ) -> DecodedInput:
        """``decoded`` when both versions declare the same preprocessing, else the body decoded for ``target``."""
        return decoded if target.spec == source.spec else await self._decode(target, body, content_type)

    async def _run(self, served: ServedVersion, decoded: DecodedInput) -> tuple[ImageResult, float]:
        started = time.perf_counter()
        result = await served.batcher.submit(decoded.tensor)
        BATCH_SIZE.observe(result.batch_size)
        return result, (time.perf_counter() - started) * 1000.0

    async def _shadow(
        self,
        served: ServedVersion,
        production: ServedVersion,
        decoded: DecodedInput,
        body: bytes,
        content_type: str,
        request_id: str,
        stream_id: str | None,
    ) -> None:
        if served.batcher.backlog >= SHADOW_BACKLOG_LIMIT:
            self.shadow_dropped += 1
            return
        try:
            decoded = await self._decode_again(served, production, decoded, body, content_type)
            result, latency_ms = await self._run(served, decoded)
        except Exception as exc:  # noqa: BLE001 - a shadow failure is evidence, not an outage
            self.writer.put(PendingError(served.version_id, "shadow", request_id, f"{type(exc).__name__}: {exc}"))
            return
        self._log(served, "shadow", decoded, result, latency_ms, request_id, stream_id)

    def _log(
        self,
        served: ServedVersion,
        route: str,
        decoded: DecodedInput,
        result: ImageResult,
        latency_ms: float,
        request_id: str,
        stream_id: str | None,
    ) -> None:
        predicted = int(result.probabilities.argmax())
        PREDICTIONS.labels(route).inc()
        record = PredictionRecord(
            model=served.model,
            version=served.version,
            predicted_class=predicted,
            confidence=float(result.probabilities[predicted]),
            embedding=result.embedding,
            probabilities=result.probabilities,
            route=route,
            request_id=request_id,
            stream_id=stream_id,
            latency_ms=latency_ms,
        )
        self.writer.put(PendingPrediction(record, decoded))

    def batch_sizes(self, model_name: str) -> dict[str, dict[int, int]]:
        """ORT call sizes per loaded version of a model (for /stats, tests and the bench)."""
        return {
            f"{s.model}:{s.version}": dict(s.batcher.batch_sizes) for s in list(self._loaded.values()) if s.model == model_name
        }

    async def drain_shadow(self) -> None:
        """Wait for in-flight shadow copies (tests and shutdown)."""
        while self._shadow_tasks:
            await asyncio.gather(*list(self._shadow_tasks), return_exceptions=True)

    def close(self) -> None:
        self._stop.set()
        self._refresher.join(timeout=10)
        for served in self._loaded.values():
            served.batcher.close()
        self.writer.close()
        self.executor.shutdown(wait=True)
        self.shadow_executor.shutdown(wait=True)
        self.decode_executor.shutdown(wait=True)
