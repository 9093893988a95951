"""What a triager sees in a task: the labeling view (keys, image size, controls) and the task's own explanation."""

from __future__ import annotations

import string
import uuid
from datetime import timedelta

import numpy as np
import pytest

from shiftwatch.collector import registry
from shiftwatch.collector.inputs import InputStore
from shiftwatch.db import utcnow
from shiftwatch.labeling.input_links import InputLinks
from shiftwatch.labeling.policy import QueueItem, enqueue
from shiftwatch.labeling.queue import tasks_of_model
from shiftwatch.labeling.stretch import ImageSize
from shiftwatch.labeling.studio_config import RESERVED_KEYS, hotkeys, labeling_config
from shiftwatch.labeling.task_view import first_image_size, task_context, task_payload
from tests.support.labeling import log, low_contrast_png, probs_with_margin


def test_a_digit_class_is_answered_by_its_own_digit() -> None:
    names = [str(i) for i in range(10)]
    assert hotkeys(names) == names  # class "7" is key 7 (it was key 8, the next one's, before)


@pytest.mark.parametrize("names", [
    ["zero", "one", "two", "three"],
    ["cat", "car", "cart", "cab", "c"],
    ["bolt", "nut", "washer", "3", "u-bolt", "hex nut"],
    [f"part-{i}" for i in range(40)],
])
def test_every_class_gets_its_own_key_and_none_label_studio_uses(names) -> None:
    keys = hotkeys(names)
    given = [k for k in keys if k is not None]
    assert len(given) == len(set(given)), keys  # no two classes share a key
    assert not set(given) & RESERVED_KEYS
    assert len(given) == min(len(names), len(string.digits + string.ascii_lowercase) - len(RESERVED_KEYS))
    for name, key in zip(names, keys, strict=True):
        if len(name) == 1 and name.isdigit():
            assert key == name


def test_first_letters_when_free() -> None:
    assert hotkeys(["zero", "one", "two", "three"]) == ["z", "o", "t", "r"]  # "three": t taken, h is Label Studio's


def test_small_inputs_are_enlarged_without_smoothing_large_ones_fit() -> None:
    small = labeling_config([str(i) for i in range(10)], ImageSize(32, 32))
    assert small.count('width="256px"') == 2 and small.count('smoothing="false"') == 2
    for control in ('brightnessControl="true"', 'contrastControl="true"', 'zoomControl="true"'):
        assert small.count(control) == 2  # the original and the stretched copy
    assert '<Choice value="7" hotkey="7"/>' in small and 'value="$stretched"' in small
    assert 'value="$why"' in small and 'value="$headline"' in small
    large = labeling_config(["a", "b"], ImageSize(640, 480))
    assert 'smoothing="false"' not in large and 'maxWidth="750px"' in large


@pytest.fixture
def two_versions(db, settings):
    """digits v1 (production, with an open drift alert) and v2 (candidate); real 32x32 PNG inputs."""
    from tests.support.console import open_drift_alert

    with db.session() as session:
        registry.register_model(session, "digits", [f"d{i}" for i in range(10)])
        v1 = registry.register_version(session, "digits", "v1", embedding_dim=64, state="production").id
        v2 = registry.register_version(session, "digits", "v2", embedding_dim=64, state="candidate").id
    open_drift_alert(db, settings, v1)
    ref = InputStore(settings.data_dir).put(low_contrast_png(), "png")
    probabilities = np.stack([probs_with_margin(8, 0.9), probs_with_margin(3, 0.12)])
    ids = log(db, settings, probabilities, np.zeros((2, 64)), input_refs=[ref, ref], version="v2")
    return v1, v2, ids


def test_a_task_says_why_it_is_here_with_evidence_priority_and_its_alert(db, settings, two_versions) -> None:
    _, v2, ids = two_versions
    with db.session() as session:
        enqueue(session, v2, [QueueItem(ids[0], score=0.4, evidence={"production_class": 3, "candidate_class": 8,
                                                                      "request_id": "r-1"})], "disagreement")
        enqueue(session, v2, [QueueItem(ids[1], score=0.9, evidence={"margin": 0.12})], "uncertain")
        context = task_context(session, InputLinks.of(settings), settings.public_url, "digits")
        tasks = {t.reason: t for t in session.scalars(tasks_of_model("digits"))}
        disagreement, uncertain = (task_payload(context, tasks[r])["data"] for r in ("disagreement", "uncertain"))
        size = first_image_size(InputStore(settings.data_dir), list(tasks.values()))
    assert size == ImageSize(32, 32)
    assert disagreement["priority"] == pytest.approx(3.4) and isinstance(disagreement["priority"], float)
    assert "production says d3, the candidate says d8" in disagreement["headline"]
    assert "Priority 3.40 of 4" in disagreement["headline"]
    why = disagreement["why"]
    assert "production answered d3, the candidate answered d8" in why and "r-1" not in why
    alert_id = disagreement["alert_id"]
    assert isinstance(alert_id, int)
    assert f'href="{settings.public_url}/console/alerts/{alert_id}"' in why
    assert "answers were 0.12 apart" in uncertain["headline"] and "runner-up d4 (0.44)" in uncertain["why"]
    assert uncertain["stretched"] == uncertain["image"] + "&view=stretched"


def test_no_alert_is_named_when_none_was_open_and_text_is_escaped(db, settings) -> None:
    with db.session() as session:
        registry.register_model(session, "parts", ["<b>bolt</b>", "nut"])
        version = registry.register_version(session, "parts", "v1", embedding_dim=4, state="production").id
    ids = log(db, settings, np.stack([probs_with_margin(0, 0.2, num_classes=2)]), np.zeros((1, 4)), model="parts",
              ids=[uuid.uuid4()], ts=utcnow() - timedelta(minutes=1))
    with db.session() as session:
        enqueue(session, version, ids, "random")
        context = task_context(session, InputLinks.of(settings), settings.public_url, "parts")
        data = task_payload(context, session.scalars(tasks_of_model("parts")).one())["data"]
    assert data["alert_id"] is None and "no drift alert was open" in data["why"]
    assert "<b>bolt</b>" not in data["why"] and "&lt;b&gt;bolt&lt;/b&gt;" in data["why"]
    assert "random audit sample" in data["headline"]
