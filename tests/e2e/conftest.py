"""The whole product on loopback: fake GitHub, fake Daytona, the relay, an OIDC issuer.

``Stack`` starts every service one scenario needs, publishes tabulate through
the fake GitHub's git smart HTTP and runs ``python -m tack_action run`` as its
own process with the environment the runner gives a job step. The relay sits
behind ``CallbackCounter``, a recording reverse proxy, so a test can count the
callbacks the sandboxes posted and the events the job read, independently of
the relay's own storage.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from ..fakes.daytona_server import FakeDaytonaServer
from ..fakes.github_server import FakeGitHub
from ..fakes.oidc import REQUEST_TOKEN, FakeOIDCIssuer
from ..github.conftest import MAINTAINER, ActionHarness, ActionResult
from ..github.openapi import EXAMPLES_PATH, load_examples, require_fixture
from ..helpers import git
from ..relay.conftest import RelayServer, free_port, relay_settings
from . import tabulate_project

OWNER = "astanin"
REPO = "python-tabulate"
REPOSITORY_ID = "1001"
OWNER_ID = "2002"

# Variables of the test process that must not reach the job.
_JOB_ENV_PREFIXES = ("TACK_", "GITHUB_", "DAYTONA_", "RELAY_", "ACTIONS_", "RUNNER_")

# Seconds one ``tack-action run`` may take before the test gives up on it.
RUN_TIMEOUT_S = 150


@dataclass
class ProxiedRequest:
    """One request that passed through the callback counter."""

    method: str
    path: str
    status: int
    webhook_id: str = ""
    event_ids: list[str] = field(default_factory=list)


class CallbackCounter:
    """A loopback reverse proxy in front of the relay that records every request."""

    def __init__(self, upstream: str, port: int = 0) -> None:
        self.upstream = upstream
        self.requests: list[ProxiedRequest] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> CallbackCounter:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def callbacks_posted(self) -> set[str]:
        """Return the webhook ids of callbacks the relay acknowledged with 2xx."""
        with self._lock:
            return {
                r.webhook_id
                for r in self.requests
                if r.method == "POST"
                and r.path.startswith("/v1/callbacks/")
                and 200 <= r.status < 300
            }

    def callback_attempts(self) -> int:
        """Return how many callback POSTs the sandboxes made, retries included."""
        with self._lock:
            return sum(
                1
                for r in self.requests
                if r.method == "POST" and r.path.startswith("/v1/callbacks/")
            )

    def events_read(self) -> set[str]:
        """Return the ids of every event the job read from its channels."""
        with self._lock:
            return {event for r in self.requests for event in r.event_ids}

    def _record(self, entry: ProxiedRequest) -> None:
        with self._lock:
            self.requests.append(entry)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        counter = self
        client = httpx.Client(base_url=self.upstream, timeout=60)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                self._forward()

            def do_POST(self) -> None:  # noqa: N802
                self._forward()

            def do_DELETE(self) -> None:  # noqa: N802
                self._forward()

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {
                    name: value
                    for name, value in self.headers.items()
                    if name.lower() not in ("host", "content-length", "connection")
                }
                try:
                    response = client.request(
                        self.command, self.path, content=body, headers=headers
                    )
                except httpx.HTTPError:
                    # Only teardown stops the relay during a long-poll, and
                    # by then the job has ended, so no response is sent.
                    self.close_connection = True
                    return
                entry = ProxiedRequest(
                    self.command,
                    self.path.split("?")[0],
                    response.status_code,
                    webhook_id=self.headers.get("webhook-id", ""),
                )
                if entry.path.endswith("/events") and response.status_code == 200:
                    entry.event_ids = [e["id"] for e in response.json()["events"]]
                counter._record(entry)
                self.send_response(response.status_code)
                for name, value in response.headers.items():
                    if name.lower() not in ("content-length", "transfer-encoding"):
                        if name.lower() not in ("connection", "content-encoding"):
                            self.send_header(name, value)
                self.send_header("Content-Length", str(len(response.content)))
                self.end_headers()
                try:
                    self.wfile.write(response.content)
                except (BrokenPipeError, ConnectionResetError):
                    # A job that ends closes its long-poll without reading it.
                    return

            def log_message(self, format: str, *args: Any) -> None:
                return None

        return Handler


@dataclass
class Stack:
    """Every service of one scenario, and the runner that drives the Action."""

    root: Path
    github: FakeGitHub
    daytona: FakeDaytonaServer
    issuer: FakeOIDCIssuer
    relay: RelayServer
    counter: CallbackCounter
    project: Path
    harness: ActionHarness
    script: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)

    def job_env(self, event_name: str, payload: dict[str, Any]) -> dict[str, str]:
        """Return the full environment of one job step, as the runner sets it."""
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(_JOB_ENV_PREFIXES)
        }
        env.update(self.harness.env(event_name, payload))
        env.update(
            {
                "HOME": str(self.root / "runner-home"),
                "GIT_CONFIG_NOSYSTEM": "1",
                "NO_PROXY": "127.0.0.1,localhost",
                "TACK_INPUT_DAYTONA_API_KEY": self.daytona.api_key,
                "TACK_INPUT_RELAY_URL": self.counter.url,
                "ACTIONS_ID_TOKEN_REQUEST_URL": self.issuer.request_url,
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN": REQUEST_TOKEN,
                "DAYTONA_USE_DEPRECATED_POLLING": "true",
            }
        )
        (self.root / "runner-home").mkdir(exist_ok=True)
        # The runner mints OIDC tokens whose run_id is this workflow run's.
        self.issuer.claims["run_id"] = env["GITHUB_RUN_ID"]
        return env

    def start_job(self, event_name: str, payload: dict[str, Any]) -> Job:
        """Start ``python -m tack_action run`` for one event."""
        env = self.job_env(event_name, payload)
        cwd = self.root / "runner-cwd"
        cwd.mkdir(exist_ok=True)
        log_path = Path(env["GITHUB_OUTPUT"]).with_name("job.log")
        log = log_path.open("w")
        process = subprocess.Popen(
            [sys.executable, "-m", "tack_action", "run"],
            env=env,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        return Job(process, env, log_path, time.monotonic())

    def run_job(
        self, event_name: str, payload: dict[str, Any], label: str
    ) -> ActionResult:
        """Run one job to its end, record its duration and return its result."""
        job = self.start_job(event_name, payload)
        code = job.process.wait(RUN_TIMEOUT_S)
        self.timings[label] = time.monotonic() - job.started
        return self.harness.collect(job.env, code, job.log_path.read_text())

    def sandboxes_created(self) -> int:
        return len(self.daytona.requests_matching("POST", r"^/api/sandbox$"))

    def stored_events(self) -> list[tuple[str, str, str]]:
        """Return (channel, webhook id, type) of every event in the relay database."""
        with sqlite3.connect(self.root / "relay" / "relay.db") as db:
            rows = db.execute(
                "SELECT channel_id, webhook_id, type FROM events ORDER BY seq"
            ).fetchall()
        return [tuple(row) for row in rows]


@dataclass
class Job:
    """One ``tack-action run`` process."""

    process: subprocess.Popen[bytes]
    env: dict[str, str]
    log_path: Path
    started: float

    def kill(self) -> None:
        """End the job the hard way, as a lost runner would: SIGKILL, no cleanup."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)


