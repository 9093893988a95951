"""The dashboards against Grafana's own published schema: each JSON file goes through the
grafana-foundation-sdk's generated ``Dashboard`` model and back, and nothing may be dropped or changed.
The SDK's models are generated from Grafana's schema and keep only the keys it defines, so a misspelled
key, or one Grafana no longer reads, shows up as dropped."""

from __future__ import annotations

import copy
import json

import pytest
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard

from shiftwatch.dashboards.provision import load_dashboards

register_default_plugins()  # panel options and queries decode by their plugin type


def round_trip(raw: dict) -> dict:
    return json.loads(json.dumps(Dashboard.from_json(copy.deepcopy(raw)), cls=JSONEncoder))


def lost(raw: object, back: object, path: str = "") -> list[str]:
    """Where ``back`` lacks a key of ``raw`` or holds another value: one 'path: what' line each."""
    if isinstance(raw, dict):
        if not isinstance(back, dict):
            return [f"{path}: became {type(back).__name__}"]
        out = []
        for key, value in raw.items():
            out += lost(value, back[key], f"{path}/{key}") if key in back else [f"{path}/{key}: dropped"]
        return out
    if isinstance(raw, list):
        if not isinstance(back, list) or len(back) != len(raw):
            return [f"{path}: list changed"]
        return [line for i, (a, b) in enumerate(zip(raw, back)) for line in lost(a, b, f"{path}[{i}]")]
    return [] if raw == back else [f"{path}: {raw!r} became {back!r}"]


@pytest.mark.parametrize("name", sorted(load_dashboards()))
def test_every_dashboard_survives_grafanas_schema_unchanged(name: str) -> None:
    raw = load_dashboards()[name]
    assert raw["panels"], name
    assert lost(raw, round_trip(raw)) == []


def test_the_check_finds_a_misspelled_key_and_a_misplaced_one() -> None:
    raw = copy.deepcopy(next(iter(load_dashboards().values())))
    raw["panels"][0]["gridPos"]["width"] = 12  # Grafana's key is "w"
    raw["templating"]["list"][0]["multiple"] = True  # it is "multi"
    assert sorted(lost(raw, round_trip(raw))) == ["/panels[0]/gridPos/width: dropped",
                                                  "/templating/list[0]/multiple: dropped"]
