"""Tests for the Claude Code, Codex and Pi runtimes with fake CLIs in real sandboxes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tack_action.agents import (
    ClaudeCodeRuntime,
    CodexRuntime,
    CommandRuntime,
    PiRuntime,
    make_runtime,
    role_models,
)
from tack_action.agents.base import AgentRequest
from tack_action.agents.run import read_exit_status, run_agent, session_paths
from tack_action.config import TackConfig
from tack_action.credentials import Credentials, load_credentials
from tack_action.errors import AgentError, ConfigError
from tack_action.sandbox.local import LocalProvider, LocalSandbox
from tests.fakes.agents import scenarios

FAKES = Path(__file__).parent / "fakes" / "agents"
CLIS = {"claude-code": "claude", "codex": "codex", "pi": "pi"}
PROVIDER_KEY = "sk-provider-key-0f1e2d3c"
CANARIES = {
    "GITHUB_TOKEN": "ghs_canaryGithubToken123",
    "GH_TOKEN": "gho_canaryGhToken456",
    "DAYTONA_API_KEY": "dtn_canaryDaytonaKey789",
}

EXPECTED_ACTIVITY = {
    "claude-code": [
        "read src/app.py",
        "edit src/app.py",
        "write tests/test_app.py",
        "$ python -m pytest -q",
        "done: Added the endpoint and its test.",
    ],
    "codex": [
        "$ cat src/app.py",
        "edit src/app.py",
        "write tests/test_app.py",
        "$ python -m pytest -q",
        "done: Added the endpoint and its test.",
    ],
    "pi": [
        "read src/app.py",
        "edit src/app.py",
        "write tests/test_app.py",
        "$ python -m pytest -q",
        "done: Added the endpoint and its test.",
    ],
}
EXPECTED_COST = {"claude-code": 0.0421, "codex": None, "pi": 0.0036}


@pytest.fixture
def sandbox(tmp_path: Path) -> LocalSandbox:
    return LocalProvider(tmp_path / "sandboxes").create("tack-runtime-test", {})


@pytest.fixture
def fake_clis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{FAKES}{os.pathsep}{os.environ['PATH']}")


def make_request(sandbox: LocalSandbox, **overrides) -> AgentRequest:
    fields = {
        "role": "builder",
        "name": "builder-0123abcd-4567ef01",
        "prompt": "Build the API.\n",
        "env": {"TACK_AGENT_ROLE": "builder"},
        "max_duration_s": 20.0,
        "idle_s": 10.0,
    }
    fields.update(overrides)
    return AgentRequest(**fields)


def scenario_env(sandbox: LocalSandbox, scenario: str = "success") -> dict[str, str]:
    """Return agent environment that selects the fakes' scenario and record file."""
    return {
        "TACK_AGENT_ROLE": "builder",
        "FAKE_AGENT_SCENARIO": scenario,
        "FAKE_AGENT_RECORD": f"{sandbox.tmpdir}/record.json",
    }


def read_record(sandbox: LocalSandbox) -> dict:
    return json.loads(Path(sandbox.tmpdir, "record.json").read_text())


def transcript(runtime: str, cwd: str = "/work/repo") -> str:
    cli = CLIS[runtime]
    events = scenarios.BUILDERS[cli](cwd, "src/app.py", scenarios.DEFAULT_FINAL)
    if runtime == "codex":
        # Codex names no working directory, so the runner writes it first.
        events.insert(0, {"type": "tack.session", "cwd": cwd})
    return "\n".join(json.dumps(event) for event in events) + "\n"


def runtime_for(name: str, **models: str):
    classes = {"claude-code": ClaudeCodeRuntime, "codex": CodexRuntime, "pi": PiRuntime}
    return classes[name](models=models)


def config_for(runtime: str, **sections) -> TackConfig:
    data = {"agents": {"runtime": runtime}, **sections}
    return TackConfig.model_validate(data)


def credentials_file(tmp_path: Path, text: str) -> Credentials:
    path = tmp_path / "credentials.yaml"
    path.write_text(text)
    path.chmod(0o600)
    return load_credentials(path)


# --- parsing --------------------------------------------------------------


@pytest.mark.parametrize("runtime", sorted(CLIS))
def test_parse_transcript_activity(runtime: str) -> None:
    parsed = runtime_for(runtime).parse(transcript(runtime))

    assert parsed.activity == EXPECTED_ACTIVITY[runtime]


@pytest.mark.parametrize("runtime", sorted(CLIS))
def test_parse_transcript_messages_and_final(runtime: str) -> None:
    parsed = runtime_for(runtime).parse(transcript(runtime))

    assert parsed.messages == {
        "commit_message": "Add the endpoint",
        "pr_title": "Endpoint",
    }
    assert parsed.final_message == "Added the endpoint and its test."


