"""The OpenAPI document tells the truth about the running server, checked by a property-based fuzzer.

Schemathesis generates requests from ``/api/openapi.json`` (valid and invalid ones, in its coverage,
fuzzing and stateful phases) and sends them to a real uvicorn server; the run fails on any 5xx, any
status code or response body the document does not declare, any schema-valid request refused and any
schema-violating request accepted, and a wrong ``Allow`` header on 405.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from schemathesis_hooks import issued_cursor

from agentspan.runtime import Service
from agentspan.testing import ServerHandle

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "positive_data_acceptance",
        "negative_data_rejection",
        "unsupported_method",
        "allow_header_conformance",
    ]
)


@pytest.mark.slow
def test_the_api_conforms_to_its_openapi_document(http_server: ServerHandle, tmp_path: Path) -> None:
    # The event stream is left out: for a live execution it never ends, by design (tests/test_http_api.py
    # and tests/test_http_faults.py cover it, Last-Event-ID included).
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]),
        "AGENTSPAN_FUZZ_CURSOR": issued_cursor(http_server.url),
        "NO_COLOR": "1",
    }
    # One worker: schemathesis describes its strategies with ast.parse, which is not thread-safe on
    # CPython 3.11 (gh-106905) and failed the run now and then with two workers.
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{http_server.url}/openapi.json",
        "--checks", CHECKS, "--max-examples", "15", "--workers", "1", "--request-timeout", "10",
        "--exclude-path-regex", "/events/stream$", "--seed", "20261202", "--no-color",
    ]  # fmt: skip
    result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=200)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-12000:]


# --- what the fuzzer found, one by one -------------------------------------------------------------------
def _document(server: ServerHandle) -> dict[str, Any]:
    document: dict[str, Any] = httpx.get(f"{server.url}/openapi.json").json()
    return document


def test_every_operation_declares_its_error_answers(http_server: ServerHandle) -> None:
    document = _document(http_server)
    for path, item in document["paths"].items():
        for method, operation in item.items():
            codes = set(operation["responses"])
            expected = {"400", "401", "403", "422", "503"}
            expected |= {"404"} if "{" in path else set()
            expected |= {"413", "415"} if method != "get" else set()
            assert expected <= codes, (method, path, codes)
            for code in expected:
                schema = operation["responses"][code]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_the_records_route_declares_its_path_parameter(http_server: ServerHandle) -> None:
    operation = _document(http_server)["paths"]["/api/executions/{execution_id}/records"]["post"]
    assert [(p["name"], p["in"], p["required"]) for p in operation["parameters"]] == [("execution_id", "path", True)]
    assert "409" in operation["responses"]


def test_records_require_their_type_discriminator(http_server: ServerHandle) -> None:
    schemas = _document(http_server)["components"]["schemas"]
    for name in ("StepRecord", "DivergenceRecord", "FinishRecord"):
        assert "type" in schemas[name]["required"], name


def test_documented_constraints_are_the_enforced_ones(http_server: ServerHandle) -> None:
    document = _document(http_server)
    events = {p["name"]: p for p in document["paths"]["/api/executions/{execution_id}/events"]["get"]["parameters"]}
    assert events["wait"]["schema"]["maximum"] == 300
    listing = {p["name"]: p for p in document["paths"]["/api/executions"]["get"]["parameters"]}
    assert listing["limit"]["schema"]["minimum"] == 1 and listing["limit"]["schema"]["maximum"] == 1000
    claim = document["components"]["schemas"]["ClaimBody"]["properties"]
    assert claim["names"]["minItems"] == 1 and claim["wait_seconds"]["maximum"] == 300
    definition = document["paths"]["/api/definitions/{name}"]["get"]["parameters"][0]
    assert definition["schema"]["pattern"] == r"^[A-Za-z0-9_.:\-/]+$"


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("GET", "/executions", {"params": {"cursor": ""}}),
        ("GET", "/executions", {"params": {"created_before": "0.5"}}),
        ("GET", "/executions", {"params": {"status": "sleeping"}}),
        ("GET", "/executions", {"params": {"limit": 0}}),
        ("POST", "/claims", {"json": {"worker_id": "w", "names": []}}),
        ("POST", "/claims", {"json": {"worker_id": "w", "names": ["fn"], "wait_seconds": False}}),
        ("GET", "/definitions/has spaces", {}),
    ],
    ids=["empty-cursor", "number-as-time", "unknown-status", "limit-0", "no-names", "bool-as-number", "bad-name"],
)
def test_requests_the_document_calls_invalid_are_422(
    http_server: ServerHandle, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    response = httpx.request(method, http_server.url + path, **kwargs)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["type"] == "InvalidInputError"


def test_an_empty_last_event_id_means_from_the_start(http_server: ServerHandle, service: Service) -> None:
    execution = service.cancel_execution(service.create_execution("fn", None).id)  # a stream that ends
    url = f"{http_server.url}/executions/{execution.id}/events/stream"
    response = httpx.get(url, headers={"Last-Event-ID": ""})
    assert response.status_code == 200, response.text
    assert "event: execution.cancelled" in response.text


@pytest.mark.parametrize(
    ("path", "allowed"),
    [("/definitions/a/b", "DELETE, GET, PUT"), ("/executions/x", "DELETE, GET"), ("/claims", "POST")],
)
def test_405_names_every_method_of_the_path(http_server: ServerHandle, path: str, allowed: str) -> None:
    response = httpx.request("PATCH", http_server.url + path)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert allowed in response.json()["error"]["message"]
