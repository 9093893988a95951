"""Shared pieces of the rollout tests: tiny real ONNX classifiers and registered versions that use them."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from shiftwatch.collector import registry
from shiftwatch.db import Database
from shiftwatch.settings import Settings

EMBEDDING_DIM = 16
CLASSES = 10


def build_classifier(
    path: Path, seed: int = 0, *, noise: float = 0.0, broken: bool = False, side: int = 32
) -> str:
    """image [N,1,32,32] -> Flatten -> Gemm -> Relu = embedding [N,16] -> MatMul -> logits [N,10]; returns sha256.

    ``noise`` perturbs the head (a slightly different candidate); ``broken`` zeroes it (uniform, useless
    outputs); ``side`` != 32 makes a graph that refuses the 32x32 inputs the registry row promises.
    """
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.05, (side * side, EMBEDDING_DIM)).astype(np.float32)
    b1 = np.full(EMBEDDING_DIM, 0.1, dtype=np.float32)
    w2 = rng.normal(0, 1.0, (EMBEDDING_DIM, CLASSES)).astype(np.float32)
    if noise:
        w2 = w2 + np.random.default_rng(seed + 1000).normal(0, noise, w2.shape).astype(np.float32)
    if broken:
        w2 = np.zeros_like(w2)
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["image"], ["flat"], axis=1),
            helper.make_node("Gemm", ["flat", "w1", "b1"], ["hidden"]),
            helper.make_node("Relu", ["hidden"], ["embedding"]),
            helper.make_node("MatMul", ["embedding", "w2"], ["logits"]),
        ],
        "tiny_digits",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, side, side])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", CLASSES]),
            helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", EMBEDDING_DIM]),
        ],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(b1, "b1"), numpy_helper.from_array(w2, "w2")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = model.SerializeToString()
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def add_version(
    db: Database, settings: Settings, version: str, *, state: str = "candidate", sha256: str | None = None, **build
) -> int:
    """Build an ONNX file under data_dir/models and register it as ``digits:<version>``; returns its id."""
    relative = f"models/{version}.onnx"
    actual = build_classifier(settings.data_dir / relative, **build)
    with db.session() as session:
        registry.register_model(session, "digits", [str(i) for i in range(CLASSES)])
        row = registry.register_version(
            session,
            "digits",
            version,
            embedding_dim=EMBEDDING_DIM,
            artifact_path=relative,
            artifact_sha256=sha256 or actual,
            input_spec={"shape": [1, 32, 32], "dtype": "float32", "scale": "0..1"},
            state=state,
            report={"compression": {"method": "none", "size_bytes": (settings.data_dir / relative).stat().st_size}},
        )
        return row.id


def png_image(seed: int) -> bytes:
    pixels = (np.random.default_rng(seed).random((32, 32)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def predict_burst(url: str, headers: list[dict[str, str]]) -> list:
    """POST ``png_image(i)`` with ``headers[i]`` for every i, all at once over one client; the responses in order."""
    import asyncio

    import httpx

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            return await asyncio.gather(
                *[
                    client.post(
                        "/v1/models/digits/predict", content=png_image(i), headers={"content-type": "image/png", **extra}
                    )
                    for i, extra in enumerate(headers)
                ]
            )

    return asyncio.run(burst())


def post_and_drain(api, model: str, bodies: list[bytes], headers: list[dict[str, str]]) -> list[dict]:
    """POST each PNG body with its headers, then wait until shadow copies and logs are written; the answers."""
    answers = []
    for body, extra in zip(bodies, headers, strict=True):
        response = api.post(f"/v1/models/{model}/predict", content=body, headers={"content-type": "image/png", **extra})
        assert response.status_code == 200, response.text
        answers.append(response.json())
    gateway = api.app.state.gateway
    api.portal.call(gateway.drain_shadow)
    assert gateway.writer.flush()
    return answers
