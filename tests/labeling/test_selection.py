"""The selection policy: reasons, priorities, budget, de-duplication, diversity, and an unbiased random slice."""

from __future__ import annotations

import uuid
from dataclasses import make_dataclass, replace
from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import select

from shiftwatch.errors import Invalid
from shiftwatch.labeling import selection
from shiftwatch.labeling.flags import FlaggedItem, as_flagged_item
from shiftwatch.labeling.job import run_labeling_cycle
from shiftwatch.labeling.policy import Budget, QueueItem, enqueue, select_for_labeling
from shiftwatch.labeling.queue import queue_status
from shiftwatch.labeling.selection import Candidate
from shiftwatch.labeling.tables import LabelTask
from tests.support.labeling import log, probs_with_margin

NOW = datetime.now(UTC)


def _tasks(db) -> dict[uuid.UUID, LabelTask]:
    with db.session() as session:
        return {t.prediction_id: t for t in session.scalars(select(LabelTask))}


def _candidate(embedding: np.ndarray, priority: float, reason: str = "uncertain") -> Candidate:
    return Candidate(
        prediction_id=uuid.uuid4(), ts=NOW, model_version_id=1, predicted_class=0, confidence=0.5,
        input_ref="inputs/x.png", embedding=embedding.astype(np.float32), reason=reason, priority=priority,
    )


def test_uncertain_predictions_are_queued_with_their_margin_and_a_priority_that_grows_as_it_shrinks(db, settings, digits_model):
    settings = settings.model_copy(update={"labeling_audit_per_route": 1})
    rng = np.random.default_rng(0)
    margins = [0.05, 0.15, 0.25, 0.35] + [0.9] * 16
    ids = log(db, settings, np.stack([probs_with_margin(i % 10, m) for i, m in enumerate(margins)]), rng.normal(size=(20, 64)))
    with db.session() as session:
        result = select_for_labeling(session, "digits", Budget.of(settings, "digits", 10), flagged=[], seed=1)
    tasks = _tasks(db)
    uncertain = [tasks[i] for i in ids[:4] if tasks.get(i) is not None and tasks[i].reason == "uncertain"]
    assert result.by_reason.get("random") == 1  # the audit slice: one per route
    assert len(uncertain) + sum(1 for i in ids[:4] if i in tasks and tasks[i].reason == "random") == 4
    assert all(1.0 <= t.priority < 2.0 and "margin" in t.evidence for t in uncertain)
    ordered = sorted(uncertain, key=lambda t: t.evidence["margin"])
    assert [t.priority for t in ordered] == sorted((t.priority for t in ordered), reverse=True)
    assert not any(tasks[i].reason == "uncertain" for i in ids[4:] if i in tasks)  # confident ones only by chance


def test_on_a_store_that_kept_a_sample_of_embeddings_informative_picks_keep_theirs(db, settings, digits_model):
    """collector.embedding_keep: a quarter of the rows kept their embedding; the queued uncertain picks are kept rows."""
    settings = settings.model_copy(update={"labeling_audit_per_route": 0, "embedding_keep_rate": 0.25})
    rng = np.random.default_rng(9)
    log(db, settings, np.stack([probs_with_margin(i % 10, 0.02 + 0.001 * i) for i in range(400)]), rng.normal(size=(400, 64)))
    with db.session() as session:
        result = select_for_labeling(session, "digits", Budget.of(settings, "digits", 20), flagged=[], seed=2)
    tasks = list(_tasks(db).values())
    uncertain = [t for t in tasks if t.reason == "uncertain"]
    assert result.queued == len(tasks) and len(uncertain) >= 15
    assert all(t.embedding is not None and t.embedding.shape == (64,) for t in uncertain)


def test_flagged_samples_outrank_uncertain_ones_and_keep_both_reasons(db, settings, digits_model):
    settings = settings.model_copy(update={"labeling_audit_per_route": 0})  # the informative picks alone
    rng = np.random.default_rng(1)
    ids = log(db, settings, np.stack([probs_with_margin(i % 10, 0.1 if i < 3 else 0.9) for i in range(12)]), rng.normal(size=(12, 64)))
    flags = [FlaggedItem(ids[0], score=5.0, method="mmd"), FlaggedItem(ids[8], score=9.0, method="classifier")]
    with db.session() as session:
        select_for_labeling(session, "digits", Budget.of(settings, "digits", 5), flagged=flags, seed=3)
    tasks = _tasks(db)
    assert tasks[ids[8]].reason == "flagged" and tasks[ids[8]].evidence["method"] == "classifier"
    assert tasks[ids[0]].reason == "flagged" and tasks[ids[0]].evidence["also"] == ["uncertain"]
    assert tasks[ids[8]].priority > tasks[ids[0]].priority >= 2.0  # ranked by the detector's score
    assert all(tasks[i].priority < 2.0 for i in ids[1:3] if i in tasks)


