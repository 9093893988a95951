"""``shiftwatch retrain``: labeled samples in, a registered compressed candidate out; ``bootstrap`` and ``runs`` beside it."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from shiftwatch.cli_context import open_db, settings_or_exit
from shiftwatch.cli_output import JSON_OPTION, emit_json, emit_table
from shiftwatch.errors import Invalid
from shiftwatch.retrain import register_cli
from shiftwatch.retrain.register_cli import require_torch

if TYPE_CHECKING:  # the CLI imports lazily: `shiftwatch --help` stays fast
    from rich.progress import Progress


app = typer.Typer(
    invoke_without_command=True,
    no_args_is_help=False,
    help="Retrain from labeled production samples, compress to ONNX Runtime, register a candidate.",
)

_RELATIVE = re.compile(r"^(\d+)([dhm])$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def parse_since(text: str | None, now: datetime | None = None) -> datetime | None:
    """``2026-11-20``, ``2026-11-20T08:00:00+00:00`` (naive means UTC) or relative ``7d`` / ``12h`` / ``30m``."""
    if text is None:
        return None
    match = _RELATIVE.match(text.strip())
    if match:
        now = now or datetime.now(UTC)
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise Invalid("--since", f"{text!r} is neither an ISO date/time nor a relative age like 7d, 12h, 30m") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class _Bars:
    """One rich progress bar per pipeline step, created when the step first reports."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def __call__(self, step: str, done: int, total: int) -> None:
        if step not in self.tasks:
            self.tasks[step] = self.progress.add_task(step, total=total)
        self.progress.update(self.tasks[step], completed=done, total=total)


def _progress() -> Progress:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(  # on stderr: stdout carries the JSON a script reads
        TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=False,
        console=Console(stderr=True),
    )


def _summary(outcome: Any) -> dict[str, Any]:
    report = outcome.report
    return {
        "status": outcome.status,
        "training_run_id": outcome.run_id,
        "version": outcome.version,
        "gate": outcome.gate.as_dict() if outcome.gate else None,
        "accuracy_old": report.get("accuracy_old"),
        "accuracy_new": report.get("accuracy_new"),
        "size_bytes": report.get("size_bytes"),
        "latency_ms": report.get("latency_ms"),
        "compression_steps": report.get("compression_steps"),
        # "int8 from ptq", or "fp32: int8 declined after ptq (...) and qat+ptq (...)"
        "quantization": ((report.get("compression") or {}).get("quantization") or {}).get("outcome"),
        "budget_search": report.get("budget_search"),
    }


def _budget_table(found: dict[str, Any]) -> None:
    """The recipes as measured, on stderr (stdout carries the JSON): the chosen one, the Pareto front, what missed."""
    from rich.console import Console
    from rich.table import Table

    budget = found["budget"]
    table = Table(title=f"budget: latency_ms={budget['latency_ms']}, size_mb={budget['size_mb']} "
                        f"({budget['provider']}, batch {budget['batch']})")  # fmt: skip
    for column in ("recipe", "accuracy", "latency ms", "size MB", "Pareto", "within budget"):
        table.add_column(column)
    for row in found["candidates"]:
        mark = "chosen" if row["recipe"] == found["chosen"] else ("yes" if row["fits"] else "; ".join(row["misses"]))
        table.add_row(row["recipe"], f"{row['accuracy']:.3f}", f"{row['latency_ms']:.2f}", f"{row['size_mb']:.2f}",
                      "*" if row["pareto"] else "", mark)  # fmt: skip
    for recipe, why in found["skipped"].items():
        table.add_row(recipe, "-", "-", "-", "", f"skipped: {why}")
    Console(stderr=True).print(table)


def _budget_page(data_dir: Path, run_id: int | None, found: dict[str, Any]) -> Path:
    """The two Pareto plots as one self-contained HTML file under DATA_DIR/reports (the console shows them too)."""
    from html import escape

    from shiftwatch.console.pareto_plot import charts

    path = data_dir / "reports" / f"training-run-{run_id}-budget.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    title = f"Training run {run_id}: candidates under budget, chosen {found['chosen'] or 'none'}"
    path.write_text(f"<!doctype html><meta charset=utf-8><title>{escape(title)}</title><h1>{escape(title)}</h1>"
                    + "".join(charts(found)))  # fmt: skip
    return path


