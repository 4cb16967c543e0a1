"""Schemathesis checks the relay under gunicorn against relay/openapi.yaml."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.relay.conftest import API_TOKEN, REPO_ROOT, RelayServer  # noqa: E402

schema = schemathesis.openapi.from_path(REPO_ROOT / "relay" / "openapi.yaml")

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_openapi_conformance(case, relay_server: RelayServer) -> None:
    headers = {"Authorization": f"Bearer {API_TOKEN}"}

    case.call_and_validate(base_url=relay_server.url, headers=headers, checks=CHECKS)
