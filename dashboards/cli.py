"""``shiftwatch dashboards push``: provision the Grafana dashboards through grafana-client."""

from __future__ import annotations

import typer

from shiftwatch.dashboards.provision import DEFAULT_DATASOURCE_UID

app = typer.Typer(no_args_is_help=True, help="Grafana dashboards over shiftwatch's PostgreSQL views.")


@app.command("push")
def push_command(
    grafana_url: str = typer.Option(..., "--grafana-url", help="e.g. http://grafana:3000"),
    token: str = typer.Option(..., "--token", envvar="GRAFANA_TOKEN", help="Grafana service-account token"),
    datasource_uid: str = typer.Option(
        DEFAULT_DATASOURCE_UID, "--datasource-uid", help="uid of the Grafana PostgreSQL data source for shiftwatch"
    ),
) -> None:
    """Create or overwrite the shiftwatch dashboards (ingest, drift and alerts, accuracy and rollouts)."""
    from shiftwatch.dashboards.provision import push

    for url in push(grafana_url, token, datasource_uid):
        typer.echo(url)
