"""Tests for the auth commands against real files, git and loopback fakes."""

from __future__ import annotations

import fcntl
import logging
import re
import socket
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from flask import Response, request

from tack_action import auth_checks
from tack_action.auth import (
    API_KEY_PROVIDERS,
    MASK,
    add_credential,
    mask,
    redact,
    resolve_secret,
)
from tack_action.auth_checks import Failure, check_credential, parse_remote_url
from tack_action.commands.auth import auth
from tack_action.credentials import load_credentials
from tests.fakes.daytona_server import FakeDaytonaServer
from tests.fakes.github_server import FakeGitHub
from tests.fakes.model_providers import SHAPES, FakeModelProvider

# A secret that must never appear in any output, log or error message.
CANARY = "sk-canary-5d41402abc4b2a76b9719d911017c592"
CANARY_HEAD = CANARY[:-4]


@pytest.fixture
def credentials_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config" / "tack" / "credentials.yaml"
    monkeypatch.setenv("TACK_CREDENTIALS_PATH", str(path))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    # An empty working directory, because the daytona SDK reads .env files
    # there and the Daytona check reads the project config there.
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    return path


def invoke(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(auth, list(args), input=input)


def read_yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def file_mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def closed_port_url() -> str:
    # Bind and close a port, so that nothing listens on it.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def list_rows(output: str) -> dict[str, list[str]]:
    """Return the cells of each ``auth list`` row, by provider."""
    rows = [re.split(r"\s{2,}", line.strip()) for line in output.splitlines()]
    return {row[0]: row[1:] for row in rows}


def assert_no_canary(text: str) -> None:
    assert CANARY not in text
    assert CANARY_HEAD not in text


# Adding.

EXPECTED_ENTRIES = {
    "daytona": ("sandbox", "daytona", {"type": "api_key", "api_key": CANARY}),
    "github": (
        "git",
        None,
        {"type": "pat", "host": "github.com", "token": CANARY},
    ),
    **{
        name: ("providers", name, {"type": "api_key", "api_key": CANARY})
        for name in API_KEY_PROVIDERS
    },
}


@pytest.mark.parametrize("provider", sorted(EXPECTED_ENTRIES))
def test_add_writes_tack_schema(credentials_file: Path, provider: str) -> None:
    section, name, expected = EXPECTED_ENTRIES[provider]

    result = invoke("add", provider, input=f"{CANARY}\n")

    assert result.exit_code == 0, result.output
    data = read_yaml(credentials_file)
    entry = data[section] if name is None else data[section][name]
    assert entry == expected
    assert_no_canary(result.output)


def test_add_git_alias_writes_git_entry(credentials_file: Path) -> None:
    result = invoke("add", "git", "--host", "ghe.example.com", input="ghp-token-1\n")

    assert result.exit_code == 0, result.output
    assert read_yaml(credentials_file)["git"] == {
        "type": "pat",
        "host": "ghe.example.com",
        "token": "ghp-token-1",
    }


def test_add_keeps_other_entries_and_comments(credentials_file: Path) -> None:
    credentials_file.parent.mkdir(parents=True)
    credentials_file.write_text(
        "# Managed by hand; keep this comment.\n"
        "providers:\n"
        "  anthropic:  # the main model\n"
        "    type: api_key\n"
        "    api_key: '!op read op://vault/anthropic'  # from 1Password\n"
        "git:\n"
        "  type: pat\n"
        "  host: github.com\n"
        "  token: GITHUB_TOKEN\n"
    )
    credentials_file.chmod(0o600)

    result = invoke("add", "openai", input="sk-openai-value\n")

    assert result.exit_code == 0, result.output
    text = credentials_file.read_text()
    assert "# Managed by hand; keep this comment." in text
    assert "# the main model" in text
    assert "# from 1Password" in text
    data = read_yaml(credentials_file)
    assert data["providers"]["anthropic"]["api_key"] == "!op read op://vault/anthropic"
    assert data["providers"]["openai"]["api_key"] == "sk-openai-value"
    assert data["git"]["token"] == "GITHUB_TOKEN"


def test_add_replaces_oauth_entry_fields(credentials_file: Path) -> None:
    credentials_file.parent.mkdir(parents=True)
    credentials_file.write_text(
        "providers:\n"
        "  openai:\n"
        "    type: oauth\n"
        "    access_token: old-access\n"
        "    refresh_token: old-refresh\n"
    )

    result = invoke("add", "openai", input="sk-new-key-value\n")

    assert result.exit_code == 0, result.output
    assert read_yaml(credentials_file)["providers"]["openai"] == {
        "type": "api_key",
        "api_key": "sk-new-key-value",
    }


def test_add_block_style_in_flow_section(credentials_file: Path) -> None:
    credentials_file.parent.mkdir(parents=True)
    credentials_file.write_text("providers: {}\nsandbox: {}\n")

    result = invoke("add", "daytona", input="dtn-key-value\n")

    assert result.exit_code == 0, result.output
    assert "  daytona:\n    type: api_key\n" in credentials_file.read_text()


def test_add_env_stores_variable_name(
    credentials_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_DAYTONA_KEY", CANARY)

    result = invoke("add", "daytona", "--env", "MY_DAYTONA_KEY")

    assert result.exit_code == 0, result.output
    stored = read_yaml(credentials_file)["sandbox"]["daytona"]["api_key"]
    assert stored == "MY_DAYTONA_KEY"
    assert load_credentials().daytona_api_key() == CANARY


def test_add_env_warns_when_variable_unset(credentials_file: Path) -> None:
    result = invoke("add", "github", "--env", "UNSET_TOKEN_NAME")

    assert result.exit_code == 0, result.output
    assert "UNSET_TOKEN_NAME is not set" in result.stderr


def test_add_command_stores_bang_command(credentials_file: Path) -> None:
    result = invoke("add", "anthropic", "--command", f"printf {CANARY}")

    assert result.exit_code == 0, result.output
    stored = read_yaml(credentials_file)["providers"]["anthropic"]["api_key"]
    assert stored == f"!printf {CANARY}"
    assert load_credentials().provider_key("anthropic") == CANARY


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--env", "X", "--command", "true"], None, "either --env or --command"),
        (["--env", "lower-case"], None, "is not an environment variable name"),
        (["--command", "  "], None, "the command is empty"),
        ([], "", "0 non-empty lines"),
        ([], f"{CANARY}\nsecond\n", "2 non-empty lines"),
        ([], f"!{CANARY}\n", "Pass --command"),
        ([], "LOOKS_LIKE_A_NAME\n", "Pass --env NAME"),
    ],
)
def test_add_rejects_invalid_value(
    credentials_file: Path, args: list[str], stdin: str | None, message: str
) -> None:
    result = invoke("add", "openai", *args, input=stdin)

    assert result.exit_code != 0
    assert message in result.output
    assert_no_canary(result.output)
    assert not credentials_file.exists()