def labeled_payload(stack: Stack, issue: dict[str, Any]) -> dict[str, Any]:
    """Return GitHub's ``issues`` ``labeled`` example pointed at this issue."""
    require_fixture(EXAMPLES_PATH)
    example = next(p for p in load_examples()["issues"] if p["action"] == "labeled")
    payload = json.loads(json.dumps(example))
    github = stack.github
    stack.github.state.issues[issue["number"]]["labels"].append("tack")
    sender = stack.harness.sender(MAINTAINER)
    author = stack.harness.sender(issue["user"])

    payload["label"].update(name="tack", url=f"{github.url}/labels/tack")
    payload["issue"].update(
        number=issue["number"],
        title=issue["title"],
        body=issue["body"],
        labels=[{"name": "tack"}],
        url=f"{github.url}/repos/{github.full_name}/issues/{issue['number']}",
        html_url=f"{github.url}/{github.full_name}/issues/{issue['number']}",
    )
    payload["issue"]["user"].update(author)
    repository = payload["repository"]
    repository.update(
        id=int(REPOSITORY_ID),
        name=github.name,
        full_name=github.full_name,
        default_branch="main",
        clone_url=github.clone_url,
    )
    repository["owner"].update(login=github.owner, id=int(OWNER_ID))
    payload["sender"].update(sender)
    return payload


def start_stack(root: Path, sdist: Path, *, slow_docs_s: float = 0) -> Stack:
    """Start every service and publish tabulate with a scripted agent."""
    github = FakeGitHub(root / "github", owner=OWNER, repo=REPO).start()
    github.add_user(MAINTAINER, permission="write")
    daytona = FakeDaytonaServer(root / "daytona").start()
    issuer = FakeOIDCIssuer(
        {
            "repository": github.full_name,
            "repository_id": REPOSITORY_ID,
            "repository_owner": OWNER,
            "repository_owner_id": OWNER_ID,
        }
    ).start()

    # The proxy's URL is the relay's public URL: callback URLs and the OIDC
    # audience both name it, as they would name a load balancer.
    (root / "relay").mkdir(parents=True)
    proxy_port = free_port()
    relay = RelayServer(
        {
            **relay_settings(issuer, f"sqlite:///{root / 'relay' / 'relay.db'}"),
            "RELAY_PUBLIC_URL": f"http://127.0.0.1:{proxy_port}",
        },
        root / "relay",
    ).start()
    counter = CallbackCounter(relay.url, proxy_port).start()

    project = tabulate_project.unpack_sdist(sdist, root / "source")
    script = tabulate_project.agent_script(project, slow_docs_s=slow_docs_s)
    script_path = root / "agent-script.json"
    script_path.write_text(json.dumps(script))
    config = tabulate_project.tack_config(script_path, daytona.api_url)
    tabulate_project.make_repository(project, yaml.safe_dump(config, sort_keys=False))
    github.publish_repo(project)

    # actions/checkout: the job's workspace is a clone of the default branch.
    workspace = root / "workspace"
    git(root, "clone", "-q", github.bare_path.as_posix(), str(workspace))
    harness = ActionHarness(github, workspace, root / "runner")
    return Stack(
        root, github, daytona, issuer, relay, counter, project, harness, script
    )


def stop_stack(stack: Stack) -> None:
    """Stop every service the stack started."""
    stack.counter.stop()
    stack.relay.stop()
    stack.issuer.stop()
    stack.daytona.stop()
    stack.github.stop()


@pytest.fixture(scope="session")
def tabulate_sdist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Download the tabulate sdist once per session."""
    return tabulate_project.fetch_sdist(tmp_path_factory.mktemp("sdist"))
