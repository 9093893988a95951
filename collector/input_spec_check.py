"""``input_spec`` checked where it is registered and again before the gateway serves it (issue 27, item 4).

A version registered with ``shape: [1, 6000, 6000]`` made each 32x32 prediction allocate a
6000x6000 float tensor. The spec must parse (``InputSpec``), its height x width must stay within
``gateway_max_image_pixels`` (the bound on images the gateway decodes), and its (C, H, W) must
equal the ONNX input's fixed dims, so the gateway never builds a tensor the model cannot take.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shiftwatch.errors import Invalid
from shiftwatch.retrain.contract import InputSpec


def onnx_input_dims(path: Path) -> list[int | None] | None:
    """The fixed dims of the artifact's one graph input (None where dynamic); None if it has not exactly one."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    weights = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in weights]
    if len(inputs) != 1:
        return None
    return [
        d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
        for d in inputs[0].type.tensor_type.shape.dim
    ]


def check_input_spec(
    input_spec: dict[str, Any] | None, *, max_pixels: int, onnx_dims: Sequence[int | None] | None
) -> InputSpec:
    """The parsed spec, or ``Invalid`` naming ``input_spec.shape`` when it is too large or does not fit the model."""
    spec = InputSpec.from_dict(input_spec)
    _, height, width = spec.shape
    if height * width > max_pixels:
        raise Invalid(
            "input_spec.shape",
            f"{height}x{width} is {height * width:,} pixels, over the gateway's limit of {max_pixels:,} "
            "(SHIFTWATCH_GATEWAY_MAX_IMAGE_PIXELS)",
        )
    if onnx_dims is None:
        return spec
    dims = list(onnx_dims)
    model_chw = dims[1:] if len(dims) == 4 else dims if len(dims) == 3 else None
    if model_chw is None:  # not an image model: the gateway refuses to serve it when it loads it
        return spec
    for name, declared, fixed in zip(("channels", "height", "width"), spec.shape, model_chw):
        if fixed is not None and fixed != declared:
            shown = ["?" if d is None else d for d in model_chw]
            raise Invalid(
                "input_spec.shape",
                f"{list(spec.shape)} does not match the artifact's input {shown}: {name} {declared} != {fixed}",
            )
    return spec
