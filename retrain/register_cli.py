"""``shiftwatch retrain register``: bring your own model (a PyTorch factory + weights, or an ONNX file)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from shiftwatch.cli_context import open_db, settings_or_exit
from shiftwatch.errors import Invalid, Unavailable

app = typer.Typer()


def read_input_spec(text: str) -> dict[str, Any]:
    """``--input-spec``: a JSON object, or the path of a .json file holding one."""
    source = Path(text)
    raw = source.read_text() if text.strip().endswith(".json") and source.is_file() else text
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise Invalid("--input-spec", f"is neither a JSON object nor a readable .json file ({exc.msg})") from None
    if not isinstance(value, dict):
        raise Invalid("--input-spec", "must be a JSON object such as {\"shape\": [3, 224, 224], \"mean\": [...]}")
    return value


def require_torch() -> None:
    """Retraining and torch models need the train extra; without it, say so (exit 2) instead of a traceback."""
    try:
        import torch  # noqa: F401 - imported only to learn whether the extra is installed
    except ModuleNotFoundError:
        raise Unavailable("retraining needs the train extra (torch): pip install 'shiftwatch[train]'") from None


@app.command("register")
def register_command(
    model: str = typer.Option(..., "--model", help="model name"),
    classes: str = typer.Option(..., "--classes", help="comma-separated class names, in logit order"),
    version: str = typer.Option("v1", "--version"),
    input_spec: str = typer.Option(..., "--input-spec", help="JSON (or a .json file): shape, resize, channel_order, scale, mean, std"),
    factory: str | None = typer.Option(None, "--factory", help="package.module:build returning an nn.Module"),
    weights: Path | None = typer.Option(None, "--weights", help="the factory model's state_dict (.pt)"),
    onnx: Path | None = typer.Option(None, "--onnx", help="an ONNX file instead of a factory"),
    embedding_layer: str | None = typer.Option(None, help="torch: layer whose output is the embedding (default: input of the last Linear)"),
    embedding_output: str | None = typer.Option(None, help="onnx: the tensor to log as the embedding (default: input of the last Gemm/MatMul)"),
    logits_output: str | None = typer.Option(None, help="onnx: the logits tensor (default: the first output)"),
    outputs: str = typer.Option("logits", "--outputs", help="onnx: what that tensor holds: logits, or probabilities (a softmax already applied)"),
    reference_set: Path | None = typer.Option(None, help="torch: .npz of uint8 images + labels that retraining keeps"),
    trainer: str | None = typer.Option(None, help="torch: package.module:train(module, images, labels, config)"),
    student_factory: str | None = typer.Option(None, help="torch: distillation's student (default: factory(width=...))"),
) -> None:
    """Register a model under the contract; checked before anything is recorded (exit 2 on bad input)."""
    if (factory is None) == (onnx is None):
        raise Invalid("--factory/--onnx", "give exactly one: a PyTorch factory with --weights, or an ONNX file")
    if factory is not None and weights is None:
        raise Invalid("--weights", "is required with --factory")
    if factory is not None and outputs != "logits":
        raise Invalid("--outputs", "is for --onnx graphs; a PyTorch factory's forward must return logits (drop a final softmax)")
    spec = read_input_spec(input_spec)
    names = [name.strip() for name in classes.split(",") if name.strip()]
    settings = settings_or_exit()
    db = open_db(settings.database_url, migrate=True)
    with db.session() as session:
        if factory is not None:
            require_torch()
            from shiftwatch.retrain.model_contract import TorchContract
            from shiftwatch.retrain.own_model import register_torch_model

            contract = TorchContract(factory, embedding_layer, student_factory, trainer,
                                     str(reference_set.resolve()) if reference_set else None)  # fmt: skip
            row = register_torch_model(session, settings.data_dir, model, names, version, contract, weights, spec)  # type: ignore[arg-type]  # --weights checked above
        else:
            from shiftwatch.retrain.own_model import register_onnx_model

            row = register_onnx_model(session, settings.data_dir, model, names, version, onnx, spec,  # type: ignore[arg-type]  # --onnx given: checked above
                                      logits_output=logits_output, embedding_output=embedding_output, outputs=outputs)  # fmt: skip
        registered = {"model": model, "version": row.version, "state": row.state,
                      "embedding_dim": row.embedding_dim, "input_spec": row.input_spec}  # fmt: skip
    typer.echo(json.dumps(registered, indent=2))  # after the commit: a reader that stops early cannot undo it
