"""Agent sessions on Daytona stream their output over the log WebSocket."""

from __future__ import annotations

import pytest

from tack_action.agents.base import AgentRequest
from tack_action.agents.command import CommandRuntime
from tack_action.agents.run import run_agent
from tack_action.sandbox.daytona import DaytonaSandbox
from tests.fakes.daytona_server import FakeDaytonaServer
from tests.test_sandbox_daytona import fake, provider, sandbox  # noqa: F401

pytestmark = pytest.mark.slow

_AGENT = "for i in 1 2 3; do echo edit src/file$i.py; sleep 0.3; done; echo done: ok"


def _request() -> AgentRequest:
    return AgentRequest(
        role="builder", name="builder-stream-test", prompt="Do it.", idle_s=30
    )


def _plain_log_reads(server: FakeDaytonaServer) -> int:
    reads = server.requests_matching("GET", r"/command/[^/]+/logs$")
    return len([r for r in reads if "follow" not in r.query])


def test_run_agent_streams_activity(
    fake: FakeDaytonaServer,  # noqa: F811
    sandbox: DaytonaSandbox,  # noqa: F811
) -> None:
    lines: list[str] = []
    runtime = CommandRuntime(lambda role: _AGENT)

    result = run_agent(sandbox, runtime, _request(), on_activity=lines.append)

    assert result.failure is None, result.error
    assert result.exit_code == 0
    assert lines[:3] == ["edit src/file1.py", "edit src/file2.py", "edit src/file3.py"]
    followed = fake.requests_matching("GET", r"/logs")
    assert any(r.query.get("follow") == ["true"] for r in followed)
    # Streaming replaces the five-a-second polling of the plain logs.
    assert _plain_log_reads(fake) <= 3


def test_run_agent_polls_when_socket_closes(
    fake: FakeDaytonaServer,  # noqa: F811
    sandbox: DaytonaSandbox,  # noqa: F811
) -> None:
    fake.close_websockets = True
    lines: list[str] = []
    runtime = CommandRuntime(lambda role: _AGENT)

    result = run_agent(sandbox, runtime, _request(), on_activity=lines.append)

    assert result.failure is None, result.error
    assert "edit src/file3.py" in lines
    assert "done: ok" in lines
