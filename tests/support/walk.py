"""A user's session against a real ``shiftwatch serve``: the server as a process, the CLI as commands, HTTP as HTTP.

For the tests that walk the loop the way a newcomer does (``tests/laps/``): nothing here opens the
server's database; every step is a ``shiftwatch`` command or an HTTP call with a scoped token.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from tests.support.servers import free_port

REPO = Path(__file__).resolve().parents[2]
# Every scope: the walk's one person logs, reads, labels, operates and approves.
ALL_SCOPES = ("ingest", "read", "label", "operate", "approve")


def store_environment(database_url: str, folder: Path, port: int) -> dict[str, str]:
    """SHIFTWATCH_* for a store in ``folder``, a server on ``port`` whose jobs tick every second."""
    return {
        "SHIFTWATCH_DATABASE_URL": database_url,
        "SHIFTWATCH_DATA_DIR": str(folder / "data"),
        "SHIFTWATCH_PORT": str(port),
        "SHIFTWATCH_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "SHIFTWATCH_DETECTOR_TICK_SECONDS": "1",
        "SHIFTWATCH_ROLLOUT_TICK_SECONDS": "1",
        "SHIFTWATCH_GATEWAY_REFRESH_SECONDS": "0.5",
        "SHIFTWATCH_LABELING_SYNC_INTERVAL_S": "86400",  # the walk asks for each labeling batch itself
        # Two laps of days squeezed into minutes: lap 1's canary batches alone can spend 2,000 (seen in CI: lap 2's
        # production arm then got 14 audit labels and its SPRT stayed undecided).
        "SHIFTWATCH_LABELING_DAILY_BUDGET": "10000",
        # A walk's few thousand rows keep every embedding, as the demo's do (the sample pays at fleet volume).
        "SHIFTWATCH_EMBEDDING_KEEP_RATE": "1",
    }


class Cli:
    """``shiftwatch ARGS`` in a fresh process with the store's environment; the repository is importable
    (a factory named ``tests.laps...:build`` resolves as a user's ``mypkg.nets:build`` would)."""

    def __init__(self, environment: Mapping[str, str], cwd: Path) -> None:
        self.environment = {**os.environ, **environment, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
        self.cwd = cwd

    def run(self, *args: str, ok: tuple[int, ...] = (0,), timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "shiftwatch", *args], env=self.environment, cwd=self.cwd,
                              capture_output=True, text=True, timeout=timeout_s, check=False)
        assert done.returncode in ok, f"shiftwatch {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        return done


@contextmanager
def served(cli: Cli, port: int, log: Path) -> Iterator[str]:
    """``shiftwatch serve`` as a process on ``port`` (the store migrated by it); its URL while it runs."""
    url = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "shiftwatch", "serve", "--port", str(port)],
                                   env=cli.environment, cwd=cli.cwd, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 90
            while True:
                assert process.poll() is None, f"shiftwatch serve exited {process.returncode}:\n{log.read_text()}"
                try:
                    if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, f"shiftwatch serve did not answer:\n{log.read_text()}"
                time.sleep(0.3)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class Http:
    """JSON calls with one bearer token; a refusal fails the test with the server's reason."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)

    def call(self, method: str, path: str, json: Any = None, **params: Any) -> Any:
        response = self.client.request(method, path, json=json, params=params or None)
        assert response.status_code < 400, f"{method} {path}: {response.status_code} {response.text}"
        return response.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, **params)

    def post(self, path: str, json: Any = None, **params: Any) -> Any:
        return self.call("POST", path, {} if json is None else json, **params)


def png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


class Clients:
    """Many clients sending PNGs to the gateway at once; remembers each request's true class."""

    def __init__(self, http: Http, model: str) -> None:
        self.http = http
        self.model = model
        self.truth: dict[str, int] = {}
        self.sent = 0

    def send(self, images: np.ndarray, labels: np.ndarray) -> list[dict[str, Any]]:
        ids = [f"req-{self.sent + i:06d}" for i in range(len(images))]
        self.sent += len(images)
        self.truth.update(zip(ids, (int(y) for y in labels)))

        def one(pair: tuple[str, np.ndarray]) -> dict[str, Any]:
            request_id, pixels = pair
            response = self.http.client.post(
                f"/v1/models/{self.model}/predict", content=png(pixels),
                headers={"content-type": "image/png", "x-request-id": request_id, "x-client-key": request_id})
            assert response.status_code == 200, response.text
            return dict(response.json())

        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(one, zip(ids, images)))


def last_json(text: str) -> Any:
    """The JSON document a command printed last (``retrain`` prints its progress before it)."""
    import json

    return json.loads(text if text.startswith(("{", "[")) else text[text.rfind("\n{") + 1:])


def accuracy(answers: list[dict[str, Any]], labels: np.ndarray) -> float:
    return float(np.mean([answer["class"] == int(y) for answer, y in zip(answers, labels)]))


def label_queue(http: Http, cli: Cli, clients: Clients, class_names: list[str], path: Path) -> int:
    """What an annotator does without Label Studio: read the queue, write a labels file, import it."""
    tasks = http.get("/v1/labeling/tasks", model=clients.model, state="pending", limit=1000)
    rows = [(task["prediction_id"], class_names[clients.truth[task["request_id"]]]) for task in tasks
            if task.get("request_id") in clients.truth]
    if not rows:
        return 0
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prediction_id", "label"])
        writer.writerows(rows)
    cli.run("labeling", "import", str(path), "--model", clients.model)
    return len(rows)


def label_sample(http: Http, cli: Cli, clients: Clients, class_names: list[str], version: str, since: str, n: int,
                 path: Path) -> int:
    """A uniform sample of ``version``'s production predictions since ``since`` (GET /v1/predictions), labeled by file:
    what a team adds when the queue is short because the model is confidently wrong."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = http.get("/v1/predictions", model=clients.model, version=version, route="production", start=since,
                        limit=1000, **({"cursor": cursor} if cursor else {}))
        found += [p for p in page["items"] if p.get("request_id") in clients.truth]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    picks = np.random.default_rng(0).permutation(len(found))[:n]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prediction_id", "label"])
        writer.writerows((found[i]["id"], class_names[clients.truth[found[i]["request_id"]]]) for i in picks)
    cli.run("labeling", "import", str(path), "--model", clients.model)
    return len(picks)


def wait_for(check: Any, timeout_s: float, what: str, poll_s: float = 0.5) -> Any:
    """Poll ``check()`` until it returns something truthy; fail the test saying ``what`` did not happen."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(poll_s)
    raise AssertionError(f"{what} did not happen within {timeout_s:.0f} s")


def new_port() -> int:
    return free_port()
