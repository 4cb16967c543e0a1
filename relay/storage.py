"""Durable storage for channels, sandboxes and events: SQLite or Postgres."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


class StorageError(Exception):
    """The store cannot complete an operation."""


class ChannelNotFound(StorageError):
    """No channel has the given id."""


class ChannelClosed(StorageError):
    """The channel was closed by its job or has expired."""


class QuotaExceeded(StorageError):
    """The channel reached its maximum number of events or sandboxes."""


@dataclass(frozen=True)
class Channel:
    """A run's channel: the owner key derived from the job's identity and its state."""

    id: str
    owner_key: str
    state: str
    created_at: int
    expires_at: int
    closed_at: int | None
    last_seq: int

    def is_open(self, now: float) -> bool:
        """Return True while the channel accepts callbacks at time now."""
        return self.state == "open" and now < self.expires_at

    def public_state(self, now: float) -> str:
        """Return ``open``, ``closed`` or ``expired`` as the job API reports it."""
        if self.state != "open":
            return "closed"
        return "open" if now < self.expires_at else "expired"


@dataclass(frozen=True)
class Event:
    """One stored callback, numbered by its channel's sequence."""

    seq: int
    webhook_id: str
    sandbox: str
    type: str
    received_at_ms: int
    body: bytes


@dataclass(frozen=True)
class AppendResult:
    """The sequence number of a stored callback and whether it was a retry."""

    seq: int
    duplicate: bool


