"""The same storage suite for SQLite and Postgres."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from relay.storage import ChannelClosed, QuotaExceeded, Store, open_store
from tests.relay.conftest import postgres_schema_url

NOW = 1_800_000_000


def open_test_channel(store: Store, name: str = "c1") -> str:
    channel, _ = store.open_channel(name, f"owner:{name}", NOW, 3600)
    return channel.id


def test_open_channel_is_idempotent(store: Store) -> None:
    first, created_first = store.open_channel("c1", "owner:a", NOW, 3600)

    second, created_second = store.open_channel("c2", "owner:a", NOW + 5, 3600)

    assert created_first
    assert not created_second
    assert second.id == first.id
    assert second.expires_at == NOW + 3600


def test_append_assigns_consecutive_seqs(store: Store) -> None:
    channel = open_test_channel(store)

    seqs = [
        store.append(channel, f"m{i}", "sb", "agent.progress", b"{}", NOW, 100).seq
        for i in range(3)
    ]

    assert seqs == [1, 2, 3]


def test_append_duplicate_returns_original_seq(store: Store) -> None:
    channel = open_test_channel(store)
    store.append(channel, "m1", "sb", "agent.progress", b'{"a":1}', NOW, 100)
    store.append(channel, "m2", "sb", "agent.progress", b'{"a":2}', NOW, 100)

    retry = store.append(channel, "m1", "sb", "agent.progress", b'{"a":9}', NOW, 100)

    assert retry.seq == 1
    assert retry.duplicate
    assert [e.body for e in store.read(channel, 0, 10)] == [b'{"a":1}', b'{"a":2}']


def test_append_webhook_ids_are_per_channel(store: Store) -> None:
    first = open_test_channel(store, "c1")
    second = open_test_channel(store, "c2")

    a = store.append(first, "same", "sb", "agent.progress", b"{}", NOW, 100)
    b = store.append(second, "same", "sb", "agent.progress", b"{}", NOW, 100)

    assert not a.duplicate
    assert not b.duplicate
    assert store.read(second, 0, 10)[0].webhook_id == "same"


def test_append_closed_channel_raises(store: Store) -> None:
    channel = open_test_channel(store)
    store.close_channel(channel, NOW)

    with pytest.raises(ChannelClosed):
        store.append(channel, "m1", "sb", "agent.progress", b"{}", NOW, 100)


def test_append_expired_channel_raises(store: Store) -> None:
    channel = open_test_channel(store)

    with pytest.raises(ChannelClosed):
        store.append(channel, "m1", "sb", "agent.progress", b"{}", NOW + 3600, 100)


def test_append_quota_raises(store: Store) -> None:
    channel = open_test_channel(store)
    store.append(channel, "m1", "sb", "agent.progress", b"{}", NOW, 1)

    with pytest.raises(QuotaExceeded):
        store.append(channel, "m2", "sb", "agent.progress", b"{}", NOW, 1)


def test_read_after_cursor_and_limit(store: Store) -> None:
    channel = open_test_channel(store)
    for i in range(5):
        store.append(channel, f"m{i}", "sb", "gate.result", b"{}", NOW, 100)

    events = store.read(channel, 2, 2)

    assert [e.seq for e in events] == [3, 4]
    assert events[0].type == "gate.result"
    assert events[0].received_at_ms == NOW * 1000


def test_add_sandbox_returns_stored_kid(store: Store) -> None:
    channel = open_test_channel(store)
    store.add_sandbox(channel, "sb1", "k1", NOW, 10)

    kid = store.add_sandbox(channel, "sb1", "k2", NOW, 10)

    assert kid == "k1"
    assert store.get_sandbox_kid(channel, "sb1") == "k1"
    assert store.get_sandbox_kid(channel, "other") is None


def test_add_sandbox_limit_raises(store: Store) -> None:
    channel = open_test_channel(store)
    store.add_sandbox(channel, "sb1", "k1", NOW, 1)

    with pytest.raises(QuotaExceeded):
        store.add_sandbox(channel, "sb2", "k1", NOW, 1)


def test_gc_deletes_old_channels(store: Store) -> None:
    old, _ = store.open_channel("old", "owner:old", NOW - 100, 50)
    store.append(old.id, "m1", "sb", "agent.progress", b"{}", NOW - 90, 10)
    fresh = open_test_channel(store, "fresh")

    deleted = store.gc(NOW, 60)

    assert deleted == 1
    assert store.get_channel(old.id) is None
    assert store.read(old.id, 0, 10) == []
    assert store.get_channel(fresh) is not None


def test_wait_wakes_on_append(store: Store) -> None:
    channel = open_test_channel(store)
    timer = threading.Timer(
        0.2,
        store.append,
        (channel, "m1", "sb", "agent.progress", b"{}", NOW, 10),
    )
    started = time.monotonic()
    timer.start()

    events = store.wait(channel, 0, 10, 5.0, 1.0)

    timer.join()
    assert [e.seq for e in events] == [1]
    assert time.monotonic() - started < 2.0


def test_concurrent_appends_have_no_gaps(db_url: str) -> None:
    # Two stores model two worker processes with separate connections.
    stores = [open_store(db_url), open_store(db_url)]
    stores[0].migrate()
    channel, _ = stores[0].open_channel("c1", "owner:c1", NOW, 3600)
    seen: list[list[int]] = [[] for _ in range(4)]

    def send(index: int) -> None:
        store = stores[index % 2]
        for i in range(25):
            result = store.append(
                channel.id, f"t{index}-{i}", "sb", "agent.progress", b"{}", NOW, 1000
            )
            seen[index].append(result.seq)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assigned = sorted(seq for seqs in seen for seq in seqs)
    stored = [e.seq for e in stores[1].read(channel.id, 0, 500)]
    for store in stores:
        store.close()
    assert assigned == list(range(1, 101))
    assert stored == list(range(1, 101))


def test_concurrent_open_returns_one_channel(db_url: str) -> None:
    stores = [open_store(db_url) for _ in range(4)]
    stores[0].migrate()
    barrier = threading.Barrier(4)
    results: list[tuple[str, bool]] = []

    def open_one(index: int) -> None:
        barrier.wait()
        channel, created = stores[index].open_channel(
            f"c{index}", "owner:same", NOW, 3600
        )
        results.append((channel.id, created))

    threads = [threading.Thread(target=open_one, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    for store in stores:
        store.close()
    assert len({channel_id for channel_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1


def test_postgres_reconnects_after_lost_connection(
    request: pytest.FixtureRequest,
) -> None:
    import psycopg

    from relay.storage import PostgresStore, StorageError

    base_url = request.getfixturevalue("postgres_url")
    name = f"relay-test-{uuid.uuid4().hex[:8]}"
    dsn = postgres_schema_url(base_url) + f"&application_name={name}"
    store = PostgresStore(dsn, pool_size=1)
    store.migrate()
    channel = open_test_channel(store)
    with psycopg.connect(base_url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = %s",
            [name],
        )

    with pytest.raises(StorageError):
        store.get_channel(channel)
    found = store.get_channel(channel)

    store.close()
    assert found is not None


def test_wait_sees_append_from_other_process(db_url: str) -> None:
    # A second store has its own connections, like another gunicorn worker.
    reader, writer = open_store(db_url), open_store(db_url)
    reader.migrate()
    channel, _ = reader.open_channel("c1", "owner:c1", NOW, 3600)
    timer = threading.Timer(
        0.2,
        writer.append,
        (channel.id, "m1", "sb", "agent.progress", b"{}", NOW, 10),
    )
    started = time.monotonic()
    timer.start()

    events = reader.wait(channel.id, 0, 10, 5.0, 0.05)

    timer.join()
    reader.close()
    writer.close()
    assert [e.seq for e in events] == [1]
    assert time.monotonic() - started < 2.0


def test_wait_times_out_without_events(store: Store) -> None:
    channel = open_test_channel(store)
    started = time.monotonic()

    events = store.wait(channel, 0, 10, 0.3, 0.05)

    assert events == []
    assert time.monotonic() - started >= 0.3
