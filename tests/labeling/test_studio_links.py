"""Where Label Studio's image links and webhook point, and what the demo says and serves about it."""

from __future__ import annotations

import socket
from pathlib import Path

from shiftwatch.demo.story import serve_command, served_url
from shiftwatch.labeling.studio_links import links_note, loopback_port, serve_port, serving_port
from shiftwatch.settings import Settings
from tests.support.servers import free_port

STUDIO = "http://127.0.0.1:18080"


def studio_settings(tmp_path: Path, public_url: str, label_studio_url: str | None = STUDIO) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'sw.db'}", data_dir=tmp_path / "data", port=8123,
                    public_url=public_url, label_studio_url=label_studio_url)  # fmt: skip


def test_only_an_http_loopback_public_url_is_one_a_local_run_can_serve() -> None:
    assert loopback_port("http://127.0.0.1:8000") == 8000
    assert loopback_port("http://localhost") == 80
    assert loopback_port("https://127.0.0.1:8443") is None  # a local uvicorn serves plain http
    assert loopback_port("http://shiftwatch.example.com:8000") is None
    assert loopback_port("http://127.0.0.1:8000/prefix") is None


def test_the_demo_serves_where_its_links_point_when_that_port_is_free(tmp_path: Path) -> None:
    port = free_port()
    settings = studio_settings(tmp_path, f"http://127.0.0.1:{port}")
    assert serving_port(settings) == port
    assert serve_port(settings) == port and served_url(settings) == f"http://127.0.0.1:{port}"
    line = serve_command(settings)
    assert f"--port {port}" in line  # the later serve answers at the links' address too
    assert f"SHIFTWATCH_LABEL_STUDIO_URL={STUDIO}" in line  # so Label Studio's pages may load the images (CORS)
    assert f"SHIFTWATCH_PUBLIC_URL=http://127.0.0.1:{port}" in line
    note = links_note(settings, f"http://127.0.0.1:{port}")
    assert note.startswith(f"Label Studio's image links and webhook point at http://127.0.0.1:{port}, where this run")


def test_a_taken_port_or_a_remote_url_is_said_plainly(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = studio_settings(tmp_path, f"http://127.0.0.1:{port}")
        assert serving_port(settings) is None  # any free port; the note says what that means
    note = links_note(settings, "http://127.0.0.1:40001")
    assert f"point at http://127.0.0.1:{port} (SHIFTWATCH_PUBLIC_URL), not at this run's http://127.0.0.1:40001" in note
    assert "images load and labels arrive only while" in note
    remote = studio_settings(tmp_path, "https://shiftwatch.example.com")
    assert serving_port(remote) is None and serve_port(remote) == 8123


def test_without_label_studio_nothing_changes(tmp_path: Path) -> None:
    settings = studio_settings(tmp_path, "http://127.0.0.1:9999", label_studio_url=None)
    assert serving_port(settings) is None and serve_port(settings) == 8123
    assert "LABEL_STUDIO" not in serve_command(settings) and "--port 8123" in serve_command(settings)
