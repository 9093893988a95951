"""Issue 16.7: another site's page may not reach the API through a rebound DNS name or a simple POST.

Through the real ASGI app with auth off (the loopback demo, where no token stands in the way),
and through a real uvicorn on loopback, on both backends.
"""

from __future__ import annotations

import httpx
import pytest

from shiftwatch.app import create_app
from tests.support.servers import LiveServer

SIMPLE_CONTENT_TYPES = ["", "text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
                        "multipart/form-data; boundary=x"]


def post_as(api, url: str, content_type: str, body: bytes = b"") -> httpx.Response:
    headers = {"content-type": content_type} if content_type else {}
    return api.post(url, content=body, headers=headers)


@pytest.mark.parametrize("host", ["evil.example", "attacker.test:8000", "127.0.0.1.nip.io", ""])
def test_a_foreign_host_is_refused_before_any_route_runs(api, digits_model, host):
    response = api.post("/v1/labeling/select", params={"model": "digits"}, json={}, headers={"host": host})
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "host" and "SHIFTWATCH_ALLOWED_HOSTS" in response.json()["detail"]
    assert api.get("/v1/models", headers={"host": host}).status_code == 400
    assert api.get("/health", headers={"host": host}).status_code == 200  # probes by address; says nothing


def test_loopback_the_public_url_host_and_configured_hosts_are_answered(settings, db, digits_model):
    configured = settings.model_copy(update={"public_url": "https://shiftwatch.example.com",
                                             "allowed_hosts": ["gateway.internal"]})
    server = LiveServer(create_app(configured, db)).start()
    try:
        def status(host: str) -> int:
            return httpx.get(f"{server.url}/v1/models", headers={"host": host}, timeout=10).status_code

        port = server.port
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST", "127.0.0.2", "shiftwatch.example.com",
                     "SHIFTWATCH.example.com:443", "gateway.internal:8000"):
            assert status(host) == 200, host
        for host in ("testserver", "shiftwatch.example.com.evil.net", "example.com", "gateway.internal.evil"):
            assert status(host) == 400, host
    finally:
        server.stop()


@pytest.mark.parametrize("content_type", SIMPLE_CONTENT_TYPES)
def test_posts_a_browser_may_send_cross_site_are_refused(api, digits_model, content_type):
    selected = post_as(api, "/v1/labeling/select?model=digits", content_type)
    assert selected.status_code == 415, selected.text
    assert selected.json()["field"] == "content-type" and "application/json" in selected.json()["detail"]
    # 415, not the 404 the route would give: the request never reached it.
    assert post_as(api, "/v1/alerts/999/acknowledge", content_type).status_code == 415
    assert post_as(api, "/v1/alerts/999/resolve", content_type, b"{}").status_code == 415
    ingest = post_as(api, "/v1/predictions", content_type, b'{"model": "digits", "version": "v1", "records": []}')
    assert ingest.status_code == 415


def test_json_posts_reach_their_routes_with_or_without_a_body(api, digits_model):
    assert api.post("/v1/labeling/select?model=digits", headers={"content-type": "application/json"}).status_code == 200
    assert api.post("/v1/alerts/999/acknowledge", json={}).status_code == 404
    assert post_as(api, "/v1/alerts/999/resolve", "application/json; charset=utf-8").status_code == 404
    # GET stays as it was: a read needs no content type.
    assert api.get("/v1/models").status_code == 200
