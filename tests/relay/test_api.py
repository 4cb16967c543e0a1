"""The relay's job and callback API under real gunicorn."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.relay.conftest import JobClient, RelayServer, progress, signed_post


@pytest.fixture
def job(relay_server: RelayServer) -> Iterator[JobClient]:
    client = JobClient(relay_server.url)
    yield client
    client.http.close()


@pytest.fixture
def run(job: JobClient) -> dict[str, Any]:
    channel = job.open_run()
    sandbox = job.add_sandbox(channel["channel"], "builder-1")
    return {"channel": channel["channel"], "sandbox": sandbox}


def test_healthz_answers_ok(job: JobClient) -> None:
    response = job.http.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_checks_storage(job: JobClient) -> None:
    response = job.http.get("/readyz")

    assert response.status_code == 200


def test_open_run_is_idempotent(job: JobClient) -> None:
    first = job.http.post("/v1/runs", json={"run": "r-1"}, headers=job.headers())

    second = job.http.post("/v1/runs", json={"run": "r-1"}, headers=job.headers())

    assert first.status_code == 201
    assert second.status_code == 200
    assert second.json()["channel"] == first.json()["channel"]


def test_open_run_without_token_is_401(job: JobClient) -> None:
    response = job.http.post("/v1/runs", json={"run": "r-2"})

    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert response.headers["X-Request-Id"] == response.json()["request_id"]


def test_open_run_static_token_needs_run(job: JobClient) -> None:
    response = job.http.post("/v1/runs", json={}, headers=job.headers())

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_run"


def test_callback_delivered_to_job(job: JobClient, run: dict[str, Any]) -> None:
    http = job.http

    response = signed_post(http, run["sandbox"], progress("cloned"), webhook_id="m-1")

    assert response.status_code == 200
    assert response.json() == {"seq": 1, "duplicate": False}
    page = job.events(run["channel"])
    assert page["next_after"] == 1
    assert page["channel_state"] == "open"
    assert page["events"][0]["id"] == "m-1"
    assert page["events"][0]["sandbox"] == "builder-1"
    assert page["events"][0]["data"] == {"message": "cloned"}


def test_callback_replay_returns_original_seq(
    job: JobClient, run: dict[str, Any]
) -> None:
    signed_post(job.http, run["sandbox"], progress("one"), webhook_id="m-1")
    signed_post(job.http, run["sandbox"], progress("two"), webhook_id="m-2")

    replay = signed_post(job.http, run["sandbox"], progress("one"), webhook_id="m-1")

    assert replay.status_code == 200
    assert replay.json() == {"seq": 1, "duplicate": True}
    assert [e["id"] for e in job.events(run["channel"])["events"]] == ["m-1", "m-2"]


def test_callback_forged_signature_rejected(
    job: JobClient, run: dict[str, Any]
) -> None:
    forged = "whsec_" + "A" * 43 + "="

    response = signed_post(job.http, run["sandbox"], progress("x"), secret=forged)

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_signature"
    assert job.events(run["channel"])["events"] == []


def test_callback_tampered_body_rejected(job: JobClient, run: dict[str, Any]) -> None:
    body = json.dumps(progress("real")).encode()
    sent = signed_post(job.http, run["sandbox"], body, webhook_id="m-1")
    headers = {k: sent.request.headers[k] for k in ("webhook-id", "webhook-signature")}
    headers["webhook-timestamp"] = sent.request.headers["webhook-timestamp"]

    response = job.http.post(
        run["sandbox"]["callback_url"],
        content=json.dumps(progress("fake")).encode(),
        headers={**headers, "webhook-id": "m-2"},
    )

    assert response.status_code == 401
    assert [e["id"] for e in job.events(run["channel"])["events"]] == ["m-1"]


def test_callback_stale_timestamp_rejected(job: JobClient, run: dict[str, Any]) -> None:
    stale = int(time.time()) - 301

    response = signed_post(job.http, run["sandbox"], progress("x"), timestamp=stale)

    assert response.status_code == 401
    assert job.events(run["channel"])["events"] == []


def test_callback_future_timestamp_rejected(
    job: JobClient, run: dict[str, Any]
) -> None:
    ahead = int(time.time()) + 301

    response = signed_post(job.http, run["sandbox"], progress("x"), timestamp=ahead)

    assert response.status_code == 401


def test_callback_cross_channel_rejected(job: JobClient, run: dict[str, Any]) -> None:
    other = job.open_run()
    job.add_sandbox(other["channel"], "builder-1")
    other_url = f"{other['callback_url']}/builder-1"

    response = signed_post(job.http, run["sandbox"], progress("x"), url=other_url)

    assert response.status_code == 401
    assert job.events(other["channel"])["events"] == []


def test_callback_unknown_sandbox_rejected(job: JobClient, run: dict[str, Any]) -> None:
    url = run["sandbox"]["callback_url"].replace("builder-1", "ghost")

    response = signed_post(job.http, run["sandbox"], progress("x"), url=url)

    assert response.status_code == 401


def test_callback_oversized_body_is_413(job: JobClient, run: dict[str, Any]) -> None:
    huge = progress("x" * 70000)

    response = signed_post(job.http, run["sandbox"], huge)

    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"
    assert job.events(run["channel"])["events"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"type": "agent.progress", "data": {}},
        {"type": "agent.finished", "data": {"status": "maybe"}},
        {"type": "gate.result", "data": {"gate": "lint", "passed": "yes"}},
        {"type": "unknown.kind", "data": {}},
        {"data": {}},
    ],
)
def test_callback_schema_violation_is_422(
    job: JobClient, run: dict[str, Any], body: dict[str, Any]
) -> None:
    response = signed_post(job.http, run["sandbox"], body)

    assert response.status_code == 422
    assert response.json()["error"] == "invalid_event"
    assert job.events(run["channel"])["events"] == []


def test_callback_closed_channel_is_410(job: JobClient, run: dict[str, Any]) -> None:
    closed = job.http.delete(f"/v1/runs/{run['channel']}", headers=job.headers())

    response = signed_post(job.http, run["sandbox"], progress("late"))

    assert closed.json()["state"] == "closed"
    assert response.status_code == 410
    assert job.events(run["channel"])["channel_state"] == "closed"


def test_mail_shape_answers_status_and_id(job: JobClient, run: dict[str, Any]) -> None:
    sandbox = run["sandbox"]
    mail = {"from": "builder-1", "to": "@human", "subject": "Escalation"}
    mail.update({"body": "stuck", "type": "escalation", "priority": "high"})

    response = job.http.post(
        sandbox["mail_url"],
        json=mail,
        headers={"Authorization": f"Bearer {sandbox['token']}"},
    )

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "id": 1}
    event = job.events(run["channel"])["events"][0]
    assert event["type"] == "mail"
    assert event["data"]["body"] == "stuck"


def test_mail_wrong_token_rejected(job: JobClient, run: dict[str, Any]) -> None:
    other = job.add_sandbox(run["channel"], "builder-2")

    response = job.http.post(
        run["sandbox"]["mail_url"],
        json={"body": "x"},
        headers={"Authorization": f"Bearer {other['token']}"},
    )

    assert response.status_code == 401
    assert job.events(run["channel"])["events"] == []


def test_events_unknown_token_is_401(
    relay_server: RelayServer, run: dict[str, Any]
) -> None:
    stranger = JobClient(relay_server.url, token="not-a-known-token-at-all")

    response = stranger.http.get(
        f"/v1/runs/{run['channel']}/events", headers=stranger.headers()
    )

    assert response.status_code == 401


@pytest.mark.parametrize("query", ["after=-1", "wait=999", "limit=0", "after=x"])
def test_events_invalid_parameter_is_400(
    job: JobClient, run: dict[str, Any], query: str
) -> None:
    response = job.http.get(
        f"/v1/runs/{run['channel']}/events?{query}", headers=job.headers()
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_parameter"


def test_events_long_poll_wakes_on_callback(
    job: JobClient, run: dict[str, Any]
) -> None:
    sender = httpx.Client(timeout=10)
    timer = threading.Timer(
        0.3, signed_post, (sender, run["sandbox"], progress("late"))
    )
    started = time.monotonic()
    timer.start()

    page = job.events(run["channel"], after=0, wait=10)

    timer.join()
    sender.close()
    assert len(page["events"]) == 1
    assert time.monotonic() - started < 5


def test_stream_resumes_after_last_event_id(
    job: JobClient, run: dict[str, Any]
) -> None:
    for i in range(3):
        signed_post(job.http, run["sandbox"], progress(f"p{i}"))
    job.http.delete(f"/v1/runs/{run['channel']}", headers=job.headers())

    response = job.http.get(
        f"/v1/runs/{run['channel']}/stream",
        headers={**job.headers(), "Last-Event-ID": "1"},
    )

    assert response.headers["content-type"].startswith("text/event-stream")
    ids = [line[4:] for line in response.text.splitlines() if line.startswith("id: ")]
    assert ids == ["2", "3"]
    assert "event: end" in response.text


def test_sandbox_mint_is_stable_per_name(job: JobClient, run: dict[str, Any]) -> None:
    again = job.add_sandbox(run["channel"], "builder-1")

    assert again["secret"] == run["sandbox"]["secret"]
    assert again["secret"].startswith("whsec_")
    assert again["token"] != again["secret"]


def test_unknown_route_is_json_404(job: JobClient) -> None:
    response = job.http.get(f"/v1/nothing/{uuid.uuid4().hex}")

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_log_has_no_secrets(
    relay_server: RelayServer, job: JobClient, run: dict[str, Any]
) -> None:
    signed_post(job.http, run["sandbox"], progress("logged?"))

    log = relay_server.log()

    assert run["channel"] in log
    assert run["sandbox"]["secret"] not in log
    assert run["sandbox"]["token"] not in log
    assert job.token not in log