@app.callback()
def retrain_command(
    ctx: typer.Context,
    model: str | None = typer.Option(None, "--model", help="model name (required unless a subcommand is given)"),
    since: str | None = typer.Option(None, help="only samples labeled from this time: ISO date/time or 7d, 12h, 30m"),
    compress: str = typer.Option("distill,prune,ptq", help="comma-separated steps: distill, prune, qat, ptq, or none"),
    seed: int = typer.Option(0, help="seed of the data split, initialisation and batch order"),
    max_old_drop: float = typer.Option(1.0, min=0.0, help="gate: top-1 points the candidate may lose on reference data"),
    min_new_gain: float = typer.Option(0.0, min=0.0, help="gate: top-1 points it must gain on held-out production data"),
    reference_set: Path | None = typer.Option(None, help="a contract model's reference .npz (default: the registered one)"),
    epochs: int = typer.Option(5, min=1, help="fine-tuning epochs from the production weights"),
    lr: float = typer.Option(1e-3, min=1e-7, max=1.0, help="fine-tuning learning rate (Adam)"),
    production_share: float = typer.Option(
        0.5, min=0.01, max=1.0, help="share of each fine-tuning epoch that is labeled production samples"),
    budget: str | None = typer.Option(
        None, help="latency_ms=16,size_mb=4[,provider=cpu|openvino|tensorrt|cuda,batch=1]: compress a recipe grid "
        "instead of --compress and register the most accurate artifact within budget"),
) -> None:
    """Retrain MODEL's production version on reference + labeled data; register a compressed candidate."""
    if ctx.invoked_subcommand is not None:
        return
    from shiftwatch.retrain.compress import CompressConfig, parse_steps

    if not model:
        raise Invalid("--model", "is required, e.g. shiftwatch retrain --model digits")
    steps = parse_steps(compress)
    since_at = parse_since(since)
    from shiftwatch.retrain.budget import Budget

    limits = Budget.parse(budget) if budget is not None else None
    require_torch()
    from shiftwatch.collector import registry
    from shiftwatch.retrain.labeled import labeled_data, recent_inputs
    from shiftwatch.retrain.pipeline import RetrainConfig, production_base, retrain
    from shiftwatch.retrain.trainer import TrainConfig
    from shiftwatch.retrain.training import GateConfig, MixPolicy

    settings = settings_or_exit()
    db = open_db(settings.database_url, migrate=True)
    with db.session() as session:
        registry.get_model(session, model)
        base, _ = production_base(session, settings.data_dir, model)
        labeled = labeled_data(session, settings.data_dir, model, since=since_at)
        calibration = recent_inputs(session, settings.data_dir, base.id)
    config = RetrainConfig(
        seed=seed,
        finetune=TrainConfig(epochs=epochs, lr=lr),
        mix=MixPolicy(production_share=production_share),
        compress=replace(CompressConfig(), steps=steps),
        gate=GateConfig(max_old_drop=max_old_drop / 100, min_new_gain=min_new_gain / 100),
        budget=limits,
    )
    with _progress() as progress:
        outcome = retrain(
            db, settings.data_dir, model, labeled, config, since=since_at,
            calibration_images=calibration if len(calibration) else None, progress=_Bars(progress),
            reference_set=reference_set,
        )  # fmt: skip
    typer.echo(json.dumps(_summary(outcome), indent=2))
    if "budget_search" in outcome.report:
        _budget_table(outcome.report["budget_search"])
        typer.echo(f"Pareto front: {_budget_page(settings.data_dir, outcome.run_id, outcome.report['budget_search'])}", err=True)
    if outcome.status != "succeeded":
        from shiftwatch.retrain.pipeline import fallback_note

        refusal = outcome.report.get("budget_refusal")
        reasons = [*(outcome.gate.reasons if outcome.gate else ()), *([refusal] if refusal else []), *fallback_note(outcome.report)]
        typer.echo(f"rejected: {'; '.join(reasons)}", err=True)
        raise typer.Exit(1)


@app.command("quantize")
def quantize_command(
    model: str = typer.Option(..., "--model", help="model name"),
    version: str | None = typer.Option(None, "--version", help="the fp32 version to quantize (default: production)"),
    min_agreement: float = typer.Option(0.97, min=0.0, max=1.0, help="share of stored inputs int8 must give fp32's top-1 on"),
    max_drop: float = typer.Option(1.0, min=0.0, help="top-1 points int8 may lose on labeled samples"),
    allow_slower: bool = typer.Option(False, "--allow-slower", help="register int8 even when it is slower than fp32 on this CPU"),
    seed: int = typer.Option(0, help="seed of the calibration sample"),
    provider: str = typer.Option("cpu", "--provider", help="the provider the int8 graph is for: cpu (CPU-fused), "
                                 "openvino, tensorrt or cuda (plain QDQ, timed on that provider)"),
) -> None:
    """int8 PTQ of a version's own graph (any ONNX model), calibrated on the inputs it served: a candidate, or why not."""
    from shiftwatch.retrain.int8_candidate import Int8Bar, quantize_version
    from shiftwatch.retrain.quantize import QuantizeConfig

    settings = settings_or_exit()
    db = open_db(settings.database_url, migrate=True)
    outcome = quantize_version(db, settings.data_dir, model, version=version,
                               bar=Int8Bar(min_agreement, max_drop / 100, allow_slower), config=QuantizeConfig(seed=seed, target=provider))  # fmt: skip
    report = outcome.report
    typer.echo(json.dumps({
        "status": outcome.status, "training_run_id": outcome.run_id, "version": outcome.version,
        "base_version": outcome.base_version, "quantization": report["quantization"],
        "latency_cpu_ms": report["latency_cpu_ms"], "size_bytes": report["size_bytes"],
        "size_bytes_fp32_onnx": report["size_bytes_fp32_onnx"],
    }, indent=2))  # fmt: skip
    if outcome.status != "succeeded":
        typer.echo(f"rejected: {'; '.join(outcome.reasons)}; {outcome.base_version} keeps serving fp32", err=True)
        raise typer.Exit(1)


