"""The ``shiftwatch-client`` wheel alone, in a fresh venv with nothing but numpy, logs to a live server.

The venv is built once per test session (wheel from client/, ``venv --without-pip``, the outer pip
installs into it: ~15 s); each backend's test then runs a subprocess of that venv's Python against a
real uvicorn and checks the rows arrived, that nothing but numpy and the client was installed, and that
importing and using the SDK loaded none of the server's weight.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from shiftwatch.collector.tables import Prediction

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("sqlalchemy", "fastapi", "pandas", "torch", "onnxruntime", "pydantic", "shiftwatch")
LOCAL_WHEELS = Path("/opt/pypi/files")  # this machine's offline wheelhouse; elsewhere pip's own index serves numpy

# Runs in the client-only venv: log 50 rows, flush, close; report what got imported and installed.
SCRIPT = """
import json, sys
from importlib import metadata
import numpy as np
from shiftwatch_client import Client, __version__
with Client(sys.argv[1], spill_dir=sys.argv[2]) as client:
    server_version = client.check_server()
    for i in range(50):
        client.log("digits", "v1", i % 10, 0.9, embedding=np.full(64, i, dtype=np.float32))
    delivered = client.flush()
heavy = sorted(m for m in sys.modules if m.split(".")[0] in sys.argv[3].split(","))
installed = sorted(d.metadata["Name"].lower() for d in metadata.distributions())
print(json.dumps({"delivered": delivered, "heavy": heavy, "installed": installed,
                  "client": __version__, "server": server_version}))
"""


@pytest.fixture(scope="session")
def client_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Python of a fresh venv holding only the shiftwatch-client wheel and numpy."""
    root = tmp_path_factory.mktemp("client-venv")
    # Built from a copy: setuptools leaves build/ beside the sources, and a stale one would go into the wheel.
    source = shutil.copytree(REPO / "client", root / "source", ignore=shutil.ignore_patterns("build", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(root / "dist"), str(source)], check=True, capture_output=True, timeout=300)  # fmt: skip
    (wheel,) = (root / "dist").glob("shiftwatch_client-*.whl")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True, timeout=120)
    python = root / "venv" / "bin" / "python"
    offline = ["--no-index", "--find-links", str(LOCAL_WHEELS)] if LOCAL_WHEELS.is_dir() else []
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", *offline, str(wheel)],
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    return python


def test_the_client_wheel_alone_logs_to_a_live_server_importing_nothing_heavy(client_python, live_server, db,
                                                                              digits_model, tmp_path) -> None:
    run = subprocess.run([str(client_python), "-c", SCRIPT, live_server.url, str(tmp_path / "spill"), ",".join(HEAVY)],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)  # fmt: skip
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["delivered"] is True
    assert report["heavy"] == [], f"the SDK imported {report['heavy']}"
    assert report["installed"] == ["numpy", "shiftwatch-client"]
    assert report["client"] == report["server"]
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Prediction)) == 50


def test_the_client_install_has_its_own_replay_rejected_command(client_python, live_server, tmp_path) -> None:
    command = client_python.parent / "shiftwatch-replay-rejected"
    (tmp_path / "spill").mkdir()
    empty = subprocess.run([str(command), "--url", live_server.url, "--spill-dir", str(tmp_path / "spill")],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert empty.returncode == 0, empty.stderr
    assert "no rejected batches" in empty.stdout
    bad = subprocess.run([str(command), "--url", "ftp://nowhere"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--url" in bad.stderr