@pytest.mark.parametrize("runtime", sorted(CLIS))
def test_parse_transcript_cost(runtime: str) -> None:
    parsed = runtime_for(runtime).parse(transcript(runtime))

    assert parsed.cost_usd == pytest.approx(EXPECTED_COST[runtime])


@pytest.mark.parametrize("runtime", sorted(CLIS))
def test_parse_skips_malformed_lines(runtime: str) -> None:
    lines = transcript(runtime).splitlines()
    garbage = ["not json", "{cut", "[1]", '{"type": "assistant", "message": 3}', ""]
    mixed = "\n".join(
        line for pair in zip(lines, garbage * 20, strict=False) for line in pair
    )

    parsed = runtime_for(runtime).parse(mixed)

    assert parsed.activity == EXPECTED_ACTIVITY[runtime]
    assert parsed.cost_usd == pytest.approx(EXPECTED_COST[runtime])


def test_parse_truncated_stream_keeps_plain_tail() -> None:
    output = transcript("claude-code").splitlines()[:3]
    output += ['{"type": "assis', "Error: lost the connection"]

    parsed = runtime_for("claude-code").parse("\n".join(output))

    assert parsed.activity == ["read src/app.py"]
    assert parsed.final_message == "I'll read the module first."
    assert parsed.cost_usd is None


@pytest.mark.parametrize("runtime", sorted(CLIS))
def test_parse_plain_error_becomes_final(runtime: str) -> None:
    output = "Warning: config not found\nError: Invalid API key\n"

    parsed = runtime_for(runtime).parse(output)

    assert parsed.activity == []
    assert parsed.final_message == "Warning: config not found\nError: Invalid API key"


def test_parse_claude_error_result_keeps_cost() -> None:
    result = {
        "type": "result",
        "subtype": "error_max_turns",
        "is_error": True,
        "total_cost_usd": 0.5,
    }

    parsed = runtime_for("claude-code").parse(json.dumps(result))

    assert parsed.cost_usd == 0.5


def test_parse_codex_unwraps_shell_commands() -> None:
    item = {
        "id": "item_9",
        "type": "command_execution",
        "command": "bash -lc 'rg -n \"def app\" src'",
    }
    events = [{"type": "item.started", "item": item}]
    events.append({"type": "item.completed", "item": item})

    parsed = runtime_for("codex").parse("\n".join(map(json.dumps, events)))

    assert parsed.activity == ['$ rg -n "def app" src']


# --- commands and models --------------------------------------------------


def test_claude_command_uses_stream_json() -> None:
    runtime = runtime_for("claude-code", builder="claude-opus-4-1")
    request = AgentRequest(role="builder", name="b-1", prompt="x")

    command, env = runtime.command(request, "/tmp/p/b-1.md")

    assert "--output-format stream-json --verbose" in command
    assert "--model claude-opus-4-1" in command
    assert command.endswith("< /tmp/p/b-1.md")
    assert env == {"TACK_PROMPT_FILE": "/tmp/p/b-1.md"}


def test_role_models_fall_back_to_default() -> None:
    config = config_for(
        "claude-code", models={"default": "base", "planner": "deep", "small_tasks": ""}
    )

    models = role_models(config)

    assert models["planner"] == "deep"
    assert models["builder"] == "base"
    assert models["pr-writer"] == "base"


def test_role_models_empty_without_names() -> None:
    assert role_models(config_for("codex")) == {}


@pytest.mark.parametrize(
    ("runtime", "cls"),
    [
        ("command", CommandRuntime),
        ("claude-code", ClaudeCodeRuntime),
        ("codex", CodexRuntime),
        ("pi", PiRuntime),
    ],
)
def test_make_runtime_selects_class(runtime: str, cls: type) -> None:
    selected = make_runtime(config_for(runtime))

    assert isinstance(selected, cls)


def test_make_runtime_native_with_daytona_rejected() -> None:
    config = config_for("claude-code", sandbox={"provider": "daytona"})

    with pytest.raises(ConfigError, match="runtime_auth.mode"):
        make_runtime(config)


def test_make_runtime_missing_credential_names_ref(tmp_path: Path) -> None:
    config = config_for("codex", runtime_auth={"mode": "tack", "credential_ref": "oa"})
    credentials = credentials_file(tmp_path, "providers: {}\n")

    with pytest.raises(ConfigError, match="providers.oa"):
        make_runtime(config, credentials)


