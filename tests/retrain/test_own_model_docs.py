"""Issue 23 (10): docs/own-model.md's plain-PyTorch factory (no timm, no torchvision) registers as written."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from shiftwatch.collector import registry

DOC = Path(__file__).resolve().parents[2] / "docs" / "own-model.md"


def factory_block() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    (block,) = [b for b in blocks if b.startswith("# mypkg/nets.py")]
    return block


def test_the_documented_factory_imports_neither_timm_nor_torchvision() -> None:
    assert not re.search(r"^\s*(import|from)\s+(timm|torchvision)\b", factory_block(), flags=re.M)


@pytest.mark.slow
def test_the_documented_factory_registers_and_serves_its_embedding(db, settings, tmp_path: Path, monkeypatch) -> None:
    torch = pytest.importorskip("torch")
    from shiftwatch.retrain.model_contract import TorchContract
    from shiftwatch.retrain.own_model import register_torch_model

    package = tmp_path / "mypkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "nets.py").write_text(factory_block())
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "mypkg", raising=False)
    from mypkg.nets import build  # type: ignore[import-not-found]  # written just above

    weights = tmp_path / "w.pt"
    torch.save(build().state_dict(), weights)
    with db.session() as session:
        row = register_torch_model(session, settings.data_dir, "parts", ["ok", "scratch", "dent"], "v1",
                                   TorchContract("mypkg.nets:build"), weights, {"shape": [3, 64, 64]})  # fmt: skip
        assert (row.state, row.embedding_dim) == ("production", 64)  # the head's input: 64 channels at width 1
        assert registry.get_version(session, "parts", "v1").artifact_path
