"""Fixtures for the relay: a fake OIDC issuer, Postgres, and gunicorn servers."""

from __future__ import annotations

import base64
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from relay import signing
from relay.storage import PostgresStore, SQLiteStore, Store
from tests.fakes.oidc import FakeOIDCIssuer

REPO_ROOT = Path(__file__).resolve().parents[2]
GUNICORN_CONF = REPO_ROOT / "relay" / "gunicorn.conf.py"
API_TOKEN = "test-static-token-0123456789abcdef"
CALLBACK_KEY = base64.b64encode(b"k" * 32).decode()


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RelayServer:
    """The relay under real gunicorn, in its own process group."""

    def __init__(self, settings: dict[str, str], workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.settings = {"RELAY_PUBLIC_URL": self.url, **settings}
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "gunicorn.log"

    def env(self) -> dict[str, str]:
        """Return the environment gunicorn runs with."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
        env.update(self.settings)
        env["PYTHONPATH"] = str(REPO_ROOT)
        env["RELAY_WORKERS"] = env.get("RELAY_WORKERS", "2")
        env["RELAY_THREADS"] = env.get("RELAY_THREADS", "16")
        return env

    def start(self) -> RelayServer:
        """Start gunicorn and wait until /healthz returns 200."""
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(GUNICORN_CONF),
            "--bind",
            f"127.0.0.1:{self.port}",
            "relay:create_app()",
        ]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command,
            env=self.env(),
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited early:\n{self.log()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"gunicorn did not answer /healthz:\n{self.log()}")

    def stop(self) -> None:
        """Stop gunicorn gracefully, by the process group this object started."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def kill(self) -> None:
        """Send SIGKILL to the master and its workers (its process group)."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(5)

    def log(self) -> str:
        """Return what gunicorn wrote so far."""
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def oidc_issuer() -> Iterator[FakeOIDCIssuer]:
    """Serve a fake GitHub Actions OIDC issuer on loopback."""
    issuer = FakeOIDCIssuer().start()
    yield issuer
    issuer.stop()


def relay_settings(
    issuer: FakeOIDCIssuer | None, db_url: str, **extra: str
) -> dict[str, str]:
    """Return RELAY_* settings for a test server."""
    settings = {
        "RELAY_CALLBACK_KEYS": f"k1:{CALLBACK_KEY}",
        "RELAY_API_TOKENS": API_TOKEN,
        "RELAY_DB_URL": db_url,
        "RELAY_POLL_INTERVAL_S": "0.05",
    }
    if issuer is not None:
        settings["RELAY_OIDC_ISSUERS"] = issuer.url
        settings["RELAY_ALLOWED_REPO_IDS"] = "1001"
    settings.update({f"RELAY_{k}": v for k, v in extra.items()})
    return settings


@pytest.fixture(scope="module")
def relay_server(
    oidc_issuer: FakeOIDCIssuer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RelayServer]:
    """Run one relay under gunicorn for a test module."""
    workdir = tmp_path_factory.mktemp("relay")
    settings = relay_settings(oidc_issuer, f"sqlite:///{workdir / 'relay.db'}")
    server = RelayServer(settings, workdir).start()
    yield server
    server.stop()


class JobClient:
    """A thin HTTP helper for tests that act as the CI job and the sandbox."""

    def __init__(self, base_url: str, token: str = API_TOKEN) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30)
        self.token = token

    def headers(self) -> dict[str, str]:
        """Return the job's Authorization header."""
        return {"Authorization": f"Bearer {self.token}"}

    def open_run(self, run: str | None = None) -> dict[str, Any]:
        """Open a channel; a static token names the run."""
        body = {"run": run or uuid.uuid4().hex}
        response = self.http.post("/v1/runs", json=body, headers=self.headers())
        assert response.status_code in (200, 201), response.text
        return response.json()

    def add_sandbox(self, channel: str, name: str | None = None) -> dict[str, Any]:
        """Mint sandbox credentials."""
        body = {"name": name} if name else {}
        response = self.http.post(
            f"/v1/runs/{channel}/sandboxes", json=body, headers=self.headers()
        )
        assert response.status_code == 201, response.text
        return response.json()

    def events(self, channel: str, after: int = 0, wait: int = 0) -> dict[str, Any]:
        """Read events after a cursor."""
        response = self.http.get(
            f"/v1/runs/{channel}/events",
            params={"after": after, "wait": wait},
            headers=self.headers(),
        )
        assert response.status_code == 200, response.text
        return response.json()


def signed_post(
    http: httpx.Client,
    sandbox: dict[str, Any],
    payload: dict[str, Any] | bytes,
    webhook_id: str | None = None,
    timestamp: int | None = None,
    secret: str | None = None,
    url: str | None = None,
) -> httpx.Response:
    """POST a callback signed the Standard Webhooks way."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    message_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    sent_at = int(time.time()) if timestamp is None else timestamp
    signature = signing.sign(secret or sandbox["secret"], message_id, sent_at, body)
    headers = {
        "webhook-id": message_id,
        "webhook-timestamp": str(sent_at),
        "webhook-signature": signature,
        "Content-Type": "application/json",
    }
    return http.post(url or sandbox["callback_url"], content=body, headers=headers)


def progress(message: str) -> dict[str, Any]:
    """Return an agent.progress callback body."""
    return {"type": "agent.progress", "data": {"message": message}}


# --- Postgres --------------------------------------------------------------


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    return Path(found[-1]).parent if found else None


def _as_postgres_user(command: list[str]) -> list[str]:
    # The server refuses to run as root, so root runs it as the postgres user.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """Return a Postgres URL: TEST_POSTGRES_URL, or a private server started here."""
    configured = os.environ.get("TEST_POSTGRES_URL")
    if configured:
        yield configured
        return

    bindir = _postgres_bin()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but no PostgreSQL server binaries were found")
        pytest.skip("PostgreSQL server binaries not found under /usr/lib/postgresql")

    root = Path(tempfile.mkdtemp(prefix="relay-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, user="postgres")
    data = root / "data"
    initdb = subprocess.run(
        _as_postgres_user(
            [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]
        ),
        capture_output=True,
        text=True,
    )
    if initdb.returncode != 0:
        pytest.fail(f"initdb failed:\n{initdb.stdout}\n{initdb.stderr}")
    pg_ctl = str(bindir / "pg_ctl")
    # free_port() can race with other processes that bind ports, so a failed
    # start is retried on a fresh port before the fixture gives up.
    for _attempt in range(3):
        port = free_port()
        options = f"-k {root} -p {port} -c listen_addresses=127.0.0.1"
        started = subprocess.run(
            _as_postgres_user(
                [pg_ctl, "-D", str(data), "-w", "-l", str(root / "log"), "-o", options]
                + ["start"]
            ),
            capture_output=True,
            text=True,
        )
        if started.returncode == 0:
            break
    else:
        log = (root / "log").read_text(errors="replace")
        pytest.fail(f"pg_ctl start failed:\n{started.stderr}\n{log}")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_postgres_user([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


def postgres_schema_url(base_url: str) -> str:
    """Create a fresh schema and return a URL whose search_path points at it."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in base_url else "?"
    return f"{base_url}{separator}options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Return a RELAY_DB_URL for an empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'relay.db'}"
    return postgres_schema_url(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """Return a migrated store of each kind."""
    if db_url.startswith("sqlite:///"):
        opened: Store = SQLiteStore(db_url.removeprefix("sqlite:///"))
    else:
        opened = PostgresStore(db_url)
    opened.migrate()
    yield opened
    opened.close()