_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS channels (
        id TEXT PRIMARY KEY,
        owner_key TEXT NOT NULL UNIQUE,
        state TEXT NOT NULL DEFAULT 'open',
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        closed_at BIGINT,
        last_seq BIGINT NOT NULL DEFAULT 0,
        sandbox_count BIGINT NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE IF NOT EXISTS sandboxes (
        channel_id TEXT NOT NULL,
        sandbox_key TEXT NOT NULL,
        kid TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (channel_id, sandbox_key)
    )""",
    """CREATE TABLE IF NOT EXISTS events (
        channel_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        webhook_id TEXT NOT NULL,
        sandbox_key TEXT NOT NULL,
        type TEXT NOT NULL,
        received_at_ms BIGINT NOT NULL,
        body {blob} NOT NULL,
        PRIMARY KEY (channel_id, seq),
        UNIQUE (channel_id, webhook_id)
    )""",
    "CREATE INDEX IF NOT EXISTS channels_by_created ON channels (created_at)",
)

_CHANNEL_COLUMNS = "id, owner_key, state, created_at, expires_at, closed_at, last_seq"


class Store(ABC):
    """Storage for the relay; every method commits before it returns."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        # Channels with waiting readers, and the last seq seen for each.
        self._waiting: dict[str, int] = {}
        self._known_seqs: dict[str, int] = {}
        self._watcher_pid = 0
        self._poll_interval_s = 0.2

    @abstractmethod
    def migrate(self) -> None:
        """Create the tables when they do not exist yet."""

    @abstractmethod
    def ping(self) -> None:
        """Raise StorageError unless the database is reachable and writable."""

    @abstractmethod
    def open_channel(
        self, channel_id: str, owner_key: str, now: int, ttl_s: int
    ) -> tuple[Channel, bool]:
        """Return the owner's channel, creating it with channel_id when missing."""

    @abstractmethod
    def get_channel(self, channel_id: str) -> Channel | None:
        """Return a channel by id, or None."""

    @abstractmethod
    def close_channel(self, channel_id: str, now: int) -> Channel:
        """Mark a channel closed; closing twice keeps the first closing time."""

    @abstractmethod
    def add_sandbox(
        self, channel_id: str, sandbox_key: str, kid: str, now: int, limit: int
    ) -> str:
        """Register a sandbox and return its key id (the stored one on a retry)."""

    @abstractmethod
    def get_sandbox_kid(self, channel_id: str, sandbox_key: str) -> str | None:
        """Return the key id a sandbox's secret derives from, or None."""

    @abstractmethod
    def append(
        self,
        channel_id: str,
        webhook_id: str,
        sandbox_key: str,
        event_type: str,
        body: bytes,
        now: float,
        quota: int,
    ) -> AppendResult:
        """Store a callback durably, or return the original seq of a retry."""

    @abstractmethod
    def read(self, channel_id: str, after: int, limit: int) -> list[Event]:
        """Return up to limit events with seq greater than after, in seq order."""

    @abstractmethod
    def last_seqs(self, channel_ids: Sequence[str]) -> dict[str, int]:
        """Return the last stored seq of each listed channel that exists."""

    @abstractmethod
    def gc(self, now: int, retention_s: int) -> int:
        """Delete channels created more than retention_s ago; return the count."""

    @abstractmethod
    def close(self) -> None:
        """Close this process's connection."""

    def wait(
        self,
        channel_id: str,
        after: int,
        limit: int,
        timeout_s: float,
        poll_interval_s: float,
    ) -> list[Event]:
        """Return events after the cursor, waiting up to timeout_s for the first.

        Another worker process may store the event, so one watcher thread per
        process reads the last seq of every channel with waiting readers each
        poll_interval_s, and a write in this process wakes readers at once.
        No read transaction stays open while a reader sleeps.
        """
        deadline = time.monotonic() + timeout_s
        events = self.read(channel_id, after, limit)
        if events or timeout_s <= 0:
            return events

        with self._changed:
            self._poll_interval_s = poll_interval_s
            self._waiting[channel_id] = self._waiting.get(channel_id, 0) + 1
            self._start_watcher()
        try:
            with self._changed:
                remaining = deadline - time.monotonic()
                while self._known_seqs.get(channel_id, -1) <= after:
                    if remaining <= 0:
                        return []
                    self._changed.wait(remaining)
                    remaining = deadline - time.monotonic()
            return self.read(channel_id, after, limit)
        finally:
            with self._changed:
                count = self._waiting[channel_id] - 1
                if count:
                    self._waiting[channel_id] = count
                else:
                    del self._waiting[channel_id]
                    self._known_seqs.pop(channel_id, None)

    def _start_watcher(self) -> None:
        # Called with self._changed held. A thread does not survive fork, so
        # the pid shows whether this process already runs one.
        if self._watcher_pid == os.getpid():
            return
        self._watcher_pid = os.getpid()
        threading.Thread(target=self._watch, name="relay-watcher", daemon=True).start()

    def _watch(self) -> None:
        while True:
            with self._changed:
                if not self._waiting:
                    self._watcher_pid = 0
                    return
                channels = list(self._waiting)
                interval = self._poll_interval_s
            try:
                seqs = self.last_seqs(channels)
            except StorageError as exc:
                log.warning("watcher cannot read channel seqs: %s", exc)
                seqs = {}
            self._advance(seqs)
            time.sleep(interval)

    def _advance(self, seqs: Mapping[str, int]) -> None:
        with self._changed:
            changed = False
            for channel_id, seq in seqs.items():
                if channel_id in self._waiting and seq > self._known_seqs.get(
                    channel_id, -1
                ):
                    self._known_seqs[channel_id] = seq
                    changed = True
            if changed:
                self._changed.notify_all()

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()


class _ConnectionPool:
    """Up to size connections for one process, opened lazily after fork."""

    def __init__(self, connect: Callable[[], Any], size: int) -> None:
        self._connect = connect
        self._size = size
        self._idle: list[Any] = []
        self._open = 0
        self._pid = os.getpid()
        self._available = threading.Condition()

    def acquire(self) -> Any:
        """Return an idle connection, open a new one, or wait for one."""
        with self._available:
            # Connections inherited through fork are unsafe to use, and closing
            # them could disturb the parent, so the child drops them.
            if self._pid != os.getpid():
                self._idle, self._open, self._pid = [], 0, os.getpid()
            while not self._idle and self._open >= self._size:
                self._available.wait()
            if self._idle:
                return self._idle.pop()
            self._open += 1
        try:
            return self._connect()
        except BaseException:
            self._forget()
            raise

    def release(self, conn: Any, broken: bool) -> None:
        """Return a connection; a broken one is closed and replaced on demand."""
        if broken or getattr(conn, "closed", False):
            _close_quietly(conn)
            self._forget()
            return
        with self._available:
            if self._pid == os.getpid():
                self._idle.append(conn)
            self._available.notify()

    def close(self) -> None:
        """Close the idle connections of this process."""
        with self._available:
            idle, self._idle = self._idle, []
            if self._pid == os.getpid():
                self._open -= len(idle)
                for conn in idle:
                    _close_quietly(conn)

    def _forget(self) -> None:
        with self._available:
            self._open -= 1
            self._available.notify()


def _close_quietly(conn: Any) -> None:
    try:
        conn.close()
    except Exception:
        log.debug("closing a broken connection failed", exc_info=True)


class SQLStore(Store):
    """Shared SQL for both databases; subclasses supply the connection."""

    placeholder = "?"
    blob_type = "BLOB"
    database_errors: tuple[type[BaseException], ...] = (sqlite3.Error,)

    def __init__(self, pool_size: int) -> None:
        super().__init__()
        self._pool = _ConnectionPool(self._connect, pool_size)

    @abstractmethod
    def _connect(self) -> Any:
        """Open a new connection."""

    @abstractmethod
    def _begin(self, cursor: Any, write: bool) -> None:
        """Start a transaction on cursor."""

    def _lock_channel_sql(self) -> str:
        return f"SELECT {_CHANNEL_COLUMNS} FROM channels WHERE id = ?"

    def _sql(self, text: str) -> str:
        return text.replace("?", self.placeholder)

    @contextmanager
    def _transaction(self, write: bool) -> Iterator[Any]:
        conn = self._pool.acquire()
        broken = False
        cursor = conn.cursor()
        try:
            self._begin(cursor, write)
            yield cursor
            conn.commit()
        except self.database_errors as exc:
            broken = not self._rollback(conn)
            raise StorageError(f"database operation failed: {exc}") from exc
        except BaseException:
            broken = not self._rollback(conn)
            raise
        finally:
            _close_quietly(cursor)
            self._pool.release(conn, broken)

    def _rollback(self, conn: Any) -> bool:
        """Roll back; return False when the connection is unusable."""
        try:
            conn.rollback()
        except Exception:
            log.warning("rollback failed; the connection is replaced", exc_info=True)
            return False
        return True

    def _run(self, cursor: Any, text: str, params: Sequence[Any] = ()) -> Any:
        cursor.execute(self._sql(text), tuple(params))
        return cursor

    def migrate(self) -> None:
        """Create the tables when they do not exist yet."""
        with self._transaction(write=True) as cursor:
            self._before_migrate(cursor)
            for statement in _SCHEMA:
                self._run(cursor, statement.replace("{blob}", self.blob_type))

    def _before_migrate(self, cursor: Any) -> None:
        return None

    def ping(self) -> None:
        """Raise StorageError unless the database is reachable and writable."""
        try:
            with self._transaction(write=True) as cursor:
                self._run(cursor, "SELECT count(*) FROM channels WHERE id = ?", [""])
        except Exception as exc:
            raise StorageError(f"database is not reachable: {exc}") from exc

    def open_channel(
        self, channel_id: str, owner_key: str, now: int, ttl_s: int
    ) -> tuple[Channel, bool]:
        """Return the owner's channel, creating it with channel_id when missing."""
        # ON CONFLICT makes two concurrent opens for one owner return the same
        # channel instead of failing on the UNIQUE owner_key constraint.
        with self._transaction(write=True) as cursor:
            self._run(
                cursor,
                "INSERT INTO channels (id, owner_key, state, created_at, expires_at)"
                " VALUES (?, ?, 'open', ?, ?) ON CONFLICT (owner_key) DO NOTHING",
                [channel_id, owner_key, now, now + ttl_s],
            )
            row = self._run(
                cursor,
                f"SELECT {_CHANNEL_COLUMNS} FROM channels WHERE owner_key = ?",
                [owner_key],
            ).fetchone()
        channel = _channel(row)
        return channel, channel.id == channel_id

    def get_channel(self, channel_id: str) -> Channel | None:
        """Return a channel by id, or None."""
        with self._transaction(write=False) as cursor:
            row = self._run(
                cursor,
                f"SELECT {_CHANNEL_COLUMNS} FROM channels WHERE id = ?",
                [channel_id],
            ).fetchone()
        return None if row is None else _channel(row)

    def close_channel(self, channel_id: str, now: int) -> Channel:
        """Mark a channel closed; closing twice keeps the first closing time."""
        with self._transaction(write=True) as cursor:
            self._run(
                cursor,
                "UPDATE channels SET state = 'closed', closed_at = ?"
                " WHERE id = ? AND state = 'open'",
                [now, channel_id],
            )
            row = self._run(cursor, self._lock_channel_sql(), [channel_id]).fetchone()
        if row is None:
            raise ChannelNotFound(channel_id)
        self._notify()
        return _channel(row)

    def add_sandbox(
        self, channel_id: str, sandbox_key: str, kid: str, now: int, limit: int
    ) -> str:
        """Register a sandbox and return its key id (the stored one on a retry)."""
        with self._transaction(write=True) as cursor:
            row = self._run(
                cursor,
                "SELECT state, expires_at, sandbox_count FROM channels WHERE id = ?"
                + self._for_update(),
                [channel_id],
            ).fetchone()
            if row is None:
                raise ChannelNotFound(channel_id)
            if row[0] != "open" or now >= row[1]:
                raise ChannelClosed(channel_id)
            existing = self._run(
                cursor,
                "SELECT kid FROM sandboxes WHERE channel_id = ? AND sandbox_key = ?",
                [channel_id, sandbox_key],
            ).fetchone()
            if existing is not None:
                return str(existing[0])
            if row[2] >= limit:
                raise QuotaExceeded(f"channel already has {row[2]} sandboxes")
            self._run(
                cursor,
                "INSERT INTO sandboxes (channel_id, sandbox_key, kid, created_at)"
                " VALUES (?, ?, ?, ?)",
                [channel_id, sandbox_key, kid, now],
            )
            self._run(
                cursor,
                "UPDATE channels SET sandbox_count = sandbox_count + 1 WHERE id = ?",
                [channel_id],
            )
        return kid

    def get_sandbox_kid(self, channel_id: str, sandbox_key: str) -> str | None:
        """Return the key id a sandbox's secret derives from, or None."""
        with self._transaction(write=False) as cursor:
            row = self._run(
                cursor,
                "SELECT kid FROM sandboxes WHERE channel_id = ? AND sandbox_key = ?",
                [channel_id, sandbox_key],
            ).fetchone()
        return None if row is None else str(row[0])

    def append(
        self,
        channel_id: str,
        webhook_id: str,
        sandbox_key: str,
        event_type: str,
        body: bytes,
        now: float,
        quota: int,
    ) -> AppendResult:
        """Store a callback durably, or return the original seq of a retry.

        The channel row is locked (SQLite: the database write lock; Postgres:
        FOR UPDATE) before the next seq is taken, so seqs commit in order and a
        reader that saw seq N never misses a later commit below N.
        """
        with self._transaction(write=True) as cursor:
            row = self._run(
                cursor,
                "SELECT state, expires_at, last_seq FROM channels WHERE id = ?"
                + self._for_update(),
                [channel_id],
            ).fetchone()
            if row is None:
                raise ChannelNotFound(channel_id)
            seen = self._run(
                cursor,
                "SELECT seq FROM events WHERE channel_id = ? AND webhook_id = ?",
                [channel_id, webhook_id],
            ).fetchone()
            if seen is not None:
                return AppendResult(int(seen[0]), True)
            if row[0] != "open" or now >= row[1]:
                raise ChannelClosed(channel_id)
            if row[2] >= quota:
                raise QuotaExceeded(f"channel reached its quota of {quota} events")
            seq = int(row[2]) + 1
            self._run(
                cursor,
                "UPDATE channels SET last_seq = ? WHERE id = ?",
                [seq, channel_id],
            )
            self._run(
                cursor,
                "INSERT INTO events (channel_id, seq, webhook_id, sandbox_key, type,"
                " received_at_ms, body) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    channel_id,
                    seq,
                    webhook_id,
                    sandbox_key,
                    event_type,
                    int(now * 1000),
                    body,
                ],
            )
        self._advance({channel_id: seq})
        return AppendResult(seq, False)

    def read(self, channel_id: str, after: int, limit: int) -> list[Event]:
        """Return up to limit events with seq greater than after, in seq order."""
        with self._transaction(write=False) as cursor:
            rows = self._run(
                cursor,
                "SELECT seq, webhook_id, sandbox_key, type, received_at_ms, body"
                " FROM events WHERE channel_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                [channel_id, after, limit],
            ).fetchall()
        return [
            Event(int(r[0]), r[1], r[2], r[3], int(r[4]), bytes(r[5])) for r in rows
        ]

    def last_seqs(self, channel_ids: Sequence[str]) -> dict[str, int]:
        """Return the last stored seq of each listed channel that exists."""
        seqs: dict[str, int] = {}
        with self._transaction(write=False) as cursor:
            for start in range(0, len(channel_ids), 500):
                chunk = list(channel_ids[start : start + 500])
                marks = ", ".join("?" for _ in chunk)
                rows = self._run(
                    cursor,
                    f"SELECT id, last_seq FROM channels WHERE id IN ({marks})",
                    chunk,
                ).fetchall()
                seqs.update({str(row[0]): int(row[1]) for row in rows})
        return seqs

    def gc(self, now: int, retention_s: int) -> int:
        """Delete channels created more than retention_s ago; return the count."""
        cutoff = now - retention_s
        with self._transaction(write=True) as cursor:
            doomed = "SELECT id FROM channels WHERE created_at < ?"
            self._run(
                cursor, f"DELETE FROM events WHERE channel_id IN ({doomed})", [cutoff]
            )
            self._run(
                cursor,
                f"DELETE FROM sandboxes WHERE channel_id IN ({doomed})",
                [cutoff],
            )
            deleted = self._run(
                cursor, "DELETE FROM channels WHERE created_at < ?", [cutoff]
            ).rowcount
        if deleted:
            log.info("garbage collection deleted %d expired channels", deleted)
        return int(deleted)

    def close(self) -> None:
        """Close this process's idle connections."""
        self._pool.close()

    def _for_update(self) -> str:
        return ""