def test_make_runtime_method_mismatch_rejected(tmp_path: Path) -> None:
    config = config_for("claude-code", runtime_auth={"mode": "tack", "method": "oauth"})
    credentials = credentials_file(
        tmp_path,
        f"providers:\n  anthropic: {{type: api_key, api_key: {PROVIDER_KEY}}}\n",
    )

    with pytest.raises(ConfigError, match="type 'api_key'"):
        make_runtime(config, credentials)


def test_make_runtime_runtime_mismatch_rejected(tmp_path: Path) -> None:
    config = config_for("codex", runtime_auth={"mode": "tack", "runtime": "pi"})

    with pytest.raises(ConfigError, match="runtime_auth.runtime"):
        make_runtime(config, Credentials())


def test_make_runtime_codex_oauth_rejected(tmp_path: Path) -> None:
    config = config_for("codex", runtime_auth={"mode": "tack", "method": "oauth"})
    credentials = credentials_file(
        tmp_path, "providers:\n  openai: {type: oauth, access_token: tok}\n"
    )

    with pytest.raises(ConfigError, match="OpenAI API key"):
        make_runtime(config, credentials)


# --- running the fake CLIs ------------------------------------------------


@pytest.mark.parametrize("runtime", sorted(CLIS))
def test_run_fake_cli_success(
    runtime: str, sandbox: LocalSandbox, fake_clis: None
) -> None:
    activity: list[str] = []
    request = make_request(sandbox, env=scenario_env(sandbox))

    result = run_agent(
        sandbox,
        runtime_for(runtime),
        request,
        on_activity=activity.append,
        poll_interval=0.02,
    )

    assert result.failure is None
    assert activity == EXPECTED_ACTIVITY[runtime]
    assert result.parsed.cost_usd == pytest.approx(EXPECTED_COST[runtime])
    assert result.parsed.messages["commit_message"] == "Add the endpoint"


@pytest.mark.parametrize("runtime", sorted(CLIS))
def test_run_fake_cli_prompt_reaches_cli(
    runtime: str, sandbox: LocalSandbox, fake_clis: None
) -> None:
    request = make_request(sandbox, env=scenario_env(sandbox))

    run_agent(sandbox, runtime_for(runtime), request, poll_interval=0.02)

    record = read_record(sandbox)
    prompt_path = f"{sandbox.tmpdir}/prompts/{request.name}.md"
    if runtime == "pi":
        assert f"@{prompt_path}" in record["argv"]
    else:
        assert "Build the API." in record["stdin"]
    assert "builder agent of tack-action" in " ".join(record["argv"]) + record["stdin"]


@pytest.mark.parametrize("runtime", sorted(CLIS))
def test_run_fake_cli_keeps_log_and_exit(
    runtime: str, sandbox: LocalSandbox, fake_clis: None
) -> None:
    request = make_request(sandbox, env=scenario_env(sandbox))

    run_agent(sandbox, runtime_for(runtime), request, poll_interval=0.02)

    log_path, exit_path = session_paths(sandbox, request.name)
    assert not log_path.startswith(sandbox.workdir)
    assert '"type"' in Path(log_path).read_text()
    assert read_exit_status(sandbox, request.name) == 0
    assert Path(exit_path).read_text() == "0\n"


@pytest.mark.parametrize("runtime", sorted(CLIS))
def test_run_fake_cli_malformed_lines(
    runtime: str, sandbox: LocalSandbox, fake_clis: None
) -> None:
    request = make_request(sandbox, env=scenario_env(sandbox, "malformed"))

    result = run_agent(sandbox, runtime_for(runtime), request, poll_interval=0.02)

    assert result.failure is None
    assert result.parsed.activity == EXPECTED_ACTIVITY[runtime]
    assert result.parsed.cost_usd == pytest.approx(EXPECTED_COST[runtime])


@pytest.mark.parametrize("runtime", sorted(CLIS))
def test_run_fake_cli_crash_mid_stream(
    runtime: str, sandbox: LocalSandbox, fake_clis: None
) -> None:
    request = make_request(sandbox, env=scenario_env(sandbox, "crash"))

    result = run_agent(sandbox, runtime_for(runtime), request, poll_interval=0.02)

    assert result.failure == "agent_runtime_transient"
    assert result.exit_code == 3
    assert "lost its connection" in result.error
    assert read_exit_status(sandbox, request.name) == 3


