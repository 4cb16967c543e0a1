"""kill -9 of gunicorn loses no acknowledged callback and duplicates none."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.relay.conftest import (
    JobClient,
    RelayServer,
    postgres_schema_url,
    progress,
    relay_settings,
    signed_post,
)

SENDERS = 4
PER_SENDER = 40


def send_all(
    url: str, sandbox: dict[str, Any], prefix: str, acked: dict[str, int]
) -> None:
    """Send callbacks in order, retrying each webhook-id until it gets a 2xx."""
    http = httpx.Client(timeout=5)
    deadline = time.monotonic() + 60
    for i in range(PER_SENDER):
        webhook_id = f"{prefix}-{i}"
        while time.monotonic() < deadline:
            try:
                response = signed_post(http, sandbox, progress(str(i)), webhook_id)
            except httpx.TransportError:
                time.sleep(0.05)
                continue
            if response.status_code == 200:
                acked[webhook_id] = response.json()["seq"]
                break
            time.sleep(0.05)
    http.close()


def read_until(
    job: JobClient, channel: str, done: threading.Event, received: list[dict]
) -> None:
    """Long-poll from a cursor through restarts until done is set and idle."""
    after = 0
    while True:
        try:
            page = job.events(channel, after=after, wait=1)
        except (httpx.TransportError, AssertionError):
            time.sleep(0.05)
            continue
        received.extend(page["events"])
        after = page["next_after"]
        if done.is_set() and not page["events"]:
            return


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_kill9_keeps_every_acked_callback(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        db_url = f"sqlite:///{tmp_path / 'relay.db'}"
    else:
        db_url = postgres_schema_url(request.getfixturevalue("postgres_url"))
    settings = relay_settings(None, db_url, RATE_PER_S="100000", RATE_BURST="100000")
    server = RelayServer(settings, tmp_path).start()
    job = JobClient(server.url)
    channel = job.open_run()["channel"]
    sandboxes = [job.add_sandbox(channel, f"sb{n}") for n in range(SENDERS)]
    acked: dict[str, int] = {}
    received: list[dict] = []
    done = threading.Event()
    prefix = uuid.uuid4().hex[:8]
    senders = [
        threading.Thread(
            target=send_all, args=(server.url, sandboxes[n], f"{prefix}-{n}", acked)
        )
        for n in range(SENDERS)
    ]
    reader = threading.Thread(target=read_until, args=(job, channel, done, received))
    for thread in [*senders, reader]:
        thread.start()

    while len(acked) < SENDERS * PER_SENDER // 3:
        time.sleep(0.01)
    server.kill()
    server.start()
    for thread in senders:
        thread.join(90)
    done.set()
    reader.join(30)
    server.stop()

    seqs = [event["seq"] for event in received]
    ids = [event["id"] for event in received]
    delivered = {event["id"]: event["seq"] for event in received}
    assert len(acked) == SENDERS * PER_SENDER
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(set(ids)) == len(ids)
    lost = [wid for wid, seq in acked.items() if delivered.get(wid) != seq]
    assert lost == []
