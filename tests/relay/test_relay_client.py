"""The job-side relay client against the relay under gunicorn."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tack_action.relay_client import (
    ActionsOIDCToken,
    CursorFile,
    RelayClient,
    RelayClientError,
    StaticToken,
)
from tests.fakes.oidc import REQUEST_TOKEN, FakeOIDCIssuer
from tests.relay.conftest import API_TOKEN, RelayServer, free_port, progress
from tests.relay.conftest import signed_post as post_signed


@pytest.fixture
def short_lived_tokens(oidc_issuer: FakeOIDCIssuer) -> Iterator[FakeOIDCIssuer]:
    oidc_issuer.token_requests = 0
    yield oidc_issuer
    oidc_issuer.token_lifetime_s = 300


def test_oidc_token_is_cached_while_fresh(
    short_lived_tokens: FakeOIDCIssuer, relay_server: RelayServer
) -> None:
    source = ActionsOIDCToken(
        short_lived_tokens.request_url, REQUEST_TOKEN, relay_server.url
    )

    first = source.token()
    second = source.token()

    assert second == first
    assert short_lived_tokens.token_requests == 1


def test_oidc_token_reminted_near_expiry(
    short_lived_tokens: FakeOIDCIssuer, relay_server: RelayServer
) -> None:
    short_lived_tokens.token_lifetime_s = 30
    source = ActionsOIDCToken(
        short_lived_tokens.request_url, REQUEST_TOKEN, relay_server.url
    )

    source.token()
    source.token()

    assert short_lived_tokens.token_requests == 2


def test_oidc_token_from_env_needs_variables() -> None:
    with pytest.raises(RelayClientError) as caught:
        ActionsOIDCToken.from_env({}, "https://relay.example")

    assert "ACTIONS_ID_TOKEN_REQUEST_URL" in str(caught.value)


def test_client_opens_channel_with_oidc(
    oidc_issuer: FakeOIDCIssuer, relay_server: RelayServer
) -> None:
    environ = {
        "ACTIONS_ID_TOKEN_REQUEST_URL": oidc_issuer.request_url,
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": REQUEST_TOKEN,
    }
    tokens = ActionsOIDCToken.from_env(environ, relay_server.url)
    client = RelayClient(relay_server.url, tokens)

    channel = client.open_channel()
    sandbox = client.create_sandbox(channel.channel, "builder-1")

    client.close()
    assert channel.state == "open"
    assert sandbox.callback_url == f"{channel.callback_url}/builder-1"


def test_client_resumes_after_last_handled(
    relay_server: RelayServer, tmp_path: Path
) -> None:
    client = RelayClient(relay_server.url, StaticToken(API_TOKEN))
    channel = client.open_channel(run="resume-1").channel
    sandbox = client.create_sandbox(channel, "sb")
    http = httpx.Client(timeout=10)
    for i in range(3):
        post_signed(http, sandbox.__dict__, progress(f"p{i}"))
    cursor = CursorFile(tmp_path / "cursor")
    first_run = client.iter_events(channel, cursor, wait=0)
    # The job finishes event 1 and crashes while it handles event 2.
    seen = [next(first_run).seq, next(first_run).seq]
    first_run.close()
    client.close_channel(channel)

    restarted = RelayClient(relay_server.url, StaticToken(API_TOKEN))
    rest = [event.seq for event in restarted.iter_events(channel, cursor, wait=0)]

    http.close()
    assert seen == [1, 2]
    assert rest == [2, 3]
    assert cursor.load() == 3


def test_client_unreachable_relay_raises() -> None:
    delays: list[float] = []
    url = f"http://127.0.0.1:{free_port()}"
    client = RelayClient(
        url, StaticToken(API_TOKEN), max_attempts=3, sleep=delays.append
    )

    with pytest.raises(RelayClientError) as caught:
        client.open_channel(run="r")

    assert "unreachable after 3 attempts" in str(caught.value)
    assert len(delays) == 2


def test_client_rejected_request_raises_with_status(
    relay_server: RelayServer,
) -> None:
    client = RelayClient(relay_server.url, StaticToken("wrong-token-0123456789"))

    with pytest.raises(RelayClientError) as caught:
        client.open_channel(run="r")

    assert caught.value.status == 401