def test_daily_budget_caps_the_queue_across_batches(db, settings, digits_model):
    settings = settings.model_copy(update={"labeling_daily_budgets": {"digits": 7}})
    rng = np.random.default_rng(2)
    log(db, settings, np.stack([probs_with_margin(i % 10, 0.1) for i in range(30)]), rng.normal(size=(30, 64)))
    queued = []
    for _ in range(3):
        with db.session() as session:
            queued.append(select_for_labeling(session, "digits", Budget.of(settings, "digits", 5), flagged=[], seed=0).queued)
    assert queued == [5, 2, 0]
    with db.session() as session:
        status = queue_status(session, "digits", Budget.of(settings, "digits").daily)
    assert (status.queued_today, status.budget_today, status.by_state["pending"]) == (7, 7, 7)


def test_a_prediction_is_never_queued_twice(db, settings, digits_model):
    rng = np.random.default_rng(3)
    ids = log(db, settings, np.stack([probs_with_margin(1, 0.1)] * 6), rng.normal(size=(6, 64)))
    with db.session() as session:
        first = select_for_labeling(session, "digits", Budget.of(settings, "digits", 50), flagged=[], seed=0)
    with db.session() as session:
        second = select_for_labeling(session, "digits", Budget.of(settings, "digits", 50), flagged=[], seed=0)
        again = enqueue(session, digits_model.id, ids, "disagreement")
    assert (first.queued, second.queued) == (6, 0)
    assert (again.queued, again.already_queued) == (0, 6)
    assert len(_tasks(db)) == 6


def test_disagreements_enter_the_top_band_with_their_evidence(db, settings, digits_model):
    rng = np.random.default_rng(4)
    ids = log(db, settings, np.stack([probs_with_margin(2, 0.9)] * 3), rng.normal(size=(3, 64)))
    with db.session() as session:
        result = enqueue(
            session, digits_model.id,
            [QueueItem(ids[0], score=0.8, evidence={"shadow_class": 7}), ids[1], uuid.uuid4()], "disagreement",
        )
        with pytest.raises(Invalid):
            enqueue(session, digits_model.id, [ids[2]], "because")
    tasks = _tasks(db)
    assert (result.queued, result.not_found) == (2, 1)
    assert tasks[ids[0]].reason == "disagreement" and tasks[ids[0]].evidence == {"shadow_class": 7}
    assert tasks[ids[0]].priority == pytest.approx(3.8) and tasks[ids[1]].priority == pytest.approx(4.0)
    # what retraining needs is copied, so the label outlives the prediction's partition
    assert tasks[ids[0]].embedding is not None and tasks[ids[0]].input_ref is not None


def test_enqueue_respects_the_daily_budget_keeping_the_strongest(db, settings, digits_model):
    rng = np.random.default_rng(5)
    ids = log(db, settings, np.stack([probs_with_margin(2, 0.9)] * 4), rng.normal(size=(4, 64)))
    items = [QueueItem(pid, score=s) for pid, s in zip(ids, (0.1, 0.9, 0.5, 0.7), strict=True)]
    with db.session() as session:
        result = enqueue(session, digits_model.id, items, "disagreement", daily_budget=2)
    assert (result.queued, result.over_budget) == (2, 2)
    assert set(_tasks(db)) == {ids[1], ids[3]}


def test_diversity_beats_near_duplicates():
    rng = np.random.default_rng(6)
    frame = rng.normal(size=64)
    # ten near-identical frames of one camera, the most uncertain of all
    duplicates = [_candidate(frame + rng.normal(scale=1e-3, size=64), 1.95 - i * 1e-3) for i in range(10)]
    diverse = [_candidate(rng.normal(size=64) * 3, 1.5 - i * 1e-2) for i in range(20)]
    by_priority = sorted(duplicates + diverse, key=lambda c: -c.priority)[:5]
    chosen = selection.diverse_top(duplicates + diverse, 5)
    dup_ids = {c.prediction_id for c in duplicates}
    assert sum(c.prediction_id in dup_ids for c in by_priority) == 5  # priority alone wastes the batch
    assert sum(c.prediction_id in dup_ids for c in chosen) == 1
    assert chosen[0].prediction_id == by_priority[0].prediction_id  # the most informative still comes first


