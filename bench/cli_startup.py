"""How long ``shiftwatch --help`` and every ``shiftwatch VERB [SUBVERB] --help`` take, against the old eager imports.

Peer in the same run: the ``shiftwatch`` of a checkout still on the old code (default
``/work/main/.venv/bin/shiftwatch``, commit recorded), which imported scikit-learn, SciPy,
river, pandas and FastAPI to build its command tree. The old code paid that before parsing
any argument, so it is timed on the root and each top-level verb only (a sub-verb costs the
same); ours on every command path. Runs alternate old/new so both see the same load; CPU
time (user + system) is recorded beside wall time because it hardly changes with the load
other jobs put on a shared machine.

    .venv/bin/python bench/cli_startup.py [--before PATH] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
AFTER = Path(sys.executable).parent / "shiftwatch"
TARGET_S = 0.5  # issue 13
HEAVY = ("sklearn", "evidently", "torch", "pandas", "scipy", "onnxruntime", "river", "fastapi", "uvicorn", "sqlalchemy")


def command_paths() -> list[str]:
    """Every command path of this checkout's CLI, root first ("" is ``shiftwatch --help``)."""
    from shiftwatch import cli

    def walk(command, path: list[str]):
        yield " ".join(path)
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*path, name])

    return list(walk(typer.main.get_command(cli.app), []))


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SHIFTWATCH_")} | {"COLUMNS": "100"}


def timed_help(executable: Path, path: str) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one ``executable PATH --help``; CPU time barely moves with load."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run([str(executable), *path.split(), "--help"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env(), timeout=120)  # fmt: skip
    elapsed = time.perf_counter() - start
    now = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{executable} {path} --help exited {result.returncode}: {result.stderr.decode()[-500:]}")
    return elapsed, (now.ru_utime - used.ru_utime) + (now.ru_stime - used.ru_stime)


def medians(samples: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


def heavy_loaded(executable: Path) -> list[str]:
    """Which heavy libraries ``shiftwatch --help`` imports, run by that install's own interpreter."""
    code = (
        "import sys\nsys.argv = ['shiftwatch', '--help']\nfrom shiftwatch.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print('HEAVY', ' '.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n"
    )
    # cwd "/": ``python -c`` puts the working directory first on sys.path, which from this
    # checkout would hand the old install our ``shiftwatch/`` folder.
    result = subprocess.run([str(executable.parent / "python"), "-c", code], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env(), cwd="/", timeout=120)  # fmt: skip
    line = next(line for line in result.stderr.splitlines() if line.startswith("HEAVY"))
    return line.split()[1:]


def git_commit(folder: Path) -> str:
    result = subprocess.run(["git", "-C", str(folder), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()  # fmt: skip
    return result.stdout.strip() + ("+uncommitted" if dirty else "")


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, default=Path("/work/main/.venv/bin/shiftwatch"))
    parser.add_argument("--runs", type=int, default=5, help="runs per command and version (median reported)")
    args = parser.parse_args()
    console = Console(width=150)  # one row per command, also when piped
    paths = command_paths()
    peer = args.before if args.before.exists() else None
    if peer is None:
        console.print(f"[yellow]no old install at {args.before}: timing this checkout only[/]")
    load_start = os.getloadavg()[0]
    rows: dict[str, dict[str, float | None]] = {}
    for path in paths:
        timed_before = peer is not None and len(path.split()) <= 1
        before: list[tuple[float, float]] = []
        after: list[tuple[float, float]] = []
        for _ in range(args.runs):
            if timed_before:
                before.append(timed_help(peer, path))
            after.append(timed_help(AFTER, path))
        row: dict[str, float | None] = dict(zip(("after_s", "after_cpu_s"), medians(after)))
        row |= {"before_s": None, "before_cpu_s": None, "speedup": None}
        if before:
            row["before_s"], row["before_cpu_s"] = medians(before)
            row["speedup"] = row["before_s"] / row["after_s"]
        rows[path] = row
        old = f" (old {row['before_s']:.3f} s)" if before else ""
        console.print(f"shiftwatch {path} --help: {row['after_s']:.3f} s{old}")
    table = Table(title=f"median wall time of --help, {args.runs} runs each, {cpu_model()}")
    for column in ("command", "old [s]", "new [s]", "old / new", "old CPU [s]", "new CPU [s]", f"new < {TARGET_S} s"):
        table.add_column(column, justify="left" if column == "command" else "right")
    for path, row in rows.items():
        table.add_row(
            f"shiftwatch {path} --help".replace("  ", " "),
            "-" if row["before_s"] is None else f"{row['before_s']:.3f}",
            f"{row['after_s']:.3f}",
            "-" if row["speedup"] is None else f"{row['speedup']:.1f}x",
            "-" if row["before_cpu_s"] is None else f"{row['before_cpu_s']:.3f}",
            f"{row['after_cpu_s']:.3f}",
            "yes" if row["after_s"] < TARGET_S else "NO",
        )
    console.print(table)
    after_times = [row["after_s"] for row in rows.values()]
    speedups = [row["speedup"] for row in rows.values() if row["speedup"] is not None]
    summary = {
        "slowest_after_s": max(after_times),
        "slowest_after_cpu_s": max(row["after_cpu_s"] for row in rows.values()),
        "all_under_target": all(t < TARGET_S for t in after_times),
        # Wall time meets the target only on a quiet machine; CPU time says whether it would.
        "all_cpu_under_target": all(row["after_cpu_s"] < TARGET_S for row in rows.values()),
        "median_speedup": statistics.median(speedups) if speedups else None,
        "min_speedup": min(speedups) if speedups else None,
    }
    console.print(summary)
    out = ROOT / "bench" / "results" / "cli_startup.json"
    result = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        # The machine is shared: the load average says how much of it this run had.
        "load_average_1m": {"start": load_start, "end": os.getloadavg()[0]},
        "runs_per_command": args.runs,
        "target_s": TARGET_S,
        "after": {"executable": str(AFTER), "commit": git_commit(ROOT), "heavy_loaded_by_help": heavy_loaded(AFTER)},
        "before": None if peer is None else {
            "executable": str(peer), "commit": git_commit(peer.resolve().parents[2]),
            "heavy_loaded_by_help": heavy_loaded(peer),
        },
        "commands": rows,
        "summary": summary,
    }  # fmt: skip
    out.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
