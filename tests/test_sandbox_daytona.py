"""Tests for the Daytona provider: the real SDK against a fake Daytona server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tack_action.errors import SandboxError, SandboxNotFound
from tack_action.sandbox import daytona as daytona_module
from tack_action.sandbox.base import Sandbox, SandboxProvider
from tack_action.sandbox.daytona import DaytonaProvider, DaytonaSandbox
from tests.fakes.daytona_server import FakeDaytonaServer

LABELS = {"tack.objective": "1a2b3c4d", "tack.stream": "api", "tack.role": "builder"}
NAME = "tack-1a2b3c4d-api"


@pytest.fixture
def fake(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeDaytonaServer]:
    # The SDK reads .env files from the working directory, so use an empty one.
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    server = FakeDaytonaServer(tmp_path / "sandboxes")
    with server:
        yield server


def make_provider(fake: FakeDaytonaServer, **options: object) -> DaytonaProvider:
    settings: dict[str, object] = {"repo_label": "octo/widgets", "retry_deadline": 2.0}
    settings.update(options)
    return DaytonaProvider("test-key", fake.api_url, **settings)  # type: ignore[arg-type]


@pytest.fixture
def provider(fake: FakeDaytonaServer) -> DaytonaProvider:
    return make_provider(fake)


@pytest.fixture
def sandbox(provider: DaytonaProvider) -> DaytonaSandbox:
    return provider.create(NAME, LABELS)


def create_body(fake: FakeDaytonaServer) -> dict:
    return fake.requests_matching("POST", r"^/api/sandbox$")[-1].json()


def wait_for_exit(handle, seconds: float = 10.0) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        code = handle.poll()
        if code is not None:
            return code
        time.sleep(0.05)
    raise AssertionError(f"command {handle.id} still runs after {seconds} s")


# Create.


def test_create_sends_name_labels_env_intervals(
    fake: FakeDaytonaServer, provider: DaytonaProvider
) -> None:
    provider.create(NAME, LABELS, env={"TACK_AGENT_ROLE": "builder"})

    body = create_body(fake)
    assert body["name"] == NAME
    assert body["labels"]["tack.stream"] == "api"
    assert body["labels"]["tack.objective"] == "1a2b3c4d"
    assert body["labels"]["tack.role"] == "builder"
    assert body["labels"]["tack.repo"] == "octo/widgets"
    assert body["env"] == {"TACK_AGENT_ROLE": "builder"}
    assert body["autoStopInterval"] == 30
    assert body["autoDeleteInterval"] == 1440


def test_create_from_image_sends_int_resources(fake: FakeDaytonaServer) -> None:
    provider = make_provider(fake, resources={"cpu": 2, "memory": 4096, "disk": 10})

    provider.create(NAME, LABELS, resources={"cpu": 4})

    body = create_body(fake)
    assert body["cpu"] == 4
    assert isinstance(body["cpu"], int)
    assert body["memory"] == 4  # GiB, from 4096 MB
    assert body["disk"] == 10
    assert "snapshot" not in body
    assert "daytonaio/sandbox" in body["buildInfo"]["dockerfileContent"]


def test_create_from_snapshot_sends_snapshot(fake: FakeDaytonaServer) -> None:
    provider = make_provider(fake, snapshot="tack-widgets-3f2a", auto_stop_interval=0)

    provider.create(NAME, LABELS)

    body = create_body(fake)
    assert body["snapshot"] == "tack-widgets-3f2a"
    assert "buildInfo" not in body
    assert body["autoStopInterval"] == 0


def test_create_prepares_workdir_and_tmpdir(sandbox: DaytonaSandbox) -> None:
    result = sandbox.exec(f"test -d {sandbox.workdir} && test -d {sandbox.tmpdir}")

    assert result.exit_code == 0
    assert sandbox.workdir.endswith("/repo")
    assert not sandbox.tmpdir.startswith(sandbox.workdir + "/")


def test_create_satisfies_sandbox_protocol(
    provider: DaytonaProvider, sandbox: DaytonaSandbox
) -> None:
    assert isinstance(provider, SandboxProvider)
    assert isinstance(sandbox, Sandbox)
    assert provider.name == "daytona"


def test_create_adopts_same_name_same_labels(
    fake: FakeDaytonaServer, sandbox: DaytonaSandbox
) -> None:
    again = make_provider(fake).create(NAME, LABELS)

    assert again.id == sandbox.id
    assert len(fake.sandboxes) == 1


def test_create_rejects_name_with_other_labels(
    fake: FakeDaytonaServer, sandbox: DaytonaSandbox
) -> None:
    other = {**LABELS, "tack.objective": "99999999"}

    with pytest.raises(SandboxError, match="already exists with other labels"):
        make_provider(fake).create(NAME, other)


def test_provider_rejects_empty_api_key() -> None:
    with pytest.raises(SandboxError, match="DAYTONA_API_KEY"):
        DaytonaProvider("", "http://127.0.0.1:9/api")


# Exec.


def test_exec_runs_in_workdir_with_env(sandbox: DaytonaSandbox) -> None:
    result = sandbox.exec('pwd; echo "$GREETING"; exit 4', env={"GREETING": "hi"})

    assert result.exit_code == 4
    assert result.output.splitlines() == [sandbox.workdir, "hi"]


def test_exec_honours_cwd(sandbox: DaytonaSandbox) -> None:
    result = sandbox.exec("pwd", cwd=sandbox.tmpdir)

    assert result.output.strip() == sandbox.tmpdir


def test_exec_timeout_raises_sandbox_error(sandbox: DaytonaSandbox) -> None:
    started = time.monotonic()

    with pytest.raises(SandboxError, match="Timed out"):
        sandbox.exec("sleep 5", timeout=1)

    assert time.monotonic() - started < 4


# Long-running commands.


def test_command_follow_streams_over_websocket(
    fake: FakeDaytonaServer, sandbox: DaytonaSandbox
) -> None:
    handle = sandbox.start_command("echo one; sleep 0.2; echo two >&2; exit 3")
    chunks: list[str] = []

    exit_code = handle.follow(chunks.append, poll_interval=0.05)

    assert exit_code == 3
    assert "".join(chunks).splitlines() == ["one", "two"]
    websockets = fake.requests_matching("GET", r"/logs$")
    assert any(r.query.get("follow") == ["true"] for r in websockets)


def test_command_follow_polls_when_websocket_closes(
    fake: FakeDaytonaServer, sandbox: DaytonaSandbox
) -> None:
    fake.close_websockets = True
    handle = sandbox.start_command("echo one; sleep 0.3; echo two")
    chunks: list[str] = []

    exit_code = handle.follow(chunks.append, poll_interval=0.05)

    assert exit_code == 0
    assert "".join(chunks).splitlines() == ["one", "two"]


def test_command_poll_and_logs(sandbox: DaytonaSandbox) -> None:
    handle = sandbox.start_command('echo "$WHO in $PWD"', env={"WHO": "agent"})

    exit_code = wait_for_exit(handle)

    assert exit_code == 0
    assert handle.logs().strip() == f"agent in {sandbox.workdir}"


def test_command_reports_running_as_none(sandbox: DaytonaSandbox) -> None:
    handle = sandbox.start_command("sleep 2")

    assert handle.poll() is None

    handle.kill()


def test_command_kill_stops_children(sandbox: DaytonaSandbox) -> None:
    marker = f"{sandbox.tmpdir}/late"
    handle = sandbox.start_command(f"(sleep 1; touch {marker}) & sleep 30")
    time.sleep(0.2)

    handle.kill()
    exit_code = wait_for_exit(handle, seconds=5)
    time.sleep(1.2)

    assert exit_code != 0
    assert sandbox.exec(f"test -e {marker}").exit_code == 1


def test_get_command_reattaches_after_restart(
    fake: FakeDaytonaServer, sandbox: DaytonaSandbox
) -> None:
    handle = sandbox.start_command("echo reattached")
    wait_for_exit(handle)
    restarted = make_provider(fake).get(sandbox.id)

    again = restarted.get_command(handle.id)

    assert again.poll() == 0
    assert again.logs().strip() == "reattached"


def test_get_command_rejects_foreign_id(sandbox: DaytonaSandbox) -> None:
    with pytest.raises(SandboxError, match="Invalid Daytona command id"):
        sandbox.get_command("not-an-id")


def test_command_poll_refreshes_activity(
    fake: FakeDaytonaServer,
    sandbox: DaytonaSandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handle = sandbox.start_command("sleep 2")
    monkeypatch.setattr(daytona_module, "ACTIVITY_REFRESH_SECONDS", 0.0)

    handle.poll()
    monkeypatch.setattr(daytona_module, "ACTIVITY_REFRESH_SECONDS", 60.0)
    handle.poll()
    handle.poll()

    assert len(fake.requests_matching("POST", r"/last-activity$")) == 1
    handle.kill()


def test_command_poll_survives_lost_session(
    fake: FakeDaytonaServer, sandbox: DaytonaSandbox
) -> None:
    handle = sandbox.start_command("exit 5")
    wait_for_exit(handle)
    fake.sandboxes[sandbox.id].sessions.clear()

    assert handle.poll() == 5


def test_command_poll_raises_when_stop_killed_it(
    fake: FakeDaytonaServer, sandbox: DaytonaSandbox
) -> None:
    handle = sandbox.start_command("sleep 30")
    fake.set_state(sandbox.id, "stopped")

    with pytest.raises(SandboxError, match="is gone"):
        handle.poll()


# Files.


def test_upload_then_download_roundtrip(sandbox: DaytonaSandbox) -> None:
    path = f"{sandbox.tmpdir}/prompts/builder.md"

    sandbox.upload(b"build the API\n", path)

    assert sandbox.download(path) == b"build the API\n"


def test_download_missing_file_raises(sandbox: DaytonaSandbox) -> None:
    with pytest.raises(SandboxError, match="does not exist"):
        sandbox.download(f"{sandbox.tmpdir}/missing.txt")


# Reuse and reload.


def test_find_after_restart_creates_nothing(
    fake: FakeDaytonaServer, sandbox: DaytonaSandbox
) -> None:
    restarted = make_provider(fake)

    found, created = restarted.find_or_create(NAME, LABELS)

    assert created is False
    assert found.id == sandbox.id
    assert len(fake.requests_matching("POST", r"^/api/sandbox$")) == 1


def test_find_scopes_to_repo_label(
    fake: FakeDaytonaServer, sandbox: DaytonaSandbox
) -> None:
    other_repo = make_provider(fake, repo_label="octo/other")

    assert other_repo.find({"tack.stream": "api"}) == []


def test_find_follows_pagination(fake: FakeDaytonaServer) -> None:
    fake.page_size = 1
    provider = make_provider(fake)
    for slug in ("a", "b", "c"):
        provider.create(f"tack-1a2b3c4d-{slug}", {**LABELS, "tack.stream": slug})

    found = provider.find({"tack.objective": "1a2b3c4d"})

    assert sorted(s.labels["tack.stream"] for s in found) == ["a", "b", "c"]
    assert len(fake.requests_matching("GET", r"^/api/sandbox$")) == 3


def test_get_starts_stopped_sandbox(
    fake: FakeDaytonaServer, sandbox: DaytonaSandbox
) -> None:
    fake.set_state(sandbox.id, "stopped")

    again = make_provider(fake).get(sandbox.id)

    assert again.state() == "started"
    assert len(fake.requests_matching("POST", r"/start$")) == 1


def test_get_missing_sandbox_raises_not_found(provider: DaytonaProvider) -> None:
    with pytest.raises(SandboxNotFound):
        provider.get("no-such-sandbox")


def test_exec_restarts_sandbox_stopped_midway(
    fake: FakeDaytonaServer, sandbox: DaytonaSandbox
) -> None:
    fake.set_state(sandbox.id, "stopped")

    result = sandbox.exec("echo back")

    assert result.output == "back\n"
    assert fake.sandboxes[sandbox.id].data["state"] == "started"


def test_get_recovers_recoverable_error(
    fake: FakeDaytonaServer, sandbox: DaytonaSandbox
) -> None:
    fake.set_state(sandbox.id, "error", recoverable=True, errorReason="disk full")

    make_provider(fake).get(sandbox.id)

    assert len(fake.requests_matching("POST", r"/recover$")) == 1


def test_get_unrecoverable_error_raises(
    fake: FakeDaytonaServer, sandbox: DaytonaSandbox
) -> None:
    fake.set_state(sandbox.id, "error", recoverable=False, errorReason="disk full")

    with pytest.raises(SandboxError, match="cannot be recovered: disk full"):
        make_provider(fake).get(sandbox.id)


def test_find_or_create_replaces_broken_sandbox(
    fake: FakeDaytonaServer, sandbox: DaytonaSandbox
) -> None:
    fake.set_state(sandbox.id, "build_failed", errorReason="bad image")

    found, created = make_provider(fake).find_or_create(NAME, LABELS)

    assert created is True
    assert found.id != sandbox.id
    assert sandbox.id not in fake.sandboxes


def test_delete_removes_sandbox(
    fake: FakeDaytonaServer, sandbox: DaytonaSandbox
) -> None:
    sandbox.delete()
    sandbox.delete()

    assert sandbox.id not in fake.sandboxes


def test_stop_leaves_sandbox_stopped(
    fake: FakeDaytonaServer, sandbox: DaytonaSandbox
) -> None:
    sandbox.stop()

    assert sandbox.state() == "stopped"


# Faults.


def test_create_retries_rate_limit(
    fake: FakeDaytonaServer, provider: DaytonaProvider
) -> None:
    fake.fail_next("POST", r"^/api/sandbox$", 429, count=2)

    provider.create(NAME, LABELS)

    assert len(fake.requests_matching("POST", r"^/api/sandbox$")) == 3


def test_retry_honours_retry_after(
    fake: FakeDaytonaServer, provider: DaytonaProvider
) -> None:
    # urllib3 honours Retry-After by itself for GET, so use a POST here.
    fake.fail_next("POST", r"^/api/sandbox$", 429, headers={"Retry-After": "1"})
    started = time.monotonic()

    provider.create(NAME, LABELS)

    assert time.monotonic() - started >= 0.9
    assert len(fake.requests_matching("POST", r"^/api/sandbox$")) == 2


def test_server_errors_past_deadline_raise(
    fake: FakeDaytonaServer, sandbox: DaytonaSandbox
) -> None:
    fake.fail_next("GET", r"^/api/sandbox/", 500, count=1000)
    started = time.monotonic()

    with pytest.raises(SandboxError, match="kept failing"):
        sandbox.state()

    assert time.monotonic() - started < 5
    assert len(fake.requests_matching("GET", r"^/api/sandbox/")) > 1


def test_exec_not_retried_after_server_error(
    fake: FakeDaytonaServer, sandbox: DaytonaSandbox
) -> None:
    fake.fail_next("POST", r"/process/execute$", 500)
    before = len(fake.requests_matching("POST", r"/process/execute$"))

    with pytest.raises(SandboxError):
        sandbox.exec("echo once")

    after = len(fake.requests_matching("POST", r"/process/execute$"))
    assert after - before == 1


def test_start_retries_dropped_connection(
    fake: FakeDaytonaServer, sandbox: DaytonaSandbox
) -> None:
    fake.set_state(sandbox.id, "stopped")
    fake.drop_next("POST", r"/start$")

    sandbox.start()

    assert fake.sandboxes[sandbox.id].data["state"] == "started"
    assert len(fake.requests_matching("POST", r"/start$")) == 2


def test_bad_api_key_gives_clear_message(fake: FakeDaytonaServer) -> None:
    provider = DaytonaProvider("wrong-key", fake.api_url, retry_deadline=2.0)

    with pytest.raises(SandboxError, match="rejected the API key") as caught:
        provider.create(NAME, LABELS)

    assert "DAYTONA_API_KEY" in str(caught.value)
    assert "wrong-key" not in str(caught.value)


def test_quota_error_gives_clear_message(
    fake: FakeDaytonaServer, provider: DaytonaProvider
) -> None:
    fake.fail_next(
        "POST", r"^/api/sandbox$", 403, message="Total CPU quota exceeded (10)"
    )

    with pytest.raises(SandboxError, match="organization quota is reached"):
        provider.create(NAME, LABELS)


# Credentials.


def test_canary_token_only_in_its_exec_request(
    fake: FakeDaytonaServer, provider: DaytonaProvider
) -> None:
    canary = "ghs_CANARY0123456789abcdefghijklmnopqrstu"
    sandbox = provider.create(NAME, LABELS, env={"TACK_AGENT_ROLE": "builder"})
    header = f"AUTHORIZATION: basic {canary}"
    git_env = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader"}

    sandbox.exec("true", env={**git_env, "GIT_CONFIG_VALUE_0": header})
    sandbox.exec("git config --global --list || true")

    carrying = [r for r in fake.requests if canary in r.text()]
    assert len(carrying) == 1
    assert carrying[0].path.endswith("/process/execute")
    stored = fake.sandboxes[sandbox.id].data
    assert canary not in repr(stored["labels"])
    assert canary not in repr(stored["env"])
    assert canary not in stored["name"]
