"""Tests for the command runtime and the agent run loop, with real processes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tack_action.agents.base import AgentRequest
from tack_action.agents.command import CommandRuntime
from tack_action.agents.run import kill_command, run_agent
from tack_action.errors import AgentError
from tack_action.sandbox.local import LocalProvider, LocalSandbox


@pytest.fixture
def sandbox(tmp_path: Path) -> LocalSandbox:
    return LocalProvider(tmp_path / "sandboxes").create("tack-agent-test", {})


def runtime_for(command: str | None) -> CommandRuntime:
    return CommandRuntime(lambda role: command)


def make_request(**overrides) -> AgentRequest:
    fields = {
        "role": "builder",
        "name": "builder-0123abcd-4567ef01",
        "prompt": "Build the API.\n",
        "env": {"TACK_AGENT_ROLE": "builder"},
        "max_duration_s": 10.0,
        "idle_s": 5.0,
    }
    fields.update(overrides)
    return AgentRequest(**fields)


def test_parse_keeps_activity_lines() -> None:
    output = "read a.py\nthinking\nedit b.py\nwrite c.md\n$ pytest -q\ndone: ok\n"

    parsed = runtime_for("x").parse(output)

    assert parsed.activity == [
        "read a.py",
        "edit b.py",
        "write c.md",
        "$ pytest -q",
        "done: ok",
    ]


def test_parse_truncates_long_activity() -> None:
    parsed = runtime_for("x").parse("edit " + "a" * 300)

    assert len(parsed.activity[0]) == 200


def test_parse_done_marker_becomes_activity() -> None:
    parsed = runtime_for("x").parse("working\nTACK_DONE:added the endpoint\n")

    assert parsed.activity == ["done: added the endpoint"]
    assert parsed.final_message == "working"


def test_parse_last_valid_messages_win() -> None:
    output = (
        'TACK_MESSAGES:{"commit_message": "first"}\n'
        'TACK_MESSAGES:{"commit_message": "second", "pr_title": "Title", "n": 3}\n'
        "TACK_MESSAGES:{not json\n"
        'TACK_MESSAGES:["a list"]\n'
    )

    parsed = runtime_for("x").parse(output)

    assert parsed.messages == {"commit_message": "second", "pr_title": "Title"}


def test_parse_reads_cost() -> None:
    parsed = runtime_for("x").parse("TACK_COST_USD:0.12\nTACK_COST_USD:abc\n")

    assert parsed.cost_usd == 0.12


def test_parse_without_cost_is_none() -> None:
    assert runtime_for("x").parse("hello\n").cost_usd is None


def test_parse_final_message_last_twenty_lines() -> None:
    lines = [f"line {number}" for number in range(30)]
    output = "\n".join(lines) + '\nTACK_MESSAGES:{"a": "b"}\n\n'

    parsed = runtime_for("x").parse(output)

    assert parsed.final_message == "\n".join(lines[10:])


def test_command_returns_prompt_env() -> None:
    runtime = CommandRuntime({"builder": "my-agent --yes"}.get)

    command, env = runtime.command(make_request(), "/tmp/p.md")

    assert command == "my-agent --yes"
    assert env == {"TACK_PROMPT_FILE": "/tmp/p.md"}


def test_command_missing_names_role_and_key() -> None:
    runtime = CommandRuntime({"planner": "plan"}.get)

    with pytest.raises(AgentError, match="'builder'.*agents.command"):
        runtime.command(make_request(), "/tmp/p.md")


def test_run_agent_success_reports_activity(sandbox: LocalSandbox) -> None:
    script = (
        'echo "read $TACK_PROMPT_FILE"; cat "$TACK_PROMPT_FILE"; '
        'echo "role=$TACK_AGENT_ROLE"; echo "edit src/api.py"; '
        "echo '$ pytest -q'; echo 'TACK_DONE:built the API'; "
        """echo 'TACK_MESSAGES:{"commit_message": "Add the API"}'"""
    )
    activity: list[str] = []
    started: list[str] = []

    result = run_agent(
        sandbox,
        runtime_for(script),
        make_request(),
        on_activity=activity.append,
        on_started=started.append,
        poll_interval=0.02,
    )

    prompt_path = f"{sandbox.tmpdir}/prompts/builder-0123abcd-4567ef01.md"
    assert result.failure is None
    assert result.exit_code == 0
    assert activity == [
        f"read {prompt_path}",
        "edit src/api.py",
        "$ pytest -q",
        "done: built the API",
    ]
    assert len(started) == 1
    assert started[0].startswith("cmd-")
    assert "Build the API." in result.output
    assert "role=builder" in result.output
    assert result.parsed.messages == {"commit_message": "Add the API"}


def test_run_agent_streams_activity_while_running(sandbox: LocalSandbox) -> None:
    release = Path(sandbox.tmpdir) / "release"
    script = (
        f"echo 'edit a.py'; while [ ! -e {release} ]; do sleep 0.02; done; "
        "echo 'edit b.py'"
    )
    activity: list[str] = []

    def record(line: str) -> None:
        activity.append(line)
        release.touch()

    result = run_agent(
        sandbox,
        runtime_for(script),
        make_request(max_duration_s=5.0),
        on_activity=record,
        poll_interval=0.02,
    )

    assert result.failure is None
    assert activity == ["edit a.py", "edit b.py"]


def test_run_agent_nonzero_exit_fails(sandbox: LocalSandbox) -> None:
    script = "echo 'edit a.py'; echo 'fatal: model overloaded'; exit 3"

    result = run_agent(sandbox, runtime_for(script), make_request(), poll_interval=0.02)

    assert result.exit_code == 3
    assert result.failure == "agent_runtime_transient"
    assert "builder exited with code 3" in result.error
    assert "fatal: model overloaded" in result.error


def test_run_agent_max_duration_kills(sandbox: LocalSandbox) -> None:
    script = "while true; do echo working; sleep 0.05; done"
    started: list[str] = []

    result = run_agent(
        sandbox,
        runtime_for(script),
        make_request(max_duration_s=0.5, idle_s=5.0),
        on_started=started.append,
        poll_interval=0.02,
    )

    assert result.exit_code is None
    assert result.failure == "agent_runtime_transient"
    assert result.error.startswith("builder timed out after 0.5 seconds")
    assert "working" in result.output
    assert sandbox.get_command(started[0]).poll() == -1


def test_run_agent_idle_limit_kills(sandbox: LocalSandbox) -> None:
    script = "echo 'edit a.py'; sleep 5; echo never"
    started: list[str] = []

    result = run_agent(
        sandbox,
        runtime_for(script),
        make_request(max_duration_s=10.0, idle_s=0.5),
        on_started=started.append,
        poll_interval=0.02,
    )

    assert result.exit_code is None
    assert result.failure == "agent_runtime_transient"
    assert result.error.startswith("builder was idle for 0.5 seconds with no output")
    assert "never" not in result.output
    assert sandbox.get_command(started[0]).poll() == -1


def test_run_agent_rejects_path_like_name(sandbox: LocalSandbox) -> None:
    with pytest.raises(AgentError, match="Invalid agent name"):
        run_agent(sandbox, runtime_for("true"), make_request(name="../../x"))


def test_kill_command_stops_leftover_session(sandbox: LocalSandbox) -> None:
    handle = sandbox.start_command("sleep 5")

    kill_command(sandbox, handle.id)

    assert handle.poll() == -1


def test_kill_command_unknown_or_ended_is_quiet(sandbox: LocalSandbox) -> None:
    handle = sandbox.start_command("exit 0")
    while handle.poll() is None:
        time.sleep(0.02)

    kill_command(sandbox, handle.id)
    kill_command(sandbox, "cmd-ffffffffffffffff")

    assert handle.poll() == 0
