"""Models and model versions: register, look up, change state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shiftwatch.collector.tables import VERSION_STATES, Model, ModelVersion
from shiftwatch.errors import Conflict, Invalid, NotFound


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """What ingest needs to validate a prediction against its model version."""

    id: int
    model: str
    version: str
    embedding_dim: int
    num_classes: int
    state: str


def register_model(session: Session, name: str, class_names: list[str], description: str = "") -> Model:
    """Create a model, or return the existing one when it has the same class names."""
    if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise Invalid("name", "use letters, digits, '-', '_' and '.' only")
    if len(class_names) < 2:
        raise Invalid("class_names", "a classifier needs at least two classes")
    if len(set(class_names)) != len(class_names):
        raise Invalid("class_names", "class names must be distinct")
    existing = session.scalar(select(Model).where(Model.name == name))
    if existing is not None:
        if list(existing.class_names) != list(class_names):
            raise Conflict(f"model {name!r} exists with other class names")
        return existing
    model = Model(name=name, class_names=list(class_names), description=description)
    session.add(model)
    session.flush()
    return model


def shown(text: str, limit: int = 100) -> str:
    """``text`` quoted for an error message, cut at ``limit`` characters: a 60 KB name in a URL is not echoed."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} characters)"


def get_model(session: Session, name: str) -> Model:
    model = session.scalar(select(Model).where(Model.name == name))
    if model is None:
        raise NotFound(f"model {shown(name)} is not registered")
    return model


def list_models(session: Session) -> list[Model]:
    return list(session.scalars(select(Model).order_by(Model.name)))


def register_version(
    session: Session,
    model_name: str,
    version: str,
    *,
    embedding_dim: int,
    artifact_path: str | None = None,
    artifact_sha256: str | None = None,
    input_spec: dict[str, Any] | None = None,
    state: str = "candidate",
    report: dict[str, Any] | None = None,
) -> ModelVersion:
    """Add a version to a model. Re-registering the same version with the same artifact is a no-op."""
    model = get_model(session, model_name)
    if not version:
        raise Invalid("version", "must not be empty")
    if embedding_dim <= 0:
        raise Invalid("embedding_dim", "must be positive")
    if state not in VERSION_STATES:
        raise Invalid("state", f"must be one of {', '.join(VERSION_STATES)}")
    if artifact_sha256 is not None and (len(artifact_sha256) != 64 or not _is_hex(artifact_sha256)):
        raise Invalid("artifact_sha256", "must be 64 hex digits")
    existing = session.scalar(
        select(ModelVersion).where(ModelVersion.model_id == model.id, ModelVersion.version == version)
    )
    if existing is not None:
        if existing.artifact_sha256 != artifact_sha256 or existing.embedding_dim != embedding_dim:
            raise Conflict(f"version {version!r} of {model_name!r} exists with another artifact or embedding size")
        return existing
    row = ModelVersion(
        model_id=model.id,
        version=version,
        embedding_dim=embedding_dim,
        artifact_path=artifact_path,
        artifact_sha256=artifact_sha256,
        input_spec=input_spec or {},
        state=state,
        report=report or {},
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(f"version {version!r} of {model_name!r} was registered concurrently") from None
    return row


def get_version(session: Session, model_name: str, version: str) -> ModelVersion:
    model = get_model(session, model_name)
    row = session.scalar(
        select(ModelVersion).where(ModelVersion.model_id == model.id, ModelVersion.version == version)
    )
    if row is None:
        raise NotFound(f"version {shown(version)} of model {shown(model_name)} is not registered")
    return row


def list_versions(session: Session, model_name: str) -> list[ModelVersion]:
    model = get_model(session, model_name)
    return list(
        session.scalars(select(ModelVersion).where(ModelVersion.model_id == model.id).order_by(ModelVersion.id))
    )


def versions_in_state(session: Session, model_name: str, state: str) -> list[ModelVersion]:
    model = get_model(session, model_name)
    return list(
        session.scalars(
            select(ModelVersion)
            .where(ModelVersion.model_id == model.id, ModelVersion.state == state)
            .order_by(ModelVersion.id)
        )
    )


def set_version_state(session: Session, version_id: int, state: str) -> ModelVersion:
    if state not in VERSION_STATES:
        raise Invalid("state", f"must be one of {', '.join(VERSION_STATES)}")
    row = session.get(ModelVersion, version_id)
    if row is None:
        raise NotFound(f"model version {version_id} does not exist")
    row.state = state
    session.flush()
    return row


def version_infos(session: Session, keys: set[tuple[str, str]]) -> dict[tuple[str, str], VersionInfo]:
    """Look up many (model, version) pairs at once; missing pairs are absent from the result."""
    if not keys:
        return {}
    names = {name for name, _ in keys}
    rows = session.execute(
        select(ModelVersion, Model).join(Model, Model.id == ModelVersion.model_id).where(Model.name.in_(names))
    )
    found: dict[tuple[str, str], VersionInfo] = {}
    for version, model in rows:
        key = (model.name, version.version)
        if key in keys:
            found[key] = VersionInfo(
                id=version.id,
                model=model.name,
                version=version.version,
                embedding_dim=version.embedding_dim,
                num_classes=len(model.class_names),
                state=version.state,
            )
    return found


def _is_hex(text: str) -> bool:
    try:
        int(text, 16)
    except ValueError:
        return False
    return True


def next_version_name(session: Session, model_name: str) -> str:
    """``v<N>`` with N one past the number of versions, skipping names already taken."""
    taken = {row.version for row in list_versions(session, model_name)}
    number = len(taken) + 1
    while f"v{number}" in taken:
        number += 1
    return f"v{number}"
