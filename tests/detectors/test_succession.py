"""Issue 23, item 9, the choices of ``succession.hand_over``: a promoted version's own settings win, and too few
rollout predictions pin nothing but say what to do."""

from __future__ import annotations

from datetime import timedelta

from shiftwatch.collector import registry
from shiftwatch.db import utcnow
from shiftwatch.detectors import configs, references, succession
from shiftwatch.detectors.alerts import Outbox
from tests.support.drift_scenario import add_config, log, pin_labeled_reference, pin_reference, records


def register_v2(db) -> int:
    with db.session() as session:
        return registry.register_version(session, "digits", "v2", embedding_dim=64).id


def hand_over(db, v1: int, v2: int, start):
    with db.session() as session:
        return succession.hand_over(
            session, Outbox(public_url="https://sw.example.com"), retired_id=v1, promoted_id=v2, window_start=start,
            window_end=utcnow(), resolved_by="rollout 1", resolution="promoted", now=utcnow(),
        )  # fmt: skip


def test_the_promoted_versions_own_reference_and_configs_win(db, settings, digits_model):
    pin_reference(db, settings, digits_model.id, utcnow() - timedelta(hours=2))
    add_config(db, digits_model.id, detector="mmd", alpha=0.01)
    add_config(db, digits_model.id, detector="bbsd", window_last_n=None, window_minutes=30)
    v2 = register_v2(db)
    pin_labeled_reference(db, v2, utcnow())
    own = add_config(db, v2, detector="mmd", alpha=0.1)

    done = hand_over(db, digits_model.id, v2, utcnow() - timedelta(hours=1))
    assert done.kept_configs == ("mmd",) and len(done.carried_configs) == 1
    assert done.reference == "kept its own (upload, n=400)"
    with db.session() as session:
        by_name = {c.name: c for c in configs.list_configs(session, v2)}
        assert (by_name["mmd"].id, by_name["mmd"].alpha) == (own, 0.1)  # its own settings, untouched
        carried = by_name["bbsd"]
        assert (carried.id, carried.window_minutes, carried.window_last_n) == (done.carried_configs[0], 30, None)
        assert references.get_row(session, v2).source == "upload"


def test_too_few_rollout_predictions_pin_nothing_and_say_how_to_pin_one(db, settings, digits_model):
    add_config(db, digits_model.id, detector="mmd")
    v2 = register_v2(db)
    start = utcnow() - timedelta(minutes=10)
    batch = records(start, 20, seed=3)
    for record in batch:
        record.version, record.route = "v2", "canary"
    log(db, settings, batch)

    done = hand_over(db, digits_model.id, v2, start - timedelta(seconds=1))
    assert done.reference.startswith("none: needs at least 50 samples, got 20 from its rollout; pin one with")
    assert len(done.carried_configs) == 1 and done.resolved_alerts == ()
    with db.session() as session:
        assert references.get_row(session, v2) is None
