"""What each distribution adds to a fresh venv (issue 30): ``shiftwatch-client`` against the server.

Builds both wheels from this checkout, then installs into fresh venvs (``python -m venv``, pip
included) one at a time: numpy alone (the baseline a serving image already has), the client, the
server (``shiftwatch``, no extras) and the server with every extra (``shiftwatch[all]``). Records
each venv's size on disk, the install's wall time, and its distributions with the largest ones;
the client's own files are reported apart from numpy's. Peers in the same run: the server installs.

    .venv/bin/python bench/install_size.py [--skip-server]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import write_result

ROOT = Path(__file__).resolve().parents[1]
LOCAL_WHEELS = Path("/opt/pypi/files")  # this machine's offline wheelhouse, when present
MB = 1024 * 1024


def tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def site_packages(venv: Path) -> Path:
    (found,) = venv.glob("lib/python*/site-packages")
    return found


def distribution_sizes(venv: Path) -> dict[str, float]:
    """MB per installed distribution, from each one's RECORD (largest first)."""
    root = site_packages(venv)
    sizes: dict[str, float] = {}
    for record in root.glob("*.dist-info/RECORD"):
        name = record.parent.name.split("-")[0].lower().replace("_", "-")
        total = 0
        for line in record.read_text().splitlines():
            relative = line.split(",")[0]
            target = (root / relative).resolve()
            if target.is_file():
                total += target.stat().st_size
        sizes[name] = round(total / MB, 2)
    return dict(sorted(sizes.items(), key=lambda item: -item[1]))


def install(wheels: Path, requirements: list[str], work: Path, name: str) -> dict[str, object]:
    venv = work / name
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    before = tree_bytes(venv)
    offline = ["--find-links", str(LOCAL_WHEELS)] if LOCAL_WHEELS.is_dir() else []
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                    "--find-links", str(wheels), *offline, *requirements], check=True)  # fmt: skip
    seconds = time.perf_counter() - start
    sizes = distribution_sizes(venv)
    return {
        "requirements": requirements,
        "install_s": round(seconds, 1),
        "venv_mb": round(tree_bytes(venv) / MB, 1),
        "added_mb": round((tree_bytes(venv) - before) / MB, 1),
        "distributions": len(sizes) - 2,  # pip and setuptools come with every venv
        "largest_mb": dict(list(sizes.items())[:12]),
        "client_own_mb": sizes.get("shiftwatch-client"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-server", action="store_true", help="only numpy and the client (seconds, not minutes)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        wheels = work / "dist"
        subprocess.run(["make", "-C", str(ROOT), "wheels"], check=True)
        shutil.copytree(ROOT / "dist", wheels)
        client_wheel_kb = round(next(wheels.glob("shiftwatch_client-*.whl")).stat().st_size / 1024, 1)
        installs = {
            "numpy_only": install(wheels, ["numpy>=2,<3"], work, "numpy"),
            "client": install(wheels, ["shiftwatch-client"], work, "client"),
        }
        if not args.skip_server:
            installs["server"] = install(wheels, ["shiftwatch[cpu]"], work, "server")  # a service needs one ONNX Runtime flavour
            installs["server_all_extras"] = install(wheels, ["shiftwatch[all]"], work, "server-all")
    client = installs["client"]
    result: dict[str, object] = {
        "client_wheel_kb": client_wheel_kb,
        "client_added_mb": client["added_mb"],
        "client_over_numpy_mb": round(float(client["venv_mb"]) - float(installs["numpy_only"]["venv_mb"]), 2),
        "client_distributions": client["distributions"],
        "installs": installs,
    }
    if "server" in installs:
        result["server_added_mb"] = installs["server"]["added_mb"]
        result["server_all_added_mb"] = installs["server_all_extras"]["added_mb"]
        result["client_to_server_size_ratio"] = round(float(client["added_mb"]) / float(installs["server"]["added_mb"]), 3)
    write_result("install_size", result, ("client_wheel_kb", "client_added_mb", "client_over_numpy_mb",
                                          "client_distributions", *(k for k in ("server_added_mb", "server_all_added_mb",
                                          "client_to_server_size_ratio") if k in result)))  # fmt: skip


if __name__ == "__main__":
    main()
