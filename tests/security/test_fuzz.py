"""schemathesis against the app's own OpenAPI schema: no generated input (valid or not) gets a 5xx.

Bounded: 12 valid and 12 invalid examples per operation, derandomized (a failure reproduces,
a pass is not luck), no per-example deadline (the shared CI machine stalls at times).
schemathesis generates the requests; they are sent through Starlette's TestClient (real ASGI)
because schemathesis' own transport breaks on the urllib3-future this venv carries
(``TrafficPolice`` has no ``keys``) and its lazy pytest loader on pytest 9.2.
"""

from __future__ import annotations

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, reject, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

# ~40 operations x 2 modes x 12 examples: about 20 s per backend on the shared 2-core machine.
EXAMPLES_PER_MODE = 12


def send(client: TestClient, case) -> int:
    kwargs = case.as_transport_kwargs(base_url=str(client.base_url))
    body = {}
    if "json" in kwargs:
        body["json"] = kwargs["json"]
    elif "data" in kwargs:
        body["content"] = kwargs["data"]
    try:
        response = client.request(
            kwargs["method"], kwargs["url"], params=kwargs.get("params"), headers=kwargs.get("headers"), **body
        )
    except (UnicodeEncodeError, ValueError, TypeError):
        reject()  # a request HTTP itself cannot carry (non-latin-1 header): not the server's concern
    return response.status_code


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgres"])  # the production backend; the only one that found a bug
def test_no_generated_request_gets_a_server_error(backend, app, digits_model):
    # digits_model: a registered model, so generated names sometimes hit real rows, not only 404s.
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8
    with TestClient(app, raise_server_exceptions=False) as client:
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                @given(case=operation.as_strategy(mode))
                @settings(
                    max_examples=EXAMPLES_PER_MODE,
                    deadline=None,
                    derandomize=True,
                    database=None,
                    suppress_health_check=list(HealthCheck),
                )
                def no_server_error(case) -> None:
                    status = send(client, case)
                    assert status < 500, f"{case.method} {case.formatted_path} -> {status}: {case.as_curl_command()}"

                try:
                    no_server_error()
                except Unsatisfiable:
                    assert mode is GenerationMode.NEGATIVE  # nothing to get wrong (no parameters, no body)


def test_non_ascii_signature_on_a_signed_link_is_refused_not_a_server_error(api):
    # Found by the fuzz run: hmac.compare_digest raises TypeError on non-ASCII str.
    response = api.get("/v1/labeling/inputs/" + "0" * 64 + ".png", params={"expires": "9999999999", "signature": "\x80"})
    assert response.status_code == 403


def test_nul_characters_are_refused_not_a_server_error(api, digits_model):
    # Found by the fuzz run above: PostgreSQL refuses NUL in text, which used to surface as a 500.
    assert api.get("/v1/predictions", params={"model": "\x00", "version": "v1"}).status_code in (404, 422)
    assert api.get("/v1/models/a%00b").status_code in (404, 422)
    created = api.post("/v1/models", json={"name": "a\x00b", "class_names": ["x", "y"]})
    assert created.status_code in (201, 422)
    if created.status_code == 422:
        assert created.json()["field"] in ("name", "request")