@app.command("bootstrap")
def bootstrap_command(
    model: str = typer.Option("digits", "--model", help="name to register the reference model under"),
    compress: str = typer.Option("distill,prune,ptq", help="comma-separated steps, or none"),
    seed: int = typer.Option(0),
    epochs: int = typer.Option(12, min=1, help="training epochs of the reference CNN"),
) -> None:
    """Train the example digits CNN (shiftwatch.examples.digits_cnn) and register it (production if the model has none yet)."""
    from shiftwatch.retrain.compress import CompressConfig, parse_steps

    steps = parse_steps(compress)
    require_torch()
    from shiftwatch.examples import digits_cnn
    from shiftwatch.examples.digits import CLASS_NAMES
    from shiftwatch.retrain.pipeline import RetrainConfig, bootstrap
    from shiftwatch.retrain.trainer import TrainConfig

    settings = settings_or_exit()
    db = open_db(settings.database_url, migrate=True)
    config = RetrainConfig(seed=seed, compress=replace(CompressConfig(), steps=steps))
    with _progress() as progress:
        outcome = bootstrap(db, settings.data_dir, model, CLASS_NAMES, digits_cnn.family(), config,
                            reference=TrainConfig(epochs=epochs, seed=seed), description="digits CNN (shiftwatch example)",
                            progress=_Bars(progress))  # fmt: skip
    typer.echo(json.dumps(_summary(outcome), indent=2))


@app.command("runs")
def runs_command(
    model: str = typer.Option(..., "--model", help="model name"),
    limit: int = typer.Option(20, min=1, help="the newest this many"),
    as_json: bool = JSON_OPTION,
) -> None:
    """The latest training runs of MODEL, newest first: a table, or with --json the API's JSON list."""
    from shiftwatch.retrain.runs import list_runs

    db = open_db(settings_or_exit().database_url, migrate=True)
    with db.session() as session:
        runs = list_runs(session, model, limit)
        if as_json:
            emit_json([{
                "id": run.id, "status": run.status, "started_at": run.started_at.isoformat(),
                "duration_s": run.duration_s, "labeled_snapshot_sha256": run.labeled_snapshot_sha256,
                "compress_steps": run.compress_steps, "artifact_sha256": run.artifact_sha256, "error": run.error,
            } for run in runs])  # fmt: skip
            return
        emit_table(
            ("id", "status", "started", "seconds", "labeled snapshot", "steps", "artifact", "error"),
            [(run.id, run.status, f"{run.started_at:%Y-%m-%d %H:%M}",
              None if run.duration_s is None else f"{run.duration_s:.0f}", run.labeled_snapshot_sha256[:12],
              ",".join(run.compress_steps or []), (run.artifact_sha256 or "")[:12], run.error) for run in runs],
            title="training runs",
        )  # fmt: skip


@app.command("split-reference")
def split_reference_command(
    reference_set: Path = typer.Argument(..., help=".npz of uint8 'images' and int 'labels' (what --reference-set takes)"),
    out: Path = typer.Option(..., "--out", help="folder to write train.npz, val.npz and test.npz to"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Split a reference set 65/15/20 (train/val/test, stratified, seed 0) exactly as retraining will.

    Train your production model on train.npz only: retraining's gate scores on test.npz.
    """
    from shiftwatch.retrain.reference_set import write_reference_splits

    written = write_reference_splits(reference_set, out)
    if as_json:
        emit_json({name: {"path": str(path), "n": n} for name, (path, n) in written.items()})
        return
    emit_table(("split", "images", "file"), [(name, n, str(path)) for name, (path, n) in written.items()],
               title=f"{reference_set.name}: 65/15/20, stratified, seed 0")  # fmt: skip


app.add_typer(register_cli.app)  # register: bring your own model
