"""Job authentication with GitHub Actions OIDC tokens, under real gunicorn."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.fakes.oidc import FakeOIDCIssuer, generate_key
from tests.relay.conftest import RelayServer


@pytest.fixture
def http(relay_server: RelayServer) -> Iterator[httpx.Client]:
    client = httpx.Client(base_url=relay_server.url, timeout=10)
    yield client
    client.close()


def open_run(http: httpx.Client, token: str, run: str = "ignored") -> httpx.Response:
    return http.post(
        "/v1/runs", json={"run": run}, headers={"Authorization": f"Bearer {token}"}
    )


def test_oidc_valid_token_opens_channel(
    http: httpx.Client, oidc_issuer: FakeOIDCIssuer, relay_server: RelayServer
) -> None:
    token = oidc_issuer.mint(relay_server.url, run_id="9001")

    response = open_run(http, token)

    assert response.status_code == 201
    assert response.json()["state"] == "open"


def test_oidc_channel_key_ignores_request_body(
    http: httpx.Client, oidc_issuer: FakeOIDCIssuer, relay_server: RelayServer
) -> None:
    token = oidc_issuer.mint(relay_server.url, run_id="9002")
    first = open_run(http, token, run="a")

    second = open_run(http, token, run="b")

    assert second.status_code == 200
    assert second.json()["channel"] == first.json()["channel"]


def test_oidc_new_attempt_gets_new_channel(
    http: httpx.Client, oidc_issuer: FakeOIDCIssuer, relay_server: RelayServer
) -> None:
    first = open_run(http, oidc_issuer.mint(relay_server.url, run_id="9003"))

    rerun = oidc_issuer.mint(relay_server.url, run_id="9003", run_attempt="2")
    second = open_run(http, rerun)

    assert second.status_code == 201
    assert second.json()["channel"] != first.json()["channel"]


def test_oidc_expired_token_rejected(
    http: httpx.Client, oidc_issuer: FakeOIDCIssuer, relay_server: RelayServer
) -> None:
    token = oidc_issuer.mint(relay_server.url, issued_at=time.time() - 400)

    response = open_run(http, token)

    assert response.status_code == 401
    assert "expired" in response.json()["detail"].lower()


def test_oidc_wrong_audience_rejected(
    http: httpx.Client, oidc_issuer: FakeOIDCIssuer
) -> None:
    token = oidc_issuer.mint("https://github.com/octo")

    response = open_run(http, token)

    assert response.status_code == 401
    assert "audience" in response.json()["detail"].lower()


def test_oidc_wrong_issuer_rejected(
    http: httpx.Client, oidc_issuer: FakeOIDCIssuer, relay_server: RelayServer
) -> None:
    token = oidc_issuer.mint(
        relay_server.url, issuer="https://token.actions.githubusercontent.com"
    )

    response = open_run(http, token)

    assert response.status_code == 401
    assert "issuer" in response.json()["detail"]


def test_oidc_foreign_key_rejected(
    http: httpx.Client, oidc_issuer: FakeOIDCIssuer, relay_server: RelayServer
) -> None:
    token = oidc_issuer.mint(relay_server.url, key=generate_key())

    response = open_run(http, token)

    assert response.status_code == 401


def test_oidc_unsigned_token_rejected(
    http: httpx.Client, oidc_issuer: FakeOIDCIssuer, relay_server: RelayServer
) -> None:
    import jwt

    claims = {"iss": oidc_issuer.url, "aud": relay_server.url, "repository_id": "1001"}
    token = jwt.encode({**claims, "exp": time.time() + 300}, None, algorithm="none")

    response = open_run(http, token)

    assert response.status_code == 401


def test_oidc_repository_not_allowlisted_is_403(
    http: httpx.Client, oidc_issuer: FakeOIDCIssuer, relay_server: RelayServer
) -> None:
    token = oidc_issuer.mint(
        relay_server.url, repository_id="4242", repository_owner_id="77"
    )

    response = open_run(http, token)

    assert response.status_code == 403
    assert "4242" in response.json()["detail"]


def test_oidc_other_run_cannot_read_channel(
    http: httpx.Client, oidc_issuer: FakeOIDCIssuer, relay_server: RelayServer
) -> None:
    owner = oidc_issuer.mint(relay_server.url, run_id="9101")
    channel = open_run(http, owner).json()["channel"]
    stranger = oidc_issuer.mint(relay_server.url, run_id="9102")

    response = http.get(
        f"/v1/runs/{channel}/events", headers={"Authorization": f"Bearer {stranger}"}
    )

    assert response.status_code == 404


def test_static_token_cannot_read_oidc_channel(
    http: httpx.Client, oidc_issuer: FakeOIDCIssuer, relay_server: RelayServer
) -> None:
    from tests.relay.conftest import API_TOKEN

    owner = oidc_issuer.mint(relay_server.url, run_id="9201")
    channel = open_run(http, owner).json()["channel"]

    response = http.delete(
        f"/v1/runs/{channel}", headers={"Authorization": f"Bearer {API_TOKEN}"}
    )

    assert response.status_code == 404
