"""The API token scopes: what a token may do. A module of its own so the CLI can name them without importing FastAPI."""

from __future__ import annotations

SCOPES = ("ingest", "read", "label", "operate", "approve")