def test_add_rejects_unknown_provider(credentials_file: Path) -> None:
    result = invoke("add", "acme", input="value-123\n")

    assert result.exit_code == 2
    assert "acme" in result.output


def test_add_refuses_old_schema_file(credentials_file: Path) -> None:
    credentials_file.parent.mkdir(parents=True)
    original = f"daytona:\n  api_key: {CANARY}\n"
    credentials_file.write_text(original)
    credentials_file.chmod(0o600)

    result = invoke("add", "openai", input="sk-openai-value\n")

    assert result.exit_code == 1
    assert "old credentials schema" in result.output
    assert_no_canary(result.output)
    assert credentials_file.read_text() == original


# File mode and concurrent writers.


def test_writes_leave_mode_0600(credentials_file: Path) -> None:
    steps = [
        ("add", "daytona"),
        ("add", "github"),
        ("add", "anthropic"),
        ("remove", "github"),
        ("remove", "daytona"),
    ]

    for step in steps:
        result = invoke(*step, input="value-for-step-1\n")
        assert result.exit_code == 0, result.output
        assert file_mode(credentials_file) == 0o600
    assert file_mode(credentials_file.parent) == 0o700


def test_add_fixes_and_reports_wider_mode(credentials_file: Path) -> None:
    credentials_file.parent.mkdir(parents=True)
    credentials_file.write_text("git:\n  type: pat\n  token: GITHUB_TOKEN\n")
    credentials_file.chmod(0o644)

    result = invoke("add", "openai", input="sk-openai-value\n")

    assert result.exit_code == 0, result.output
    assert file_mode(credentials_file) == 0o600
    assert "had mode 0644" in result.stderr


