"""``shiftwatch models list|show``: the registered models and their versions, from a shell."""

from __future__ import annotations

from typing import Any

import typer

from shiftwatch.cli_context import open_db, settings_or_exit
from shiftwatch.cli_output import JSON_OPTION, emit_fields, emit_json, emit_table, when

app = typer.Typer(no_args_is_help=True, help="Registered models and their versions.")


def _described(names: list[str] | None) -> list[tuple[Any, list[Any]]]:
    """(ModelOut, [VersionOut]) for the named models, or every model; an unknown name is NotFound."""
    from shiftwatch.collector import registry
    from shiftwatch.collector.schemas import ModelOut, VersionOut

    db = open_db(settings_or_exit().database_url, migrate=False)
    with db.session() as session:
        rows = [registry.get_model(session, n) for n in names] if names else registry.list_models(session)
        out = []
        for row in rows:
            versions = [VersionOut.model_validate(v) for v in registry.list_versions(session, row.name)]
            out.append((ModelOut.model_validate(row), versions))
        return out


def _json(model: Any, versions: list[Any]) -> dict[str, Any]:
    return model.model_dump(mode="json") | {"versions": [v.model_dump(mode="json") for v in versions]}


@app.command("list")
def list_(as_json: bool = JSON_OPTION) -> None:
    """Every model with its classes and each version's state."""
    found = _described(None)
    if as_json:
        emit_json([_json(m, vs) for m, vs in found])
        return
    emit_table(
        ("model", "classes", "versions (state)", "created"),
        [(m.name, len(m.class_names), ", ".join(f"{v.version} ({v.state})" for v in vs), when(m.created_at))
         for m, vs in found],
        title="models",
    )  # fmt: skip


@app.command("show")
def show(model: str = typer.Option(..., "--model", help="model name"), as_json: bool = JSON_OPTION) -> None:
    """One model: its class names in output order and every version with its artifact."""
    [(found, versions)] = _described([model])
    if as_json:
        emit_json(_json(found, versions))
        return
    emit_fields({"model": found.name, "classes": found.class_names, "description": found.description,
                 "created": when(found.created_at)})  # fmt: skip
    emit_table(
        ("version", "state", "embedding dim", "artifact", "sha256", "created"),
        [(v.version, v.state, v.embedding_dim, v.artifact_path, (v.artifact_sha256 or "")[:12], when(v.created_at))
         for v in versions],
        title="versions",
    )  # fmt: skip
