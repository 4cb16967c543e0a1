"""Per-channel rate and quota limits, under real gunicorn."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.relay.conftest import (
    JobClient,
    RelayServer,
    progress,
    relay_settings,
    signed_post,
)


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayServer]:
    workdir: Path = tmp_path_factory.mktemp("strict")
    settings = relay_settings(
        None,
        f"sqlite:///{workdir / 'relay.db'}",
        RATE_PER_S="0.5",
        RATE_BURST="3",
        CHANNEL_QUOTA="2",
        SANDBOX_LIMIT="1",
    )
    # One worker so the in-process rate bucket is the only one.
    settings["RELAY_WORKERS"] = "1"
    server = RelayServer(settings, workdir).start()
    yield server
    server.stop()


@pytest.fixture
def job(strict_server: RelayServer) -> Iterator[JobClient]:
    client = JobClient(strict_server.url)
    yield client
    client.http.close()


def test_rate_limit_is_429_with_retry_after(job: JobClient) -> None:
    channel = job.open_run()["channel"]
    sandbox = job.add_sandbox(channel, "sb")
    statuses = [
        signed_post(job.http, sandbox, {"type": "x", "data": {}}).status_code
        for _ in range(3)
    ]

    response = signed_post(job.http, sandbox, progress("over"))

    assert statuses == [422, 422, 422]
    assert response.status_code == 429
    assert response.json()["error"] == "rate_limited"
    assert int(response.headers["Retry-After"]) >= 1


def test_quota_is_429_and_retry_keeps_seq(job: JobClient) -> None:
    channel = job.open_run()["channel"]
    sandbox = job.add_sandbox(channel, "sb")
    first = signed_post(job.http, sandbox, progress("1"), webhook_id="q-1")
    signed_post(job.http, sandbox, progress("2"), webhook_id="q-2")

    over = signed_post(job.http, sandbox, progress("3"), webhook_id="q-3")

    assert first.json()["seq"] == 1
    assert over.status_code == 429
    assert over.json()["error"] == "quota_exceeded"
    assert "Retry-After" in over.headers
    assert [e["id"] for e in job.events(channel)["events"]] == ["q-1", "q-2"]


def test_sandbox_limit_is_409(job: JobClient) -> None:
    channel = job.open_run()["channel"]
    job.add_sandbox(channel, "sb")

    response = job.http.post(
        f"/v1/runs/{channel}/sandboxes", json={"name": "sb2"}, headers=job.headers()
    )

    assert response.status_code == 409
    assert response.json()["error"] == "sandbox_limit"


def test_expired_channel_is_410(tmp_path: Path) -> None:
    settings = relay_settings(
        None, f"sqlite:///{tmp_path / 'relay.db'}", CHANNEL_TTL_S="1"
    )
    server = RelayServer(settings, tmp_path).start()
    job = JobClient(server.url)
    channel = job.open_run()["channel"]
    sandbox = job.add_sandbox(channel, "sb")
    time.sleep(1.1)

    response = signed_post(job.http, sandbox, progress("late"))

    page = job.events(channel)
    job.http.close()
    server.stop()
    assert response.status_code == 410
    assert response.json()["error"] == "channel_closed"
    assert page["channel_state"] == "expired"
    assert page["events"] == []