def test_add_through_symlink_keeps_link(credentials_file: Path, tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "credentials.yaml"
    real.parent.mkdir()
    real.write_text("")
    credentials_file.parent.mkdir(parents=True)
    credentials_file.symlink_to(real)

    result = invoke("add", "groq", input="gsk-value-1234\n")

    assert result.exit_code == 0, result.output
    assert credentials_file.is_symlink()
    assert read_yaml(real)["providers"]["groq"]["api_key"] == "gsk-value-1234"


def test_concurrent_writers_lose_nothing(credentials_file: Path) -> None:
    providers = ["daytona", "github", *API_KEY_PROVIDERS]
    errors: list[BaseException] = []

    def write_repeatedly(provider: str) -> None:
        try:
            for round_number in range(5):
                add_credential(provider, f"{provider}-value-{round_number}")
        except BaseException as exc:  # noqa: BLE001 (reported by the assert)
            errors.append(exc)

    threads = [
        threading.Thread(target=write_repeatedly, args=(name,)) for name in providers
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    credentials = load_credentials()
    assert credentials.daytona_api_key() == "daytona-value-4"
    assert credentials.git_token() == "github-value-4"
    for name in API_KEY_PROVIDERS:
        assert credentials.provider_key(name) == f"{name}-value-4"
    leftovers = [p.name for p in credentials_file.parent.iterdir()]
    assert sorted(leftovers) == ["credentials.yaml", "credentials.yaml.lock"]


def test_second_writer_waits_for_lock(credentials_file: Path) -> None:
    credentials_file.parent.mkdir(parents=True)
    lock_path = credentials_file.with_name("credentials.yaml.lock")
    finished = threading.Event()

    def write() -> None:
        add_credential("mistral", "mistral-value-1")
        finished.set()

    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        writer = threading.Thread(target=write)
        writer.start()
        waited_while_locked = not finished.wait(0.3)
    writer.join(5)

    assert waited_while_locked
    assert finished.is_set()
    assert load_credentials().provider_key("mistral") == "mistral-value-1"


# Listing.


def test_list_masks_secrets_and_sources(
    credentials_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_GROQ_KEY", "gsk-" + CANARY)
    add_credential("anthropic", CANARY)
    add_credential("openai", "short-key")
    add_credential("groq", "MY_GROQ_KEY")
    add_credential("daytona", f"!printf {CANARY}")
    add_credential("github", "UNSET_TOKEN")

    result = invoke("list")

    assert result.exit_code == 0, result.output
    rows = list_rows(result.output)
    assert rows["anthropic"] == ["api_key", "literal", MASK + CANARY[-4:]]
    assert rows["openai"] == ["api_key", "literal", MASK]
    assert rows["groq"] == [
        "api_key",
        "environment variable MY_GROQ_KEY",
        MASK + CANARY[-4:],
    ]
    assert rows["daytona"] == ["api_key", "command", "(not run)"]
    assert rows["github"] == [
        "pat (github.com)",
        "literal, or an environment variable that is not set",
        MASK,
    ]
    assert "UNSET_TOKEN" not in result.output
    assert "short-key" not in result.output
    assert "printf" not in result.output
    assert_no_canary(result.output)


def test_list_does_not_run_commands(credentials_file: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    add_credential("daytona", f"!touch {marker} && printf key")

    result = invoke("list")

    assert result.exit_code == 0, result.output
    assert not marker.exists()


def test_list_shows_oauth_provider(credentials_file: Path) -> None:
    credentials_file.parent.mkdir(parents=True)
    credentials_file.write_text(
        f"providers:\n  openai-codex:\n    type: oauth\n    access_token: {CANARY}\n"
    )
    credentials_file.chmod(0o600)

    result = invoke("list")

    assert result.exit_code == 0, result.output
    assert list_rows(result.output)["openai-codex"][0] == "oauth"
    assert_no_canary(result.output)


def test_list_empty_file_says_so(credentials_file: Path) -> None:
    result = invoke("list")

    assert result.exit_code == 0
    assert "No credentials in" in result.output


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", MASK),
        ("abc", MASK),
        ("fifteen-chars-1", MASK),
        ("sixteen-chars-12", MASK + "s-12"),
        (CANARY, MASK + CANARY[-4:]),
    ],
)
def test_redact_shows_at_most_four(value: str, expected: str) -> None:
    assert redact(value) == expected


# Removing.


def test_remove_deletes_only_that_entry(credentials_file: Path) -> None:
    add_credential("anthropic", "sk-ant-value-1")
    add_credential("openai", "sk-openai-value")
    add_credential("daytona", "dtn-value-1")

    result = invoke("remove", "openai")

    assert result.exit_code == 0, result.output
    data = read_yaml(credentials_file)
    assert list(data["providers"]) == ["anthropic"]
    assert data["sandbox"]["daytona"]["api_key"] == "dtn-value-1"


def test_remove_drops_empty_section(credentials_file: Path) -> None:
    add_credential("daytona", "dtn-value-1")
    add_credential("git", "ghp-value-1")

    result = invoke("remove", "daytona")

    assert result.exit_code == 0, result.output
    assert read_yaml(credentials_file) == {
        "git": {"type": "pat", "host": "github.com", "token": "ghp-value-1"}
    }


def test_remove_last_entry_leaves_empty_file(credentials_file: Path) -> None:
    add_credential("git", "ghp-value-1")

    result = invoke("remove", "git")

    assert result.exit_code == 0, result.output
    assert credentials_file.read_text() == ""
    assert load_credentials().git is None


def test_remove_missing_entry_fails(credentials_file: Path) -> None:
    add_credential("anthropic", "sk-ant-value-1")

    result = invoke("remove", "openai")

    assert result.exit_code == 1
    assert "no entry for 'openai'" in result.output


def test_remove_oauth_provider_by_name(credentials_file: Path) -> None:
    credentials_file.parent.mkdir(parents=True)
    credentials_file.write_text(
        "providers:\n  openai-codex:\n    type: oauth\n    access_token: at-1\n"
    )

    result = invoke("remove", "openai-codex")

    assert result.exit_code == 0, result.output
    assert load_credentials().providers == {}


# Testing model providers.


@pytest.fixture(params=API_KEY_PROVIDERS)
def model_fake(
    request: pytest.FixtureRequest,
    credentials_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[FakeModelProvider]:
    fake = FakeModelProvider(request.param, api_key=CANARY)
    with fake:
        monkeypatch.setenv(fake.base_url_env, fake.base_url)
        yield fake


def test_model_round_trip_add_list_test_remove(
    model_fake: FakeModelProvider, credentials_file: Path
) -> None:
    provider = model_fake.provider

    added = invoke("add", provider, input=f"{CANARY}\n")
    listed = invoke("list")
    tested = invoke("test", provider)
    removed = invoke("remove", provider)

    assert added.exit_code == 0, added.output
    assert list_rows(listed.output)[provider][:2] == ["api_key", "literal"]
    assert tested.exit_code == 0, tested.output
    assert tested.output.startswith(f"{provider}: OK")
    assert len(model_fake.requests) == 1
    assert model_fake.requests[0].path == model_fake.shape.path
    assert removed.exit_code == 0, removed.output
    assert load_credentials().providers == {}
    for result in (added, listed, tested, removed):
        assert_no_canary(result.output)


def test_model_test_reports_wrong_key(model_fake: FakeModelProvider) -> None:
    add_credential(model_fake.provider, "sk-" + CANARY[::-1])

    result = invoke("test", model_fake.provider)

    assert result.exit_code == 1
    assert f"{model_fake.provider}: wrong key:" in result.stderr
    assert CANARY[::-1] not in result.output


def test_model_test_reports_forbidden(model_fake: FakeModelProvider) -> None:
    add_credential(model_fake.provider, CANARY)
    # The body echoes the key, as some APIs do; the output must not.
    model_fake.fail_next(403, {"error": {"message": f"Key {CANARY} has expired"}})

    result = invoke("test", model_fake.provider)

    assert result.exit_code == 1
    assert "expired or forbidden" in result.stderr
    assert "[redacted] has expired" in result.stderr
    assert_no_canary(result.output)


def test_model_test_reports_rate_limit(model_fake: FakeModelProvider) -> None:
    add_credential(model_fake.provider, CANARY)
    model_fake.fail_next(429, headers={"Retry-After": "7"})

    result = invoke("test", model_fake.provider)

    assert result.exit_code == 1
    assert "rate limited" in result.stderr
    assert "retry after 7 seconds" in result.stderr


def test_model_test_reports_no_network(
    credentials_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", closed_port_url() + "/v1")
    add_credential("openai", CANARY)

    result = invoke("test", "openai")

    assert result.exit_code == 1
    assert "openai: no network: cannot reach" in result.stderr
    assert_no_canary(result.output)


def test_model_test_reports_unexpected_status(model_fake: FakeModelProvider) -> None:
    add_credential(model_fake.provider, CANARY)
    model_fake.fail_next(500, {"error": {"message": "overloaded"}})

    result = invoke("test", model_fake.provider)

    assert result.exit_code == 1
    assert "unexpected response" in result.stderr
    assert "overloaded" in result.stderr


def test_test_without_entry_not_configured(credentials_file: Path) -> None:
    result = invoke("test", "anthropic")

    assert result.exit_code == 1
    assert "anthropic: not configured" in result.stderr
    assert "auth add anthropic" in result.stderr


def test_test_failing_command_hides_output(
    credentials_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    add_credential("openai", f"!echo {CANARY}; exit 3")

    result = invoke("test", "openai")

    assert result.exit_code == 1
    assert "failed with exit status 3" in result.output
    assert_no_canary(result.output)
    assert_no_canary(caplog.text)


def test_outputs_and_logs_never_hold_canary(
    model_fake: FakeModelProvider,
    credentials_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    credentials_file.parent.mkdir(parents=True)
    credentials_file.write_text("")
    credentials_file.chmod(0o644)

    results = [
        invoke("add", model_fake.provider, input=f"{CANARY}\n"),
        invoke("list"),
        invoke("test", model_fake.provider),
    ]
    model_fake.fail_next(401, {"error": {"message": f"bad key {CANARY}"}})
    results.append(invoke("test", model_fake.provider))
    results.append(invoke("add", model_fake.provider, input=f"{CANARY}\n{CANARY}"))
    results.append(invoke("remove", model_fake.provider))

    assert [result.exit_code for result in results] == [0, 0, 0, 1, 2, 0]
    for result in results:
        assert_no_canary(result.output)
    assert_no_canary(caplog.text)


# Testing Daytona.


@pytest.fixture
def daytona_fake(
    tmp_path: Path, credentials_file: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeDaytonaServer]:
    fake = FakeDaytonaServer(tmp_path / "sandboxes", api_key=CANARY)
    with fake:
        monkeypatch.setenv("DAYTONA_API_URL", fake.api_url)
        yield fake


def test_daytona_round_trip_add_list_test_remove(
    daytona_fake: FakeDaytonaServer,
) -> None:
    added = invoke("add", "daytona", input=f"{CANARY}\n")
    listed = invoke("list")
    tested = invoke("test", "daytona")
    removed = invoke("remove", "daytona")

    assert added.exit_code == 0, added.output
    assert list_rows(listed.output)["daytona"][:2] == ["api_key", "literal"]
    assert tested.exit_code == 0, tested.output
    assert "daytona: OK, the key listed no sandboxes" in tested.output
    lists = daytona_fake.requests_matching("GET", r"^/api/sandbox$")
    assert len(lists) == 1
    assert lists[0].query["limit"] == ["1"]
    assert removed.exit_code == 0, removed.output
    assert load_credentials().sandbox.daytona is None
    for result in (added, listed, tested, removed):
        assert_no_canary(result.output)


def test_daytona_test_reports_wrong_key(daytona_fake: FakeDaytonaServer) -> None:
    add_credential("daytona", "dtn-" + CANARY[::-1])

    result = invoke("test", "daytona")

    assert result.exit_code == 1
    assert "daytona: wrong key:" in result.stderr
    assert CANARY[::-1] not in result.output


def test_daytona_test_reports_forbidden(daytona_fake: FakeDaytonaServer) -> None:
    add_credential("daytona", CANARY)
    daytona_fake.fail_next("GET", r"^/api/sandbox$", 403, message="Key expired")

    result = invoke("test", "daytona")

    assert result.exit_code == 1
    assert "daytona: expired or forbidden:" in result.stderr
    assert "Key expired" in result.stderr


def test_daytona_test_reports_rate_limit(daytona_fake: FakeDaytonaServer) -> None:
    add_credential("daytona", CANARY)
    daytona_fake.fail_next("GET", r"^/api/sandbox$", 429)

    result = invoke("test", "daytona")

    assert result.exit_code == 1
    assert "daytona: rate limited:" in result.stderr
    assert "429 Too Many Requests. The key was not checked." in result.stderr


def test_daytona_test_reports_retry_after(daytona_fake: FakeDaytonaServer) -> None:
    add_credential("daytona", CANARY)
    # The SDK's urllib3 retries a 429 with Retry-After three times itself.
    daytona_fake.fail_next(
        "GET", r"^/api/sandbox$", 429, count=4, headers={"Retry-After": "0"}
    )

    result = invoke("test", "daytona")

    assert result.exit_code == 1
    assert "429 Too Many Requests, retry after 0 seconds" in result.stderr
    assert len(daytona_fake.requests_matching("GET", r"^/api/sandbox$")) == 4


def test_daytona_test_reports_no_network(
    credentials_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAYTONA_API_URL", closed_port_url() + "/api")
    add_credential("daytona", CANARY)

    result = invoke("test", "daytona")

    assert result.exit_code == 1
    assert "daytona: no network: cannot reach" in result.stderr
    assert_no_canary(result.output)


def test_daytona_test_uses_config_api_url(
    daytona_fake: FakeDaytonaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAYTONA_API_URL", closed_port_url() + "/api")
    config = Path.cwd() / ".tack" / "config.yaml"
    config.parent.mkdir()
    config.write_text(f"sandbox:\n  daytona:\n    api_url: {daytona_fake.api_url}\n")
    add_credential("daytona", CANARY)

    result = invoke("test", "daytona")

    assert result.exit_code == 0, result.output
    assert len(daytona_fake.requests_matching("GET", r"^/api/sandbox$")) == 1


# Testing GitHub.


class ScopedFakeGitHub(FakeGitHub):
    """The shared fake GitHub plus token scopes, push permission and fault headers."""

    def __init__(self, root: Path, **options: Any) -> None:
        # Classic tokens carry X-OAuth-Scopes; None imitates a fine-grained one.
        self.scopes: str | None = "repo, workflow"
        self.push = True
        self.error_headers: dict[str, str] = {}
        super().__init__(root, **options)

    def _repo_json(self) -> dict[str, Any]:
        data = super()._repo_json()
        data["permissions"]["push"] = self.push
        return data

    def _after(self, response: Response) -> Response:
        response = super()._after(response)
        if request.path == "/user" and response.status_code == 200 and self.scopes:
            response.headers["X-OAuth-Scopes"] = self.scopes
        if response.status_code >= 400:
            response.headers.update(self.error_headers)
        return response


@pytest.fixture
def github_fake(
    tmp_path: Path, credentials_file: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ScopedFakeGitHub]:
    fake = ScopedFakeGitHub(
        tmp_path / "github",
        owner="octo",
        repo="widgets",
        token=CANARY,
        identity="octocat",
        user_endpoint=True,
    )
    with fake:
        monkeypatch.setenv("GITHUB_API_URL", fake.url)
        yield fake


def github_paths(fake: FakeGitHub) -> list[str]:
    return [record.path for record in fake.requests]


def init_repo(origin: str | None) -> None:
    subprocess.run(["git", "init", "-q"], check=True)
    if origin is not None:
        subprocess.run(["git", "remote", "add", "origin", origin], check=True)


def test_github_round_trip_add_list_test_remove(github_fake: ScopedFakeGitHub) -> None:
    init_repo("https://github.com/octo/widgets.git")

    added = invoke("add", "github", input=f"{CANARY}\n")
    listed = invoke("list")
    tested = invoke("test", "github")
    removed = invoke("remove", "github")

    assert added.exit_code == 0, added.output
    assert list_rows(listed.output)["github"][:2] == ["pat (github.com)", "literal"]
    assert tested.exit_code == 0, tested.output
    assert "github: OK, the token belongs to octocat." in tested.output
    assert "classic token with scopes repo, workflow." in tested.output
    assert "It can push to octo/widgets." in tested.output
    assert github_paths(github_fake) == ["/user", "/repos/octo/widgets"]
    assert removed.exit_code == 0, removed.output
    assert load_credentials().git is None
    for result in (added, listed, tested, removed):
        assert_no_canary(result.output)


def test_github_test_accepts_installation_token(
    tmp_path: Path, credentials_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The Actions GITHUB_TOKEN gets 403 from GET /user.
    fake = ScopedFakeGitHub(
        tmp_path / "github", owner="octo", repo="widgets", token=CANARY
    )
    init_repo("https://github.com/octo/widgets.git")
    add_credential("github", CANARY)

    with fake:
        monkeypatch.setenv("GITHUB_API_URL", fake.url)
        result = invoke("test", "github")

    assert result.exit_code == 0, result.output
    assert "GitHub App installation token" in result.output
    assert "It can push to octo/widgets." in result.output


def test_github_test_reports_no_push(github_fake: ScopedFakeGitHub) -> None:
    init_repo("git@github.com:octo/widgets.git")
    github_fake.push = False
    add_credential("github", CANARY)

    result = invoke("test", "github")

    assert result.exit_code == 1
    assert "github: no push permission:" in result.stderr
    assert "cannot push to octo/widgets" in result.stderr


def test_github_test_reports_hidden_repository(github_fake: ScopedFakeGitHub) -> None:
    init_repo("https://github.com/octo/secret-repo")
    github_fake.fail("GET", "/repos/octo/secret-repo", status=404)
    add_credential("github", CANARY)

    result = invoke("test", "github")

    assert result.exit_code == 1
    assert "404 Not Found" in result.stderr
    assert "cannot see octo/secret-repo" in result.stderr


def test_github_test_fine_grained_token(github_fake: ScopedFakeGitHub) -> None:
    init_repo("https://github.com/octo/widgets.git")
    github_fake.scopes = None
    add_credential("github", CANARY)

    result = invoke("test", "github")

    assert result.exit_code == 0, result.output
    assert "fine-grained or app token" in result.output


def test_github_test_warns_without_repo_scope(github_fake: ScopedFakeGitHub) -> None:
    init_repo(None)
    github_fake.scopes = "read:org"
    add_credential("github", CANARY)

    result = invoke("test", "github")

    assert result.exit_code == 0, result.output
    assert "without repo" in result.output
    assert "with an origin remote" in result.output
    assert github_paths(github_fake) == ["/user"]


def test_github_test_skips_other_host_origin(github_fake: ScopedFakeGitHub) -> None:
    init_repo("https://gitlab.com/octo/widgets.git")
    add_credential("github", CANARY)

    result = invoke("test", "github")

    assert result.exit_code == 0, result.output
    assert "origin is on gitlab.com" in result.output


def test_github_test_reports_wrong_token(github_fake: ScopedFakeGitHub) -> None:
    add_credential("github", "ghp-" + CANARY[::-1])

    result = invoke("test", "github")

    assert result.exit_code == 1
    assert "github: wrong key:" in result.stderr
    assert "401 Unauthorized" in result.stderr


def test_github_test_reports_rate_limit(github_fake: ScopedFakeGitHub) -> None:
    add_credential("github", CANARY)
    github_fake.fail("GET", "/user", status=403)
    github_fake.error_headers = {"X-RateLimit-Remaining": "0", "Retry-After": "30"}

    result = invoke("test", "github")

    assert result.exit_code == 1
    assert "github: rate limited:" in result.stderr
    assert "retry after 30 seconds" in result.stderr


def test_github_test_reports_forbidden(github_fake: ScopedFakeGitHub) -> None:
    add_credential("github", CANARY)
    github_fake.fail("GET", "/user", status=403)
    github_fake.error_headers = {"X-RateLimit-Remaining": "4999"}

    result = invoke("test", "github")

    assert result.exit_code == 1
    assert "github: expired or forbidden:" in result.stderr


def test_github_test_reports_no_network(
    credentials_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_API_URL", closed_port_url())
    add_credential("github", CANARY)

    result = check_credential("github")

    assert result.failure is Failure.NO_NETWORK
    assert_no_canary(result.message)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://github.com/octo/widgets.git", ("github.com", "octo", "widgets")),
        ("https://github.com/octo/widgets/", ("github.com", "octo", "widgets")),
        (
            "https://x-access-token:abc@GitHub.com/octo/widgets",
            ("github.com", "octo", "widgets"),
        ),
        ("git@github.com:octo/widgets.git", ("github.com", "octo", "widgets")),
        ("ssh://git@github.com:22/octo/widgets.git", ("github.com", "octo", "widgets")),
        ("/srv/git/widgets.git", None),
        ("https://github.com/octo", None),
    ],
)
def test_parse_remote_url_forms(
    url: str, expected: tuple[str, str, str] | None
) -> None:
    assert parse_remote_url(url) == expected


# Resolution for the Action.


def test_resolve_secret_input_wins_over_file(credentials_file: Path) -> None:
    add_credential("daytona", "from-file-value")

    assert resolve_secret(" from-input-value\n", "daytona") == "from-input-value"


def test_resolve_secret_falls_back_to_file(credentials_file: Path) -> None:
    add_credential("github", "!printf from-command-value")

    assert resolve_secret("", "github") == "from-command-value"
    assert resolve_secret(None, "git") == "from-command-value"


def test_resolve_secret_input_env_and_command(
    credentials_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INPUT_KEY_VARIABLE", "from-env-value")

    assert resolve_secret("INPUT_KEY_VARIABLE", "openai") == "from-env-value"
    assert resolve_secret("!printf from-command", "openai") == "from-command"


def test_resolve_secret_missing_returns_none(credentials_file: Path) -> None:
    assert resolve_secret(None, "anthropic") is None


def test_resolve_secret_masks_in_actions(
    credentials_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    add_credential("daytona", "dtn-secret-value")

    resolve_secret(None, "daytona")

    assert capsys.readouterr().out == "::add-mask::dtn-secret-value\n"


def test_mask_silent_outside_actions(capsys: pytest.CaptureFixture[str]) -> None:
    mask("dtn-secret-value")

    assert capsys.readouterr().out == ""


def test_mask_escapes_and_splits_lines(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")

    mask("first%line\nsecond\r\n\n")

    assert capsys.readouterr().out == "::add-mask::first%25line\n::add-mask::second\n"


def test_model_endpoints_match_fakes() -> None:
    for name in API_KEY_PROVIDERS:
        endpoint = auth_checks.MODEL_ENDPOINTS[name]
        assert endpoint.base_url_env == SHAPES[name].base_url_env, name
