"""O4 against the API's own description: schemathesis generates requests from `/api/openapi.json` (valid and
invalid ones) and checks that no answer is a 5xx and every answer matches the document (status, content type,
body schema, headers). Each secured call gets a fresh access token, so a logout in one example does not
starve the others."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from sessionward.app import create_app
from sessionward.app.openapi import openapi_document
from sessionward.clock import ManualClock
from sessionward.flask import state, token_service

PASSWORD = "correct horse battery staple"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Any:
    app = create_app(tmp_path_factory.mktemp("openapi") / "instance", clock=ManualClock())
    with app.app_context():
        user = state().users.create("alice", PASSWORD)
    return app, user


@pytest.fixture(scope="module")
def api_schema(service: Any) -> Any:
    app, _ = service
    return schemathesis.openapi.from_wsgi("/api/openapi.json", app)


# One test per operation and generation mode, from the same document the app serves. (schemathesis'
# `from_fixture`/`parametrize` pytest integration does not run under pytest 9 here, so the cases are drawn
# from each operation's Hypothesis strategy directly.)
# schemathesis leaves out the operation that serves the document itself.
# Negative cases only where there is something to break (a body or a path parameter).
CASES = [
    (method.upper(), path, mode)
    for path, item in openapi_document()["paths"].items()
    for method, op in item.items()
    if path != "/api/openapi.json"
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or "requestBody" in op or "parameters" in op
]


def test_document_is_valid_openapi_3_1(service: Any) -> None:
    app, _ = service
    import jsonschema_rs  # schemathesis' own validator

    doc = app.test_client().get("/api/openapi.json").get_json()
    assert doc["openapi"] == "3.1.0"
    for component in doc["components"]["schemas"].values():
        jsonschema_rs.meta.validate({"$schema": "https://json-schema.org/draft/2020-12/schema", **component})
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert op["responses"], (method, path)
            if op["security"]:
                assert {"400", "401", "503"} <= set(op["responses"]), (method, path)


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=[f"{m} {p} {g.value}" for m, p, g in CASES])
def test_api_conforms_to_its_openapi_document(api_schema: Any, service: Any, method: str, path: str, mode: Any) -> None:
    app, user = service
    operation = api_schema.find_operation_by_path(method, path)
    secured = bool(operation.definition.raw.get("security"))

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case: Any) -> None:
        headers = None
        if secured:
            with app.app_context():
                headers = {"Authorization": f"Bearer {token_service().issue(user.id, fresh=True).access_token}"}
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()