def test_where_a_sample_kept_embeddings_flags_come_first_and_the_rest_are_spread_kept_rows():
    """collector.embedding_keep: most rows carry no embedding; the spread still works over the kept ones."""
    rng = np.random.default_rng(8)
    frame = rng.normal(size=64)
    duplicates = [_candidate(frame + rng.normal(scale=1e-3, size=64), 1.9 - i * 1e-3) for i in range(10)]
    kept = duplicates + [_candidate(rng.normal(size=64) * 3, 1.5 - i * 1e-2) for i in range(20)]
    bare = [replace(_candidate(frame, 1.99 - i * 1e-3), embedding=None) for i in range(40)]  # unsampled, uncertain
    flagged = [replace(_candidate(frame, 2.5), embedding=None, reason="flagged")]  # an output detector's flag
    chosen = selection.diverse_top(bare + kept + flagged, 6)
    assert chosen[0].prediction_id == flagged[0].prediction_id
    assert all(c.embedding is not None for c in chosen[1:])  # each pick keeps its embedding for the next spread
    assert sum(c.prediction_id in {d.prediction_id for d in duplicates} for c in chosen) == 1
    # Fewer kept rows than places: priority alone, as before the sample.
    assert selection.diverse_top(bare + kept[:2], 6) == sorted(bare + kept[:2], key=lambda c: -c.priority)[:6]


def test_new_batches_keep_their_distance_from_tasks_already_queued(db, settings, digits_model):
    rng = np.random.default_rng(7)
    frame = rng.normal(size=64)
    near = np.stack([frame + rng.normal(scale=1e-3, size=64) for _ in range(6)])
    far = rng.normal(size=(6, 64)) * 3
    ids = log(db, settings, np.stack([probs_with_margin(3, 0.05)] * 6 + [probs_with_margin(4, 0.3)] * 6), np.vstack([near, far]))
    settings = settings.model_copy(update={"labeling_batch_size": 1})
    with db.session() as session:
        enqueue(session, digits_model.id, [ids[0]], "uncertain")
        select_for_labeling(session, "digits", Budget.of(settings, "digits", 4), flagged=[], seed=0)
    picked = set(_tasks(db)) - {ids[0]}
    assert len(picked) == 4 and not picked & set(ids[:6])


def test_k_center_greedy_takes_one_point_per_cluster():
    rng = np.random.default_rng(8)
    centers = np.array([[0, 0], [50, 0], [0, 50]], dtype=np.float32)
    points = np.vstack([c + rng.normal(size=(30, 2)) for c in centers])
    chosen = selection.k_center_greedy(points, 3)
    assert sorted(i // 30 for i in chosen) == [0, 1, 2]


def test_random_slice_is_a_uniform_sample_of_the_window():
    """Over 400 seeded batches, the random slice hits the uncertain tenth of the window a tenth of the time."""
    rng = np.random.default_rng(9)
    everyone = [_candidate(rng.normal(size=8), 0.0) for _ in range(200)]
    informative = [replace(c, priority=1.9) for c in everyone[:20]]
    hits = draws = 0
    for seed in range(400):
        batch = selection.plan_batch(informative, everyone, 20, rng=np.random.default_rng(seed))
        drawn = [c for c in batch if c.reason == "random"]
        hits += sum(c.prediction_id in {i.prediction_id for i in informative} for c in drawn)
        draws += len(drawn)
    assert draws == 400 * 2
    assert 0.07 < hits / draws < 0.13


def test_detector_flags_are_read_in_the_detectors_record_shape():
    Flagged = make_dataclass("Flagged", ["id", "prediction_id", "score", "reason"])  # noqa: N806 - a class, detectors.flagged.Flagged's fields
    pid = uuid.uuid4()
    assert as_flagged_item(Flagged(1, pid, 0.7, "mmd_witness")) == FlaggedItem(pid, 0.7, "mmd_witness")
    assert as_flagged_item({"prediction_id": str(pid), "score": 2}) == FlaggedItem(pid, 2.0, "detector")


def test_the_labeling_job_queues_a_batch_without_label_studio(db, settings, digits_model):
    rng = np.random.default_rng(11)
    log(db, settings, np.stack([probs_with_margin(5, 0.1)] * 4), rng.normal(size=(4, 64)), ts=NOW)
    run_labeling_cycle(db, settings.model_copy(update={"labeling_sync_interval_s": 600}), NOW)
    assert len(_tasks(db)) == 4
