"""Load the Grafana dashboards shipped in this folder and push them to a Grafana through grafana-client.

The dashboards query the project's PostgreSQL through the ``sw_*`` views (created by the
``dashboards`` migration); the data source is referenced by uid, so one ``--datasource-uid``
points every panel at the Grafana data source that holds shiftwatch's database.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shiftwatch.errors import Invalid, Unavailable

HERE = Path(__file__).parent
DEFAULT_DATASOURCE_UID = "shiftwatch-postgres"
FOLDER_TITLE = "shiftwatch"


@dataclass(frozen=True, slots=True)
class PanelQuery:
    """One panel's SQL, as Grafana will send it (macros and ``$model`` still in place)."""

    dashboard: str
    panel: str
    sql: str


def load_dashboards() -> dict[str, dict[str, Any]]:
    """Every ``*.json`` dashboard in this folder, by file stem."""
    return {path.stem: json.loads(path.read_text()) for path in sorted(HERE.glob("*.json"))}


def panel_queries(dashboards: dict[str, dict[str, Any]] | None = None) -> list[PanelQuery]:
    queries = []
    for name, dashboard in (dashboards or load_dashboards()).items():
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                queries.append(PanelQuery(name, panel["title"], target["rawSql"]))
        for variable in dashboard.get("templating", {}).get("list", []):
            if variable.get("type") == "query":
                queries.append(PanelQuery(name, f"variable {variable['name']}", variable["query"]))
    return queries


def with_datasource(dashboard: dict[str, Any], uid: str) -> dict[str, Any]:
    """A copy of ``dashboard`` whose panels, targets and variables use the data source ``uid``."""
    result = copy.deepcopy(dashboard)

    def point(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("datasource"), dict):
                node["datasource"]["uid"] = uid
            for value in node.values():
                point(value)
        elif isinstance(node, list):
            for value in node:
                point(value)

    point(result)
    return result


def push(grafana_url: str, token: str, datasource_uid: str = DEFAULT_DATASOURCE_UID) -> list[str]:
    """Create or overwrite every dashboard in a ``shiftwatch`` folder; returns the dashboards' URLs."""
    from grafana_client import GrafanaApi
    from grafana_client.client import GrafanaClientError, GrafanaException

    if not grafana_url.startswith(("http://", "https://")):
        raise Invalid("grafana_url", "must be an http:// or https:// URL")
    api = GrafanaApi.from_url(grafana_url, credential=token, timeout=10.0)
    try:
        folders = {folder["title"]: folder["uid"] for folder in api.folder.get_all_folders()}
        folder_uid = folders.get(FOLDER_TITLE) or api.folder.create_folder(FOLDER_TITLE)["uid"]
        urls = []
        for dashboard in load_dashboards().values():
            answer = api.dashboard.update_dashboard(
                {"dashboard": with_datasource(dashboard, datasource_uid), "folderUid": folder_uid, "overwrite": True}
            )
            urls.append(grafana_url.rstrip("/") + str(answer.get("url", "")))
    except GrafanaClientError as exc:
        raise Invalid("token", f"Grafana refused the request: {exc}") from None
    except (GrafanaException, OSError) as exc:
        raise Unavailable(f"Grafana at {grafana_url} did not answer: {exc}") from None
    return urls
