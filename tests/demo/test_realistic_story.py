"""The demo's story on the realistic example (``shiftwatch demo --realistic``), end to end on SQLite at a tiny scale.

ResNet-18 (width 0.25) on 3x96x96 textured digits comes in through the model contract
(reference .npz, the user's weights, ``register_torch_model``) and goes through the same acts as
the digits CNN: gateway, drift, alert + webhook, oracle labels, retrain, shadow, canary, approval.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from sqlalchemy import func, select

from shiftwatch.collector import registry
from shiftwatch.collector.tables import ModelVersion, Prediction
from shiftwatch.db import Database
from shiftwatch.demo.realistic import DRIFT, MODEL, resnet_subject, tiny_scale
from shiftwatch.demo.story import run_demo
from shiftwatch.detectors.tables import Alert
from shiftwatch.examples import resnet
from shiftwatch.labeling.tables import Label
from shiftwatch.retrain.tables import TrainingRun

pytestmark = pytest.mark.slow
SCALE = tiny_scale()


@pytest.fixture(scope="module")
def realistic_run(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("realistic")
    console = Console(record=True, width=120, force_terminal=False)
    result = run_demo(out, auto_approve=True, console=console, subject=resnet_subject(SCALE, traffic_images=300))
    db = Database.connect(result.database_url)
    yield result, console.export_text(), db
    db.dispose()


def test_the_whole_loop_is_in_this_build(realistic_run) -> None:
    result, _, _ = realistic_run
    assert result.missing == []


def test_v1_is_the_resnet_registered_through_the_model_contract(realistic_run) -> None:
    result, _, db = realistic_run
    with db.session() as session:
        v1 = registry.get_version(session, MODEL, "v1")
        contract, spec = dict(v1.report["contract"]), dict(v1.input_spec)
    assert contract["kind"] == "torch" and contract["factory"] == resnet.QUARTER_FACTORY
    assert spec["shape"] == [3, 96, 96] and spec["mean"] == resnet.INPUT_SPEC["mean"]
    # Registration keeps the reference set in the artifact store, named relative to the data directory.
    data_dir = Path(result.database_url.removeprefix("sqlite:///")).parent / "data"
    with np.load(data_dir / contract["reference_set"]) as reference:
        assert reference["images"].dtype == np.uint8 and reference["images"].shape == (SCALE.reference_images, 96, 96, 3)
        assert len(reference["labels"]) == SCALE.reference_images
    assert result.facts["reference_version"] == "v1"


def test_the_gateway_served_and_logged_the_traffic(realistic_run) -> None:
    result, _, db = realistic_run
    with db.session() as session:
        logged = session.scalar(select(func.count()).select_from(Prediction)
                                .join(ModelVersion, ModelVersion.id == Prediction.model_version_id)
                                .where(ModelVersion.version == "v1"))  # fmt: skip
    assert logged is not None and logged >= SCALE.clean_requests + SCALE.drift_requests
    assert result.facts["stored_predictions"] >= SCALE.clean_requests + SCALE.drift_requests  # what act 4 read back


def test_drift_opens_an_alert_and_the_webhook_reaches_the_receiver(realistic_run) -> None:
    result, text, db = realistic_run
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Alert)) >= 1
    assert result.facts["webhooks_received"] >= 1 and "signature valid" in text
    assert f"injecting {DRIFT.corruption} corruption" in text


def test_the_oracle_labels_came_in_through_the_import_path_and_say_so(realistic_run) -> None:
    result, text, db = realistic_run
    with db.session() as session:
        given = set(session.execute(select(Label.source, Label.annotator)).tuples())
        assert session.scalar(select(func.count()).select_from(Label)) >= result.facts["labels_stored"] > 0
    assert given == {("import", "oracle")} and "built-in oracle" in text


def test_the_candidate_is_retrained_from_the_contract_and_promoted(realistic_run) -> None:
    result, story, db = realistic_run
    with db.session() as session:
        runs = list(session.scalars(select(TrainingRun)))
        states = {v.version: v.state for v in registry.list_versions(session, MODEL)}
        candidate = registry.get_version(session, MODEL, result.facts.get("promoted", "v2"))
        factory = (candidate.report or {}).get("contract", {}).get("factory")
    assert [run.status for run in runs] == ["succeeded"], story[-4000:]
    assert factory == resnet.QUARTER_FACTORY
    assert "promoted" in result.facts, story[-4000:]
    assert states == {"v1": "retired", result.facts["promoted"]: "production"}
    assert result.facts["canary_requests_answered_by_candidate"] > 0


def test_accuracy_falls_with_the_drift_and_recovers_after_promotion(realistic_run) -> None:
    result, _, _ = realistic_run
    accuracy = result.accuracy
    assert accuracy["clean"] > 0.25  # textured digits at 3x96x96 after 8 epochs on 975 images; chance is 0.1
    assert accuracy["drift"] < accuracy["clean"] - 0.15
    assert accuracy["recovered"] > accuracy["drift"] + 0.1


def test_the_html_summary_plots_the_realistic_story(realistic_run) -> None:
    result, _, _ = realistic_run
    page = Path(result.summary_path).read_text()
    assert "Production accuracy over the stream" in page and "<polyline" in page
    for event in (f"drift: {DRIFT.corruption}", "alert opened", "promoted"):
        assert event in page
