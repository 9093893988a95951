"""ONNX Runtime, from whichever flavour is installed: the one place that imports it.

The flavours are extras, ``shiftwatch[cpu]`` (onnxruntime), ``[openvino]`` (onnxruntime-openvino)
and ``[gpu]`` (onnxruntime-gpu). All three install the same ``onnxruntime`` package, so none is a
hard dependency (installing one silently removes another's providers); without any, the features
that run a model answer with the line that says what to install, and the rest of the service runs.
"""

from shiftwatch.extras import MissingExtra

try:
    import onnxruntime
except ImportError:
    raise MissingExtra(
        "ONNX Runtime is not installed: pip install 'shiftwatch[cpu]' "
        "(or 'shiftwatch[openvino]' for Intel CPUs, 'shiftwatch[gpu]' for CUDA and TensorRT)"
    ) from None

__all__ = ["onnxruntime"]