class SQLiteStore(SQLStore):
    """SQLite in WAL mode: one connection per process, opened after fork."""

    def __init__(self, path: str) -> None:
        self.path = path
        # SQLite has one writer at a time anyway; one connection per process
        # keeps every thread's reads and writes in commit order.
        super().__init__(pool_size=1)

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None hands transaction control to the explicit BEGIN
        # statements below; Python 3.11 has no autocommit attribute.
        conn = sqlite3.connect(
            self.path, timeout=5.0, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL fsyncs the WAL on every commit, so an acknowledged callback also
        # survives power loss and OS crashes, not only a process crash.
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    def _begin(self, cursor: Any, write: bool) -> None:
        # BEGIN IMMEDIATE takes the write lock up front; a deferred transaction
        # that upgrades later fails with SQLITE_BUSY without waiting.
        cursor.execute("BEGIN IMMEDIATE" if write else "BEGIN")


class PostgresStore(SQLStore):
    """Postgres for several relay replicas; seqs are assigned under a row lock.

    NOTE: LISTEN/NOTIFY is not used, so a reader waiting in one replica learns
    of a write in another from the watcher query, which runs every
    RELAY_POLL_INTERVAL_S in each worker process.
    """

    placeholder = "%s"
    blob_type = "BYTEA"

    def __init__(self, dsn: str, pool_size: int = 8) -> None:
        import psycopg

        self.database_errors = (psycopg.Error,)
        self.dsn = dsn
        super().__init__(pool_size)

    def _connect(self) -> Any:
        import psycopg

        try:
            return psycopg.connect(self.dsn, connect_timeout=5)
        except psycopg.Error as exc:
            raise StorageError(f"cannot connect to Postgres: {exc}") from exc

    def _begin(self, cursor: Any, write: bool) -> None:
        # psycopg opens a transaction implicitly with the first statement.
        return None

    def _before_migrate(self, cursor: Any) -> None:
        # Workers start together; the advisory lock keeps their CREATE TABLE IF
        # NOT EXISTS statements from racing on the catalog.
        cursor.execute("SELECT pg_advisory_xact_lock(727274)")

    def _for_update(self) -> str:
        return " FOR UPDATE"


def _channel(row: Sequence[Any]) -> Channel:
    closed_at = None if row[5] is None else int(row[5])
    return Channel(
        str(row[0]),
        str(row[1]),
        str(row[2]),
        int(row[3]),
        int(row[4]),
        closed_at,
        int(row[6]),
    )


def open_store(db_url: str, pool_size: int = 8) -> Store:
    """Build the store a RELAY_DB_URL names (``sqlite:///PATH`` or ``postgresql://``).

    pool_size bounds the Postgres connections per process; SQLite uses one.
    """
    if db_url.startswith("sqlite:///"):
        return SQLiteStore(db_url.removeprefix("sqlite:///"))
    return PostgresStore(db_url, pool_size)
