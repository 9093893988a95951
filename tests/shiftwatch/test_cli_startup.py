"""``shiftwatch --help`` stays fast: the CLI and the detectors package import no heavy library until a command runs.

Each check runs in a fresh interpreter, since this test process has long imported everything.
Wall time is measured in ``bench/cli_startup.py``, not here. The SDK's own rule (no SQLAlchemy,
FastAPI or torch behind ``shiftwatch_client.client``) is ``test_collector_client.test_sdk_import_is_light``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from shiftwatch.detectors import DETECTORS, EMBEDDING_DETECTORS, PROBABILITY_DETECTORS
from shiftwatch.detectors.base import Detector
from shiftwatch.detectors.configs import detector_class
from shiftwatch.errors import Invalid
from shiftwatch.lazy_registry import LazyRegistry

SHIFTWATCH = str(Path(sys.executable).parent / "shiftwatch")
# What issue 13 names, plus the other imports that cost a tenth of a second or more each.
HEAVY = ("sklearn", "evidently", "torch", "pandas", "scipy", "onnxruntime", "river", "fastapi", "uvicorn", "sqlalchemy")
# Every command path and the sub-commands its --help must list; a new command belongs here too.
COMMANDS: dict[str, tuple[str, ...]] = {
    "": ("serve", "serve-ray", "detect", "check", "estimate-accuracy", "demo", "db", "labeling", "retrain", "rollout",
         "dashboards", "token", "models", "alerts", "detectors", "replay-rejected", "ingest-worker", "ingest"),
    "db": ("upgrade",),
    "ingest": ("dead-letters",),
    "labeling": ("status", "select", "audit", "push", "pull", "export", "import", "retire"),
    "retrain": ("bootstrap", "runs", "split-reference", "register", "quantize"),
    "rollout": ("start", "retry", "list", "status", "approve", "reject", "tick"),
    "dashboards": ("push",),
    "token": ("create", "list", "revoke"),
    "models": ("list", "show"),
    "alerts": ("list", "show", "ack", "resolve"),
    "detectors": ("list", "runs", "disable", "enable", "work"),
}
LEAVES = [f"{group} {name}".strip() for group, names in COMMANDS.items() for name in names if name not in COMMANDS]


def loaded_after(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; it fills the dict ``out``, to which the modules then loaded are added."""
    script = (
        "import json, sys\nout = {}\n" + code + "\n"
        f"out['heavy'] = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
        "out['modules'] = sorted(sys.modules)\n"
        "print(json.dumps(out))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_building_the_whole_cli_and_every_help_page_imports_no_heavy_library() -> None:
    out = loaded_after(
        "import typer\n"
        "from typer.testing import CliRunner\n"
        "from shiftwatch import cli\n"
        "def walk(command, path):\n"
        "    yield path\n"
        "    for name, sub in getattr(command, 'commands', {}).items():\n"
        "        yield from walk(sub, [*path, name])\n"
        "paths = list(walk(typer.main.get_command(cli.app), []))\n"
        "out['paths'] = [' '.join(p) for p in paths]\n"
        "out['exit_codes'] = [CliRunner().invoke(cli.app, [*p, '--help']).exit_code for p in paths]\n"
    )
    assert sorted(out["paths"]) == sorted([*COMMANDS, *LEAVES]), "COMMANDS above must name every command"
    assert set(out["exit_codes"]) == {0}
    assert out["heavy"] == []
    assert "numpy" not in out["modules"]


def test_importing_the_cli_module_imports_no_heavy_library() -> None:
    assert loaded_after("import shiftwatch.cli")["heavy"] == []


def test_importing_mmd_loads_numpy_but_no_sklearn_scipy_pandas_or_river() -> None:
    out = loaded_after("import shiftwatch.detectors.mmd")
    assert "numpy" in out["modules"]  # the check would pass vacuously if mmd were not imported at all
    assert out["heavy"] == []


def test_importing_the_detectors_package_imports_no_detector() -> None:
    out = loaded_after("import shiftwatch.detectors; out['names'] = sorted(shiftwatch.detectors.DETECTORS)")
    assert out["names"] == sorted(DETECTORS)
    assert not [m for m in out["modules"] if m.startswith("shiftwatch.detectors.")]
    assert "numpy" not in out["modules"]


def test_looking_up_one_detector_imports_only_its_module() -> None:
    out = loaded_after("from shiftwatch.detectors import DETECTORS\nout['cls'] = DETECTORS['mmd'].__name__")
    assert out["cls"] == "MMDDetector"
    assert "shiftwatch.detectors.mmd" in out["modules"]
    assert "shiftwatch.detectors.classifier" not in out["modules"]
    assert out["heavy"] == []


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_every_registry_entry_is_a_detector_class(name: str) -> None:
    cls = DETECTORS[name]
    assert isinstance(cls, type) and issubclass(cls, Detector)
    assert DETECTORS.target(name) == f"{cls.__module__}:{cls.__qualname__}"
    assert DETECTORS.get(name) is cls  # cached: the same class every time


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_every_registry_name_is_its_class_name_and_the_name_its_results_carry(name: str) -> None:
    """``"bbsd_label"`` is ``BBSDLabelDetector``: a name stored in a config leads straight to its class."""
    cls = DETECTORS[name]
    assert cls.__name__.lower() == name.replace("_", "") + "detector"
    assert cls.name == name


def test_a_detector_must_implement_fit_and_test_and_gets_the_state_contract() -> None:
    class FitOnly(Detector):
        def fit(self, reference, **context):
            return self

    with pytest.raises(TypeError, match="abstract"):
        FitOnly()
    for method in ("get_config", "get_state", "from_state"):
        assert callable(getattr(DETECTORS["mmd"], method)) and method in vars(Detector)


def test_the_registry_groups_agree_with_what_each_detector_reads() -> None:
    assert {DETECTORS[n].input_kind for n in EMBEDDING_DETECTORS} == {"embeddings"}
    assert {DETECTORS[n].input_kind for n in PROBABILITY_DETECTORS} == {"probabilities"}


def test_registry_groups_and_unknown_names() -> None:
    assert set(EMBEDDING_DETECTORS) | set(PROBABILITY_DETECTORS) <= set(DETECTORS)
    assert "nope" not in DETECTORS
    with pytest.raises(KeyError):
        DETECTORS["nope"]
    with pytest.raises(Invalid, match=r"unknown detector 'nope'.*mmd"):
        detector_class("nope")


def test_a_registry_target_without_a_class_is_refused_when_built() -> None:
    with pytest.raises(ValueError, match=r"'broken'.*module:Attribute"):
        LazyRegistry({"broken": "shiftwatch.detectors.mmd"})


def run_help(path: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIFTWATCH_")} | {"COLUMNS": "200"}
    return subprocess.run([SHIFTWATCH, *path.split(), "--help"], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize("group", list(COMMANDS))
def test_each_group_help_exits_0_and_lists_its_subcommands(group: str) -> None:
    result = run_help(group)
    assert result.returncode == 0, result.stderr
    listed = {name for name in COMMANDS[group] if re.search(rf"^[│|\s]*{re.escape(name)}\s", result.stdout, re.M)}
    assert listed == set(COMMANDS[group]), result.stdout


@pytest.mark.parametrize("path", LEAVES)
def test_each_command_help_exits_0_and_shows_its_usage(path: str) -> None:
    result = run_help(path)
    assert result.returncode == 0, result.stderr
    assert f"Usage: shiftwatch {path}" in result.stdout
