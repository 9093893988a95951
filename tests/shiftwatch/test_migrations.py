"""The Alembic migrations are the schema: they must produce exactly the ORM's tables."""

from __future__ import annotations

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, Table, inspect, select, text

from shiftwatch.db import Base, Database, Float32Vector, import_all_tables


def test_migrations_produce_exactly_the_orm_schema(db: Database) -> None:
    import_all_tables()
    with db.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_object": _include_unmanaged}
        )
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_every_orm_table_exists_after_upgrade(db: Database) -> None:
    import_all_tables()
    tables = set(inspect(db.engine).get_table_names())
    assert {t.name for t in Base.metadata.sorted_tables} <= tables


def test_float32_vectors_keep_the_bytes_existing_databases_hold(db: Database) -> None:
    """Vector columns store little-endian float32 bytes, as rows written before ``Float32Vector`` do."""
    vector = np.random.default_rng(7).normal(size=5)
    probe = Table("float32_vector_probe", MetaData(), Column("id", Integer, primary_key=True), Column("v", Float32Vector))
    with db.engine.begin() as connection:
        probe.create(connection)
        try:
            connection.execute(probe.insert(), [{"id": 1, "v": vector}, {"id": 2, "v": None}])
            raw = connection.execute(text("SELECT v FROM float32_vector_probe ORDER BY id")).scalars().all()
            typed = connection.execute(select(probe.c.v).order_by(probe.c.id)).scalars().all()
        finally:
            probe.drop(connection)
    assert bytes(raw[0]) == vector.astype("<f4").tobytes() and raw[1] is None
    assert typed[0].dtype == np.float32 and np.array_equal(typed[0], vector.astype(np.float32)) and typed[1] is None


def _include_unmanaged(obj, name, type_, reflected, compare_to):
    prefixes = ("predictions_p", "apscheduler_", "predictions_incoming", "alembic_version")
    return not (type_ == "table" and name and name.startswith(prefixes))


def _filled(table, **given):
    """``given`` plus a plain value for every other NOT NULL column (the test only cares about a few)."""
    import datetime as dt

    from sqlalchemy import JSON, Boolean, DateTime, Float, Integer, LargeBinary

    plain = [(Boolean, False), (Integer, 1), (Float, 0.0), (DateTime, dt.datetime(2026, 11, 30, tzinfo=dt.UTC)),
             (LargeBinary, b""), (JSON, {})]  # fmt: skip
    values = dict(given)
    for column in table.columns:
        if column.nullable or column.name in values or column.primary_key:
            continue
        values[column.name] = next((v for t, v in plain if isinstance(column.type, t)), "x")
    return values


@pytest.mark.parametrize("backend_name", ["sqlite", "postgres"])
def test_detectors_0002_makes_stored_report_paths_relative_to_the_data_dir(backend_name, tmp_path) -> None:
    """Absolute report paths broke every alert's report once the data directory moved (issue 17)."""
    from sqlalchemy import MetaData, create_engine, select

    from shiftwatch.migrate import upgrade
    from tests.support.databases import BACKENDS, create_pg_database, drop_pg_database, pg_unavailable_reason

    if backend_name not in BACKENDS or (backend_name == "postgres" and pg_unavailable_reason() is not None):
        pytest.skip(f"backend {backend_name} not available")
    url = create_pg_database("sw_mig") if backend_name == "postgres" else f"sqlite:///{tmp_path / 'old.db'}"
    try:
        upgrade(url, "detectors_0001")
        engine = create_engine(url)
        meta = MetaData()
        meta.reflect(engine)
        t = meta.tables
        paths = ["/srv/old-host/shiftwatch-data/reports/drift-1-20261130T000000Z.html", None, "reports/kept.html"]
        with engine.begin() as connection:
            connection.execute(t["models"].insert().values(_filled(t["models"], id=1, name="m", class_names=["a"])))
            connection.execute(t["model_versions"].insert().values(_filled(t["model_versions"], id=1, model_id=1)))
            connection.execute(t["detector_configs"].insert().values(_filled(t["detector_configs"], id=1)))
            connection.execute(t["drift_runs"].insert().values(_filled(t["drift_runs"], id=1)))
            for i, path in enumerate(paths, start=1):
                row = _filled(t["alerts"], id=i, first_run_id=1, last_run_id=1, report_path=path, open_key=None)
                connection.execute(t["alerts"].insert().values(row))
        engine.dispose()
        upgrade(url)
        engine = create_engine(url)
        with engine.connect() as connection:
            alerts = MetaData()
            alerts.reflect(engine, only=["alerts"])
            stored = connection.execute(select(alerts.tables["alerts"].c.report_path).order_by("id")).scalars().all()
        engine.dispose()
        assert stored == ["reports/drift-1-20261130T000000Z.html", None, "reports/kept.html"]
    finally:
        if backend_name == "postgres":
            drop_pg_database(url)


@pytest.mark.parametrize("backend_name", ["sqlite", "postgres"])
def test_retrain_0002_gives_pre_contract_versions_the_digits_example_contract(backend_name, tmp_path) -> None:
    """Versions the built-in CNN registered before it went through the contract still retrain (issue 28)."""
    from sqlalchemy import MetaData, create_engine, select

    from shiftwatch.examples.digits_cnn import CONTRACT
    from shiftwatch.migrate import upgrade
    from tests.support.databases import BACKENDS, create_pg_database, drop_pg_database, pg_unavailable_reason

    if backend_name not in BACKENDS or (backend_name == "postgres" and pg_unavailable_reason() is not None):
        pytest.skip(f"backend {backend_name} not available")
    url = create_pg_database("sw_mig") if backend_name == "postgres" else f"sqlite:///{tmp_path / 'old.db'}"
    resnet = {"kind": "torch", "factory": "shiftwatch.retrain.resnet:build_quarter", "reference_set": "a.npz"}
    onnx = {"kind": "onnx", "logits_output": None, "embedding_output": None, "outputs": "logits"}
    reports = [{"weights_path": "artifacts/old.pt"}, {"weights_path": "artifacts/r.pt", "contract": resnet},
               {"contract": onnx}, {"compression_steps": []}]  # fmt: skip
    try:
        upgrade(url, "retrain_0001")
        engine = create_engine(url)
        meta = MetaData()
        meta.reflect(engine)
        t = meta.tables
        with engine.begin() as connection:
            connection.execute(t["models"].insert().values(_filled(t["models"], id=1, name="m", class_names=["a"])))
            for i, report in enumerate(reports, start=1):
                row = _filled(t["model_versions"], id=i, model_id=1, version=f"v{i}", report=report)
                connection.execute(t["model_versions"].insert().values(row))
        engine.dispose()
        upgrade(url)
        engine = create_engine(url)
        with engine.connect() as connection:
            versions = MetaData()
            versions.reflect(engine, only=["model_versions"])
            table = versions.tables["model_versions"]
            stored = [r for r in connection.execute(select(table.c.report).order_by("id")).scalars().all()]
        engine.dispose()
        assert stored[0] == {"weights_path": "artifacts/old.pt", "contract": CONTRACT.as_dict()}
        assert stored[1]["contract"]["factory"] == "shiftwatch.examples.resnet:build_quarter"
        assert stored[2:] == reports[2:]  # an ONNX-only version and one without weights are left alone
    finally:
        if backend_name == "postgres":
            drop_pg_database(url)
