"""Tests for the local sandbox provider, with real processes and directories."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tack_action.errors import SandboxError, SandboxNotFound
from tack_action.sandbox.base import Sandbox, SandboxProvider
from tack_action.sandbox.local import LocalProvider, LocalSandbox


@pytest.fixture
def provider(tmp_path: Path) -> LocalProvider:
    return LocalProvider(tmp_path / "sandboxes")


@pytest.fixture
def sandbox(provider: LocalProvider) -> LocalSandbox:
    return provider.create("tack-0123abcd-api", {"tack.objective": "0123abcd"})


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def test_provider_implements_protocols(provider: LocalProvider, sandbox) -> None:
    assert isinstance(provider, SandboxProvider)
    assert isinstance(sandbox, Sandbox)


def test_create_writes_layout_and_record(provider: LocalProvider) -> None:
    sandbox = provider.create("tack-a-b", {"tack.role": "builder"}, env={"X": "1"})

    directory = provider.root / "tack-a-b"
    record = json.loads((directory / "sandbox.json").read_text())
    assert sandbox.id == "tack-a-b"
    assert sandbox.workdir == str(directory / "repo")
    assert sandbox.tmpdir == str(directory / "tmp")
    assert list((directory / "repo").iterdir()) == []
    assert record["labels"] == {"tack.role": "builder"}
    assert record["env"] == {"X": "1"}
    assert record["state"] == "started"
    assert "created_at" in record


def test_create_existing_name_raises(provider: LocalProvider, sandbox) -> None:
    with pytest.raises(SandboxError, match="already exists"):
        provider.create(sandbox.name, {})


def test_create_rejects_path_like_name(provider: LocalProvider) -> None:
    with pytest.raises(SandboxError, match="Invalid sandbox name"):
        provider.create("../escape", {})


def test_find_matches_label_subset(provider: LocalProvider) -> None:
    provider.create("s1", {"tack.objective": "a", "tack.role": "builder"})
    provider.create("s2", {"tack.objective": "a", "tack.role": "merger"})
    provider.create("s3", {"tack.objective": "b", "tack.role": "builder"})

    found = provider.find({"tack.objective": "a"})
    builders = provider.find({"tack.role": "builder", "tack.objective": "a"})

    assert [s.id for s in found] == ["s1", "s2"]
    assert [s.id for s in builders] == ["s1"]


def test_find_in_missing_root_is_empty(tmp_path: Path) -> None:
    assert LocalProvider(tmp_path / "none").find({}) == []


def test_get_returns_sandbox_from_disk(provider: LocalProvider, sandbox) -> None:
    other = LocalProvider(provider.root).get(sandbox.id)

    assert other.labels == sandbox.labels
    assert other.workdir == sandbox.workdir


def test_get_unknown_id_raises_not_found(provider: LocalProvider) -> None:
    with pytest.raises(SandboxNotFound):
        provider.get("nope")


def test_delete_removes_directory(provider: LocalProvider, sandbox) -> None:
    sandbox.delete()

    assert not (provider.root / sandbox.name).exists()
    with pytest.raises(SandboxNotFound):
        provider.get(sandbox.id)


def test_exec_defaults_to_workdir(sandbox: LocalSandbox) -> None:
    result = sandbox.exec("pwd")

    assert result.exit_code == 0
    assert result.output.strip() == os.path.realpath(sandbox.workdir)


def test_exec_relative_cwd_under_workdir(sandbox: LocalSandbox) -> None:
    (Path(sandbox.workdir) / "sub").mkdir()

    result = sandbox.exec("pwd", cwd="sub")

    assert result.output.strip() == os.path.realpath(Path(sandbox.workdir) / "sub")


def test_exec_missing_cwd_raises(sandbox: LocalSandbox) -> None:
    with pytest.raises(SandboxError, match="does not exist"):
        sandbox.exec("true", cwd="missing")


def test_exec_combines_output_and_exit_code(sandbox: LocalSandbox) -> None:
    result = sandbox.exec("echo out; echo err >&2; exit 7")

    assert result.exit_code == 7
    assert result.output == "out\nerr\n"


def test_exec_env_excludes_orchestrator_secrets(
    provider: LocalProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "canary-ghp-123")
    monkeypatch.setenv("DAYTONA_API_KEY", "canary-dtn-456")
    sandbox = provider.create("envtest", {}, env={"FROM_CREATE": "c", "BOTH": "c"})

    output = sandbox.exec("env", env={"FROM_CALL": "x", "BOTH": "x"}).output

    variables = dict(line.split("=", 1) for line in output.splitlines() if "=" in line)
    assert "canary" not in output
    assert "GITHUB_TOKEN" not in variables
    assert variables["HOME"] == str(Path(sandbox.tmpdir) / "home")
    assert variables["TMPDIR"] == sandbox.tmpdir
    assert variables["GIT_CONFIG_NOSYSTEM"] == "1"
    assert variables["GIT_TERMINAL_PROMPT"] == "0"
    assert variables["FROM_CREATE"] == "c"
    assert variables["FROM_CALL"] == "x"
    assert variables["BOTH"] == "x"


def test_exec_timeout_kills_process_group(sandbox: LocalSandbox) -> None:
    marker = Path(sandbox.tmpdir) / "survived"
    command = f"(sleep 0.5; touch {marker}) & sleep 5"
    started = time.monotonic()

    with pytest.raises(SandboxError, match="timed out after 0.3 seconds"):
        sandbox.exec(command, timeout=0.3)

    assert time.monotonic() - started < 3
    time.sleep(0.7)
    assert not marker.exists()


def test_exec_on_stopped_sandbox_raises(sandbox: LocalSandbox) -> None:
    sandbox.stop()

    with pytest.raises(SandboxError, match="start it first"):
        sandbox.exec("true")
    assert sandbox.state() == "stopped"


def test_start_after_stop_accepts_commands(sandbox: LocalSandbox) -> None:
    sandbox.stop()

    sandbox.start()

    assert sandbox.state() == "started"
    assert sandbox.exec("true").exit_code == 0


def test_start_command_records_exit_file(sandbox: LocalSandbox) -> None:
    handle = sandbox.start_command("echo hello; exit 4")

    wait_for(lambda: handle.poll() is not None)

    exit_file = Path(sandbox.tmpdir) / "commands" / f"{handle.id}.exit"
    assert handle.poll() == 4
    assert exit_file.read_text().strip() == "4"
    assert handle.logs() == "hello\n"


def test_start_command_uses_cwd_and_env(sandbox: LocalSandbox) -> None:
    (Path(sandbox.workdir) / "sub").mkdir()

    handle = sandbox.start_command(
        'echo "$GREETING"; pwd', cwd="sub", env={"GREETING": "hi"}
    )
    wait_for(lambda: handle.poll() is not None)

    lines = handle.logs().splitlines()
    assert lines[0] == "hi"
    assert lines[1] == os.path.realpath(Path(sandbox.workdir) / "sub")


def test_get_command_reattaches_from_other_provider(
    provider: LocalProvider, sandbox: LocalSandbox
) -> None:
    release = Path(sandbox.tmpdir) / "release"
    handle = sandbox.start_command(
        f"echo started; while [ ! -e {release} ]; do sleep 0.05; done; exit 3"
    )
    command_id = handle.id
    del handle

    reattached = LocalProvider(provider.root).get(sandbox.id).get_command(command_id)
    running = reattached.poll()
    release.touch()
    wait_for(lambda: reattached.poll() is not None)

    assert running is None
    assert reattached.poll() == 3
    assert reattached.logs() == "started\n"


def test_get_command_unknown_id_raises(sandbox: LocalSandbox) -> None:
    with pytest.raises(SandboxError, match="No command"):
        sandbox.get_command("cmd-0000000000000000")


def test_kill_stops_whole_process_tree(sandbox: LocalSandbox) -> None:
    marker = Path(sandbox.tmpdir) / "survived"
    handle = sandbox.start_command(
        f"bash -c 'sleep 0.3; touch {marker}' & (sleep 0.3; touch {marker}) & sleep 5"
    )

    handle.kill()
    time.sleep(0.5)

    assert handle.poll() == -1
    assert not marker.exists()


def test_kill_ignores_trap_after_grace(
    sandbox: LocalSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tack_action.sandbox.local.KILL_GRACE_S", 0.2)
    handle = sandbox.start_command("trap '' TERM; echo ready; sleep 5")
    wait_for(lambda: "ready" in handle.logs())

    handle.kill()

    assert handle.poll() == -1


def test_stop_kills_running_commands(sandbox: LocalSandbox) -> None:
    handle = sandbox.start_command("sleep 5")

    sandbox.stop()

    assert handle.poll() == -1


def test_upload_then_download_round_trip(sandbox: LocalSandbox) -> None:
    prompt = f"{sandbox.tmpdir}/prompts/builder.md"

    sandbox.upload(b"do the work\n", prompt)

    assert sandbox.download(prompt) == b"do the work\n"
    assert sandbox.download("../tmp/prompts/builder.md") == b"do the work\n"


def test_upload_relative_path_goes_to_workdir(sandbox: LocalSandbox) -> None:
    sandbox.upload(b"x", "src/a.txt")

    assert (Path(sandbox.workdir) / "src" / "a.txt").read_bytes() == b"x"


@pytest.mark.parametrize("path", ["/etc/passwd", "../../outside", "../../../x"])
def test_download_outside_sandbox_raises(sandbox: LocalSandbox, path: str) -> None:
    with pytest.raises(SandboxError, match="outside sandbox"):
        sandbox.download(path)


def test_upload_outside_sandbox_raises(sandbox: LocalSandbox, tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="outside sandbox"):
        sandbox.upload(b"x", str(tmp_path / "escaped.txt"))

    assert not (tmp_path / "escaped.txt").exists()


def test_download_through_symlink_raises(sandbox: LocalSandbox, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("token")
    (Path(sandbox.workdir) / "link").symlink_to(secret)

    with pytest.raises(SandboxError, match="outside sandbox"):
        sandbox.download("link")


def test_download_missing_file_raises(sandbox: LocalSandbox) -> None:
    with pytest.raises(SandboxError, match="Cannot read"):
        sandbox.download("missing.txt")
