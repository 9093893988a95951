"""``shiftwatch ingest-worker`` and ``shiftwatch ingest dead-letters``: the broker path's two commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from shiftwatch.cli_output import JSON_OPTION, emit_json, emit_table

if TYPE_CHECKING:  # imported inside the commands: start-up stays fast
    from shiftwatch.collector.broker import BrokerConfig
    from shiftwatch.settings import Settings

app = typer.Typer()  # merged into the root: ingest-worker
ingest_app = typer.Typer(no_args_is_help=True, help="The ingest broker (NATS JetStream): what it refused.")


def _config() -> tuple[Settings, BrokerConfig]:
    """The settings and their broker; none configured is exit 2 naming the setting."""
    from shiftwatch.cli_context import settings_or_exit
    from shiftwatch.collector.broker import BrokerConfig
    from shiftwatch.errors import ShiftwatchError

    settings = settings_or_exit()
    config = BrokerConfig.of(settings)
    if config is None:
        raise ShiftwatchError("configuration: SHIFTWATCH_INGEST_BROKER_URL is not set (e.g. nats://127.0.0.1:4222)")
    return settings, config


@app.command("ingest-worker")
def ingest_worker() -> None:
    """Store the batches the API and the gateway publish to JetStream; run as many as the database takes.

    Each shares the durable consumer SHIFTWATCH_INGEST_BROKER_CONSUMER; rows the store refuses go to
    the dead-letter stream (``shiftwatch ingest dead-letters``). Stops on Ctrl-C or SIGTERM.
    """
    import logging
    import signal

    from shiftwatch.cli_context import open_db
    from shiftwatch.collector.ingest_worker import IngestWorker, StoreLimits, run_worker

    settings, config = _config()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    limits = StoreLimits(max_unpacked_bytes=settings.max_request_bytes, retention_days=settings.retention_days,
                         embedding_keep_rate=settings.embedding_keep_rate)
    worker = IngestWorker(open_db(settings.database_url, migrate=False), config, limits)
    signal.signal(signal.SIGTERM, lambda *_: worker.stop.set())
    try:
        stats = run_worker(worker.db, config, limits, worker=worker)
    except KeyboardInterrupt:
        stats = worker.stats
    typer.echo(f"stored {stats.stored}, duplicates {stats.duplicates}, dead-lettered {stats.refused} "
               f"from {stats.messages} messages", err=True)  # fmt: skip


@ingest_app.command("dead-letters")
def dead_letters(
    limit: int = typer.Option(100, "--limit", min=1, help="the newest this many letters"),
    as_json: bool = JSON_OPTION,
) -> None:
    """The rows the ingest workers could not store, each with its reason (newest last)."""
    import asyncio
    from dataclasses import asdict

    from shiftwatch.collector.dead_letters import read_letters

    _, config = _config()
    total, found = asyncio.run(read_letters(config, limit))
    if as_json:
        emit_json({"total": total, "letters": [asdict(letter) for letter in found]})
        return
    emit_table(("id", "ts", "model", "version", "field", "status", "reason"),
               [(d.id, d.ts, d.model, d.version, d.field, d.status, d.reason) for d in found],
               title=f"{total} dead letters on {config.dead_stream}, newest {len(found)}")  # fmt: skip
