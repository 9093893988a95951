"""The best model under a budget, measured: ``retrain/budget.py``'s recipe grid on two models, the Pareto front, the choice.

Models: the ResNet-18 example at a quarter width (3x96x96 textured digits, shiftwatch.examples.resnet)
and a network a user writes (``build`` below, 3x48x48, registered by its import path as any user's
is). Each is trained from scratch, then every recipe of ``DEFAULT_GRID`` goes through the same
``compress`` a retraining run uses; each artifact is timed at batch 1 on the CPU provider (CPU time of one
intra-op thread, as the gateway serves) and scored on the validation split. Then the choice under
three budgets (tight, middle, loose) from the same measurements. Writes
bench/results/budget_search.json and the plots bench/results/budget_search_<model>_{latency,size}.svg.

    python bench/budget_search.py [--images 3000] [--epochs 4]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from shiftwatch.console.pareto_plot import charts
from shiftwatch.examples import resnet, textured_digits
from shiftwatch.examples.digits import stratified_split
from shiftwatch.retrain.budget import DEFAULT_GRID, Budget, Recipe, search
from shiftwatch.retrain.compress import CompressConfig, CompressionResult, compress
from shiftwatch.retrain.contract import InputSpec
from shiftwatch.retrain.contract_family import ContractFamily, DistillConfig, PruneConfig
from shiftwatch.retrain.model_contract import TorchContract
from shiftwatch.retrain.torch_contract import build as build_contract
from shiftwatch.retrain.trainer import TrainConfig, deterministic, fit

sys.path.insert(0, str(Path(__file__).parent))
from machine import load_average, write_result

USER_SPEC = {"shape": [3, 48, 48], "resize": "stretch", "channel_order": "rgb", "scale": "0..1", "mean": 0.5, "std": 0.25}


class UserNet(nn.Module):
    """What a user brings: three conv blocks and a linear head; ``width`` scales the channels (distillation's student)."""

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        c1, c2, c3 = (max(4, round(c * width)) for c in (32, 64, 128))
        block = lambda cin, cout: nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2))
        self.features = nn.Sequential(block(3, c1), block(c1, c2), block(c2, c3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(c3, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def build(width: float = 1.0) -> UserNet:
    return UserNet(width)


MODELS = {
    "resnet18_quarter": (resnet.QUARTER_FACTORY, resnet.INPUT_SPEC, 96),
    "user_cnn": ("budget_search:build", USER_SPEC, 48),
}


def measure_model(name: str, args: argparse.Namespace, workdir: Path) -> dict:
    factory, spec_dict, side = MODELS[name]
    started = time.monotonic()
    spec = InputSpec.from_dict(spec_dict)
    raw, labels = textured_digits.render(args.images, seed=0, size=side)
    splits = stratified_split(spec.from_uint8(raw), labels, seed=0)
    family = ContractFamily(TorchContract(factory), spec)
    with deterministic(0):
        model = build_contract(family.contract)
    train = TrainConfig(epochs=args.epochs, lr=3e-3, seed=0, schedule="onecycle")
    fit(model, splits.train.images, splits.train.labels, train)
    trained_s = time.monotonic() - started
    base = CompressConfig(prune=PruneConfig(finetune_epochs=2), distill=DistillConfig(epochs=args.epochs))

    def compress_recipe(recipe: Recipe, config: CompressConfig, folder: Path) -> CompressionResult:
        return compress(model, splits.train.images, splits.train.labels, splits.val.images, splits.val.labels,
                        splits.train.images, folder, train, config, family=family)  # fmt: skip

    loose = Budget(latency_ms=1e6, size_mb=1e6)
    found, _ = search(compress_recipe, base, loose, (splits.val.images, splits.val.labels), workdir / name,
                      grid=DEFAULT_GRID, repeats=args.repeats, progress=lambda s, d, t: print(f"  {name}: recipe {d}/{t}", flush=True))  # fmt: skip
    rows = found.candidates
    fp32 = next(m for m in rows if m.recipe == "fp32")
    # Three budgets from the measurements: the fp32 model's latency and size halved, at 0.8x, and fp32's own.
    choices, plotted = {}, found
    for label, factor in (("tight", 0.5), ("middle", 0.8), ("loose", 1.0)):
        again = found.under(Budget(latency_ms=round(fp32.latency_ms * factor, 3), size_mb=round(fp32.size_mb * factor, 4)))
        best = next((m for m in again.candidates if m.recipe == again.chosen), None)
        choices[label] = {"budget": again.budget.describe(), "chosen": again.chosen,
                          "accuracy": best.accuracy if best else None,
                          "accuracy_vs_fp32_points": round(100 * (best.accuracy - fp32.accuracy), 2) if best else None,
                          "refusal": None if best else again.refusal()}  # fmt: skip
        if label == "middle":
            plotted = again
    plots = []
    for axis, chart in zip(("latency", "size"), charts(plotted.as_dict()), strict=True):  # the middle budget's choice
        plots.append(Path(__file__).parent / "results" / f"budget_search_{name}_{axis}.svg")
        plots[-1].write_text(chart + "\n")
    return {
        "factory": factory, "input_shape": list(spec.shape), "images": args.images, "epochs": args.epochs,
        "train_s": round(trained_s, 1), "search_s": round(time.monotonic() - started - trained_s, 1),
        "candidates": found.as_dict()["candidates"], "skipped": found.skipped, "choices": choices, "plots": [path.name for path in plots],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3000, help="textured digits rendered per model (65/15/20 split)")
    parser.add_argument("--epochs", type=int, default=4, help="training epochs (and distillation epochs)")
    parser.add_argument("--repeats", type=int, default=50, help="timed calls per artifact")
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    load_at_start = load_average()
    with tempfile.TemporaryDirectory(prefix="shiftwatch-bench-budget-") as tmp:
        results = {name: measure_model(name, args, Path(tmp)) for name in args.models.split(",")}
    headline = {f"{name}_{label}": (r["choices"][label]["chosen"], r["choices"][label]["accuracy_vs_fp32_points"])
                for name, r in results.items() for label in ("tight", "middle")}  # fmt: skip
    write_result("budget_search", {"load_average_at_start": load_at_start, "headline": headline,
                                   "method": "CPU provider, 1 intra-op thread, batch 1, median calling-thread CPU time of --repeats calls; "
                                             "accuracy on the validation split", "models": results},
                 ("headline",))


if __name__ == "__main__":
    main()
