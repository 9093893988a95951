"""The demo's HTTP client: the same endpoints, token and JSON a user's script or ``curl`` gets.

The demo is a user (docs/STYLE.md, "The demo is a user"): everything it asks of its running server goes
through here or through ``shell.py`` (the CLI); it never opens the server's database.
"""

from __future__ import annotations

import io
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np


class DemoApiError(RuntimeError):
    """The server refused a call; the message carries its status and reason, as a user would read them."""

    def __init__(self, status: int, method: str, path: str, detail: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


class Api:
    """JSON over HTTP to the demo's server, with one bearer token (the demo operator's)."""

    def __init__(self, url: str, token: str, timeout_s: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.client = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout_s)

    def call(self, method: str, path: str, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        response = self.client.request(method, path, json=json, params=params)
        if response.status_code >= 400:
            try:
                detail = str(response.json().get("detail", response.text))
            except ValueError:
                detail = response.text[:500]
            raise DemoApiError(response.status_code, method, path, detail)
        if "json" not in response.headers.get("content-type", ""):
            return response.text
        return response.json()

    def put_arrays(self, path: str, arrays: dict[str, np.ndarray]) -> Any:
        """PUT arrays as .npy parts of a multipart form (the reference upload)."""
        files = {}
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.save(buffer, array)
            files[name] = (f"{name}.npy", buffer.getvalue(), "application/octet-stream")
        response = self.client.put(path, files=files)
        if response.status_code >= 400:
            raise DemoApiError(response.status_code, "PUT", path, response.text[:500])
        return response.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, json: Any = None, **params: Any) -> Any:
        """A POST sends JSON, ``{}`` when it has no body (the API wants a JSON content type on every POST)."""
        return self.call("POST", path, json={} if json is None else json,
                         params={k: v for k, v in params.items() if v is not None})

    def versions(self, model: str) -> list[dict[str, Any]]:
        return list(self.get(f"/v1/models/{quote(model, safe='')}/versions"))

    def version_in(self, model: str, state: str) -> str | None:
        """The newest version of ``model`` in ``state`` (production, candidate, retired), or None."""
        found = [v["version"] for v in self.versions(model) if v["state"] == state]
        return found[-1] if found else None

    def stop(self) -> None:
        """Close the connection pool (the demo stops its resources at the end)."""
        self.client.close()