@pytest.mark.parametrize("runtime", sorted(CLIS))
def test_run_fake_cli_hang_stopped_idle(
    runtime: str, sandbox: LocalSandbox, fake_clis: None
) -> None:
    request = make_request(sandbox, env=scenario_env(sandbox, "hang"), idle_s=0.6)

    result = run_agent(sandbox, runtime_for(runtime), request, poll_interval=0.02)

    assert result.failure == "agent_runtime_transient"
    assert result.exit_code is None
    assert "idle for 0.6 seconds" in result.error
    assert result.parsed.activity


@pytest.mark.parametrize("runtime", sorted(CLIS))
def test_run_missing_cli_raises_install_hint(
    runtime: str, sandbox: LocalSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    request = make_request(sandbox)

    with pytest.raises(AgentError, match="npm install -g"):
        run_agent(sandbox, runtime_for(runtime), request, poll_interval=0.02)


# --- credentials ------------------------------------------------------------


@pytest.mark.parametrize("runtime", [*sorted(CLIS), "command"])
def test_canary_tokens_absent_from_agent(
    runtime: str,
    sandbox: LocalSandbox,
    fake_clis: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in CANARIES.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ANTHROPIC_KEY_SOURCE", PROVIDER_KEY)
    credentials = credentials_file(
        tmp_path,
        "providers:\n"
        "  anthropic: {type: api_key, api_key: ANTHROPIC_KEY_SOURCE}\n"
        "  openai: {type: api_key, api_key: ANTHROPIC_KEY_SOURCE}\n"
        "git: {token: GITHUB_TOKEN}\n"
        "sandbox: {daytona: {api_key: DAYTONA_API_KEY}}\n",
    )
    agents = {"runtime": runtime, "command": f"{FAKES}/claude -p"}
    config = TackConfig.model_validate(
        {"agents": agents, "runtime_auth": {"mode": "tack"}}
    )
    request = make_request(sandbox, env=scenario_env(sandbox, "printenv"))

    result = run_agent(
        sandbox, make_runtime(config, credentials), request, poll_interval=0.02
    )

    record = read_record(sandbox)
    leaked_env = [
        value for value in CANARIES.values() if value in json.dumps(record["env"])
    ]
    leaked_output = [value for value in CANARIES.values() if value in result.output]
    assert result.failure is None
    assert leaked_env == []
    assert leaked_output == []
    assert (PROVIDER_KEY in record["env"].values()) == (runtime != "command")


def test_pi_oauth_projects_auth_file(
    sandbox: LocalSandbox, fake_clis: None, tmp_path: Path
) -> None:
    credentials = credentials_file(
        tmp_path,
        "providers:\n  openai-codex: {type: oauth, access_token: acc-1, "
        "refresh_token: ref-1, expires_at: 1700000000}\n",
    )
    config = TackConfig.model_validate(
        {
            "agents": {"runtime": "pi", "pi": {"provider": "openai-codex"}},
            "runtime_auth": {"mode": "tack", "method": "oauth"},
        }
    )
    request = make_request(sandbox, env=scenario_env(sandbox))

    result = run_agent(
        sandbox, make_runtime(config, credentials), request, poll_interval=0.02
    )

    record = read_record(sandbox)
    auth = json.loads(record["pi_auth"])
    agent_dir = Path(record["env"]["PI_CODING_AGENT_DIR"])
    assert result.failure is None
    assert auth["openai-codex"] == {
        "type": "oauth",
        "access": "acc-1",
        "refresh": "ref-1",
        "expires": 1700000000000,
    }
    assert "TACK_PI_AUTH_JSON" not in record["env"]
    assert "--provider" in record["argv"]
    assert not (agent_dir / "auth.json").exists()


def test_run_rate_limited_session_kind(
    sandbox: LocalSandbox, fake_clis: None, tmp_path: Path
) -> None:
    error = "API Error: 429 rate_limit_error: Number of requests exceeded your limit"
    lines = [
        {"type": "system", "subtype": "init", "cwd": "{cwd}", "session_id": "s-1"},
        {"type": "result", "subtype": "success", "is_error": True, "result": error},
    ]
    replay = tmp_path / "rate-limited.jsonl"
    replay.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    env = {**scenario_env(sandbox, "crash"), "FAKE_AGENT_TRANSCRIPT": str(replay)}
    request = make_request(sandbox, env=env)

    result = run_agent(sandbox, runtime_for("claude-code"), request, poll_interval=0.02)

    assert result.failure == "provider_rate_limit"
    assert result.exit_code == 3


def test_run_plain_crash_stays_transient(
    sandbox: LocalSandbox, fake_clis: None
) -> None:
    request = make_request(sandbox, env=scenario_env(sandbox, "crash"))

    result = run_agent(sandbox, runtime_for("codex"), request, poll_interval=0.02)

    assert result.failure == "agent_runtime_transient"
