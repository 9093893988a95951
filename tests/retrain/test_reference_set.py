"""Issue 23, item 10: the reference set's 65/15/20 split, handed to the user, and the set kept in the artifact store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

torch = pytest.importorskip("torch")
# The imports below load torch: after the skip, hence their E402 noqa.
from shiftwatch.collector import registry  # noqa: E402
from shiftwatch.errors import Invalid  # noqa: E402
from shiftwatch.retrain.contract import InputSpec  # noqa: E402
from shiftwatch.retrain.contract_family import load_reference_set  # noqa: E402
from shiftwatch.retrain.model_contract import TorchContract  # noqa: E402
from shiftwatch.retrain.own_model import register_torch_model  # noqa: E402
from shiftwatch.retrain.pipeline import family_for  # noqa: E402
from shiftwatch.retrain.reference_set import split_reference_set  # noqa: E402
from shiftwatch.retrain.tables import Artifact  # noqa: E402
from tests.detectors.test_check import run_cli  # noqa: E402
from tests.support import own_model as support  # noqa: E402


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return support.write_reference(tmp_path_factory.mktemp("user") / "reference.npz", n=200)


def test_the_documented_split_is_the_one_retraining_uses_and_the_cli_writes_it(reference, tmp_path) -> None:
    raw = split_reference_set(reference)
    assert (len(raw.train), len(raw.val), len(raw.test)) == (130, 30, 40)  # 65/15/20 of 200
    assert raw.train.images.dtype == np.uint8 and raw.train.images.shape[1:] == (56, 56, 3)
    retraining = load_reference_set(reference, InputSpec.from_dict(support.INPUT_SPEC))
    for name in ("train", "val", "test"):
        ours, theirs = getattr(raw, name), getattr(retraining, name)
        assert np.array_equal(ours.labels, theirs.labels)
        assert np.allclose(InputSpec.from_dict(support.INPUT_SPEC).from_uint8(ours.images), theirs.images)

    written = run_cli("retrain", "split-reference", str(reference), "--out", str(tmp_path / "splits"), "--json", env={})
    assert written.returncode == 0, written.stderr
    answer = json.loads(written.stdout)
    assert {name: entry["n"] for name, entry in answer.items()} == {"train": 130, "val": 30, "test": 40}
    with np.load(answer["train"]["path"]) as train:
        assert np.array_equal(train["images"], raw.train.images) and np.array_equal(train["labels"], raw.train.labels)
    missing = run_cli("retrain", "split-reference", str(tmp_path / "nope.npz"), "--out", str(tmp_path), env={})
    assert missing.returncode == 2 and "nope.npz does not exist" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1


def test_registration_copies_the_reference_set_so_moving_the_file_breaks_nothing(db, settings, reference, tmp_path):
    users_copy = tmp_path / "reference.npz"
    users_copy.write_bytes(reference.read_bytes())
    weights = tmp_path / "weights.pt"
    torch.manual_seed(0)
    torch.save(support.build().state_dict(), weights)
    with db.session() as session:
        register_torch_model(session, settings.data_dir, "shapes", support.CLASS_NAMES, "v1",
                             TorchContract(support.FACTORY, reference_set=str(users_copy)), weights, support.INPUT_SPEC)  # fmt: skip
    users_copy.unlink()  # the user tidies up

    with db.session() as session:
        base = registry.get_version(session, "shapes", "v1")
        kept = base.report["contract"]["reference_set"]
        stored = session.scalar(select(Artifact).where(Artifact.kind == "reference"))
        splits = family_for(base, settings.data_dir).reference()
    assert kept == stored.path and kept.startswith("artifacts/") and kept.endswith(".npz")
    assert (settings.data_dir / kept).read_bytes() == reference.read_bytes()
    assert len(splits.train) == 130 and splits.train.images.shape[1:] == (3, 48, 48)


def test_a_broken_reference_set_is_refused_at_registration_and_nothing_is_recorded(db, settings, tmp_path):
    broken = tmp_path / "reference.npz"
    np.savez(broken, pictures=np.zeros((20, 4, 4, 3), np.uint8))
    weights = tmp_path / "weights.pt"
    torch.save(support.build().state_dict(), weights)
    with db.session() as session, pytest.raises(Invalid, match=r"not an \.npz with 'images' and 'labels'"):
        register_torch_model(session, settings.data_dir, "shapes", support.CLASS_NAMES, "v1",
                             TorchContract(support.FACTORY, reference_set=str(broken)), weights, support.INPUT_SPEC)  # fmt: skip
    with db.session() as session:
        assert registry.list_models(session) == [] and session.scalar(select(Artifact)) is None
