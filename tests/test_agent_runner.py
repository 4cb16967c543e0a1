"""Tests for the in-sandbox runner: files, signed callbacks, retries, the relay."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from relay import signing
from tack_action.agents.base import AgentRequest
from tack_action.agents.claude_code import ClaudeCodeRuntime
from tack_action.agents.run import run_agent
from tack_action.relay_client import RelayClient, StaticToken
from tack_action.sandbox.local import LocalProvider
from tests.relay.conftest import API_TOKEN, RelayServer, relay_settings

RUNNER = Path(__file__).parents[1] / "tack_action" / "agents" / "runner.py"
FAKES = Path(__file__).parent / "fakes" / "agents"
SECRET = "whsec_" + base64.b64encode(b"s" * 32).decode()


class CallbackServer:
    """A loopback server that verifies signatures and returns scripted statuses."""

    def __init__(self, statuses: list[tuple[int, dict[str, str]]] | None = None):
        self.statuses = list(statuses or [])
        self.received: list[dict] = []
        self.attempts: list[str] = []
        self.invalid: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                webhook_id = self.headers.get("webhook-id", "")
                try:
                    signing.verify(
                        SECRET,
                        webhook_id,
                        self.headers.get("webhook-timestamp", ""),
                        self.headers.get("webhook-signature", ""),
                        body,
                    )
                except signing.SignatureError as exc:
                    owner.invalid.append(str(exc))
                    self._answer(401, {})
                    return
                owner.attempts.append(webhook_id)
                if owner.statuses:
                    status, headers = owner.statuses.pop(0)
                    self._answer(status, headers)
                    return
                owner.received.append({"id": webhook_id, **json.loads(body)})
                self._answer(200, {})

            def _answer(self, status: int, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1/callbacks/c/sb"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> CallbackServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def of_type(self, event_type: str) -> list[dict]:
        return [event for event in self.received if event["type"] == event_type]


def run_runner(
    tmp_path: Path,
    command: str,
    *,
    url: str = "",
    output_format: str = "text",
    extra_env: dict[str, str] | None = None,
    wait: bool = True,
    final_timeout: float = 5.0,
) -> subprocess.Popen[bytes]:
    env = {"PATH": os.environ["PATH"], **(extra_env or {})}
    if url:
        env["TACK_DAEMON_URL"] = url
        env["TACK_CALLBACK_SECRET"] = SECRET
    arguments = [
        sys.executable,
        str(RUNNER),
        "--name",
        "builder-1",
        "--format",
        output_format,
        "--log",
        str(tmp_path / "agents" / "builder-1.log"),
        "--exit-file",
        str(tmp_path / "agents" / "builder-1.exit"),
        "--batch-seconds",
        "0.05",
        "--final-timeout",
        str(final_timeout),
        "--retry-base",
        "0.02",
        "--",
        command,
    ]
    process = subprocess.Popen(
        arguments, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    if wait:
        process.communicate(timeout=30)
    return process


def test_runner_without_relay_writes_files(tmp_path: Path) -> None:
    process = run_runner(tmp_path, "echo 'edit a.py'; echo done; exit 4")

    log = (tmp_path / "agents" / "builder-1.log").read_text()
    assert process.returncode == 4
    assert (tmp_path / "agents" / "builder-1.exit").read_text() == "4\n"
    assert log == "edit a.py\ndone\n"


def test_runner_copies_output_to_stdout(tmp_path: Path) -> None:
    process = run_runner(tmp_path, "echo one; echo two >&2", wait=False)

    stdout, _ = process.communicate(timeout=30)

    assert stdout == b"one\ntwo\n"


def test_runner_hides_secret_from_agent(tmp_path: Path) -> None:
    with CallbackServer() as server:
        process = run_runner(
            tmp_path, 'echo "secret=${TACK_CALLBACK_SECRET:-unset}"', url=server.url
        )

    log = (tmp_path / "agents" / "builder-1.log").read_text()
    assert process.returncode == 0
    assert log == "secret=unset\n"
    assert SECRET not in json.dumps(server.received)


def test_runner_posts_progress_and_final(tmp_path: Path) -> None:
    command = "echo 'read a.py'; echo thinking; echo 'edit a.py'; echo 'TACK_DONE:ok'"

    with CallbackServer() as server:
        run_runner(tmp_path, command, url=server.url)

    lines = [
        line
        for event in server.of_type("agent.progress")
        for line in event["data"]["lines"]
    ]
    finals = server.of_type("agent.finished")
    assert server.invalid == []
    assert lines == ["read a.py", "edit a.py", "done: ok"]
    assert len(finals) == 1
    assert finals[0]["data"]["status"] == "succeeded"
    assert finals[0]["data"]["exit_code"] == 0
    assert finals[0]["data"]["summary"] == "ok"
    assert server.received[-1]["type"] == "agent.finished"


def test_runner_final_reports_failure_and_cost(tmp_path: Path) -> None:
    with CallbackServer() as server:
        run_runner(
            tmp_path,
            f"{FAKES}/claude -p",
            url=server.url,
            output_format="claude-code",
            extra_env={"FAKE_AGENT_SCENARIO": "crash"},
        )

    final = server.of_type("agent.finished")[0]["data"]
    assert final["status"] == "failed"
    assert final["exit_code"] == 3
    assert final["cost_usd"] is None


def test_runner_retries_server_errors(tmp_path: Path) -> None:
    statuses = [(503, {}), (500, {})]

    with CallbackServer(statuses) as server:
        process = run_runner(tmp_path, "true", url=server.url)

    finals = server.of_type("agent.finished")
    assert process.returncode == 0
    assert len(finals) == 1
    assert server.attempts == [finals[0]["id"]] * 3


def test_runner_honours_retry_after(tmp_path: Path) -> None:
    statuses = [(429, {"Retry-After": "1"})]
    started = time.monotonic()

    with CallbackServer(statuses) as server:
        run_runner(tmp_path, "true", url=server.url)

    assert time.monotonic() - started >= 1.0
    assert len(server.of_type("agent.finished")) == 1


def test_runner_stops_after_gone(tmp_path: Path) -> None:
    command = "echo 'edit a.py'; sleep 0.3; echo 'edit b.py'"

    with CallbackServer([(410, {})]) as server:
        process = run_runner(tmp_path, command, url=server.url)

    assert process.returncode == 0
    assert len(server.attempts) == 1
    assert server.received == []
    assert (tmp_path / "agents" / "builder-1.exit").read_text() == "0\n"


def test_runner_does_not_retry_rejection(tmp_path: Path) -> None:
    with CallbackServer([(422, {})]) as server:
        run_runner(tmp_path, "true", url=server.url)

    assert len(server.attempts) == 1
    assert server.received == []


def test_runner_unreachable_relay_still_exits(tmp_path: Path) -> None:
    with CallbackServer() as server:
        url = server.url
    started = time.monotonic()

    process = run_runner(
        tmp_path, "echo 'edit a.py'; exit 2", url=url, final_timeout=0.5
    )

    assert process.returncode == 2
    assert (tmp_path / "agents" / "builder-1.exit").read_text() == "2\n"
    assert time.monotonic() - started < 10


def test_runner_sigterm_reports_cancelled(tmp_path: Path) -> None:
    with CallbackServer() as server:
        process = run_runner(
            tmp_path, "echo 'edit a.py'; sleep 30", url=server.url, wait=False
        )
        log = tmp_path / "agents" / "builder-1.log"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "edit a.py" not in _read(log):
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)

    final = server.of_type("agent.finished")[0]["data"]
    assert process.returncode == 143
    assert final["status"] == "cancelled"
    assert (tmp_path / "agents" / "builder-1.exit").read_text() == "143\n"


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


# --- the real relay ---------------------------------------------------------


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayServer]:
    workdir = tmp_path_factory.mktemp("relay")
    settings = relay_settings(None, f"sqlite:///{workdir / 'relay.db'}")
    server = RelayServer(settings, workdir).start()
    yield server
    server.stop()


@pytest.fixture
def relay_client(relay: RelayServer) -> Iterator[RelayClient]:
    client = RelayClient(relay.url, StaticToken(API_TOKEN))
    yield client
    client.close()


def test_runner_callbacks_reach_real_relay(
    tmp_path: Path,
    relay_client: RelayClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    channel = relay_client.open_channel(run=uuid.uuid4().hex)
    credentials = relay_client.create_sandbox(channel.channel, "builder-1")
    monkeypatch.setenv("PATH", f"{FAKES}{os.pathsep}{os.environ['PATH']}")
    sandbox = LocalProvider(tmp_path / "sandboxes").create("tack-relay-test", {})
    request = AgentRequest(
        role="builder",
        name="builder-0123abcd-00",
        prompt="Build it.\n",
        env={
            "TACK_DAEMON_URL": credentials.callback_url,
            "TACK_DAEMON_TOKEN": credentials.token,
            "TACK_CALLBACK_SECRET": credentials.secret,
        },
        max_duration_s=30,
        idle_s=20,
    )

    result = run_agent(sandbox, ClaudeCodeRuntime(), request, poll_interval=0.02)

    events = []
    after = 0
    deadline = time.monotonic() + 15
    while not any(e.type == "agent.finished" for e in events):
        assert time.monotonic() < deadline, events
        page = relay_client.poll(channel.channel, after, wait=2)
        events += page.events
        after = page.next_after
    lines = [
        line for e in events if e.type == "agent.progress" for line in e.data["lines"]
    ]
    final = [e for e in events if e.type == "agent.finished"][0]
    assert result.failure is None
    assert lines == result.parsed.activity
    assert final.sandbox == "builder-1"
    assert final.data["status"] == "succeeded"
    assert final.data["cost_usd"] == pytest.approx(0.0421)
