"""ONNX-only int8 (``shiftwatch retrain quantize``): is int8 faster than fp32 on this CPU, graph by graph?

The same steps the command runs (retrain/quantize.py PTQ calibrated on the graph's inputs,
retrain/measure.py's compare_latency: CPU time, one thread, fp32 and int8 calls interleaved,
median) on graphs that end in a softmax, registered with ``--outputs probabilities``:

- ``colour``: the tests' 3x12x12 colour classifier (GlobalAveragePool + two Gemms, opset 11):
  almost no arithmetic, so int8's quantize/dequantize work is all cost;
- ``resnet_quarter``: shiftwatch.examples.resnet:build_quarter at 3x96x96 (ResNet-18 at width
  0.25, 0.7 M parameters), exported at opset 17 with a Softmax appended.

- any graph of yours: ``--onnx PATH --embedding-output TENSOR --shape C,H,W [--outputs logits]``
  (e.g. the text-direction classifier in the rapidocr_onnxruntime wheel:
  ``--onnx .../ch_ppocr_mobile_v2.0_cls_infer.onnx --embedding-output reshape2_0.tmp_0 --shape 3,48,192``).

Calibration and agreement use seeded uniform random inputs, so the agreement column says how
stable int8's answers are, not its accuracy. Prints a table and writes bench/results/onnx_int8.json.

    python bench/onnx_int8.py [--repeats 40] [--onnx PATH --embedding-output T --shape C,H,W]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from shiftwatch.retrain.int8_candidate import SLOWER_TOLERANCE
from shiftwatch.retrain.measure import compare_latency
from shiftwatch.retrain.onnx_contract import adapt_onnx
from shiftwatch.retrain.quantize import quantize_int8
from shiftwatch.retrain.runtime import OnnxClassifier

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
from machine import machine_facts

from tests.support import softmax_graph

OUT = Path(__file__).parent / "results" / "onnx_int8.json"


def resnet_quarter_with_softmax(folder: Path) -> tuple[Path, str]:
    """ResNet-18 at width 0.25, seeded weights, exported with a Softmax after the head; its embedding tensor."""
    import torch

    from shiftwatch.examples.resnet import build_quarter

    torch.manual_seed(0)
    model = torch.nn.Sequential(build_quarter(), torch.nn.Softmax(dim=1)).eval()
    path = folder / "resnet_quarter.onnx"
    torch.onnx.export(model, (torch.zeros(1, 3, 96, 96),), str(path), dynamo=False, input_names=["input"],
                      output_names=["prob"], dynamic_axes={"input": {0: "n"}, "prob": {0: "n"}}, opset_version=17)  # fmt: skip
    import onnx

    graph = onnx.load(str(path)).graph
    flatten = [node.output[0] for node in graph.node if node.op_type == "Flatten"][-1]
    return path, flatten


def measure(name: str, graph: Path, embedding: str, shape: tuple[int, ...], repeats: int, folder: Path,
            logits: str | None = "prob", outputs: str = "probabilities") -> dict[str, object]:  # fmt: skip
    adapted = adapt_onnx(graph, folder / f"{name}.adapted.onnx", logits_output=logits, embedding_output=embedding,
                         outputs=outputs, input_shape=shape)  # fmt: skip
    inputs = np.random.default_rng(0).random((256, *shape), dtype=np.float32)
    int8 = quantize_int8(adapted, folder / f"{name}.int8.onnx", inputs)
    fp32_answers = OnnxClassifier(adapted).predict(inputs).predicted_class
    int8_answers = OnnxClassifier(int8).predict(inputs).predicted_class
    latency = compare_latency(adapted, int8, inputs, repeats=repeats)
    slower = any(row["ratio"] > 1 + SLOWER_TOLERANCE for row in latency.values())
    return {
        "input": list(shape), "fp32_bytes": adapted.stat().st_size, "int8_bytes": int8.stat().st_size,
        "top1_agreement_random_inputs": round(float((fp32_answers == int8_answers).mean()), 4),
        "cpu_ms": latency, "quantize_would": "decline (slower)" if slower else "ship int8",
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--onnx", type=Path, help="also measure this graph")
    parser.add_argument("--embedding-output", help="its embedding tensor")
    parser.add_argument("--shape", help="its input C,H,W")
    parser.add_argument("--outputs", default="probabilities", help="what its first output holds: logits or probabilities")
    args = parser.parse_args()
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        colour = softmax_graph.build(folder / "colour.onnx")
        results["colour"] = measure("colour", colour, "hidden", tuple(softmax_graph.INPUT_SPEC["shape"]), args.repeats, folder)
        resnet, flatten = resnet_quarter_with_softmax(folder)
        results["resnet_quarter"] = measure("resnet_quarter", resnet, flatten, (3, 96, 96), args.repeats, folder)
        if args.onnx:
            shape = tuple(int(d) for d in args.shape.split(","))
            results[args.onnx.name] = measure(args.onnx.stem, args.onnx, args.embedding_output, shape, args.repeats, folder,
                                              logits=None, outputs=args.outputs)  # fmt: skip
    table = Table("graph", "batch", "fp32 ms", "int8 ms", "int8/fp32", "quantize would")
    for name, row in results.items():
        for batch, timing in row["cpu_ms"].items():  # type: ignore[index]
            table.add_row(name, batch, f"{timing['baseline_ms']:.3f}", f"{timing['candidate_ms']:.3f}", f"{timing['ratio']:.2f}",
                          str(row["quantize_would"]))  # fmt: skip
    Console(width=120).print(table)
    OUT.write_text(json.dumps({"machine": machine_facts(), "repeats": args.repeats, "graphs": results}, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
