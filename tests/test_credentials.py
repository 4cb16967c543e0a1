"""Tests for the credentials file schema and credential value resolution."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from tack_action.config import TackConfig
from tack_action.credentials import (
    Credentials,
    OAuthCredential,
    credentials_path,
    describe_source,
    find_daytona_api_key,
    load_credentials,
    resolve_value,
)
from tack_action.errors import ConfigError

CANARY = "canary-7f3a91c2e5"

FULL_FILE = """\
providers:
  anthropic:
    type: api_key
    api_key: sk-ant-literal
  openai-codex:
    type: oauth
    access_token: OAUTH_ACCESS
    refresh_token: refresh-literal
    expires_at: 1767225600
git:
  type: pat
  token: GH_TOKEN_FOR_TEST
sandbox:
  daytona:
    type: api_key
    api_key: "!printf daytona-from-command"
"""


def write_credentials(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "credentials.yaml"
    path.write_text(text)
    path.chmod(mode)
    return path


def load_error(tmp_path: Path, text: str) -> ConfigError:
    path = write_credentials(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_credentials(path)
    return caught.value


def test_credentials_path_default_and_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = credentials_path()
    monkeypatch.setenv("TACK_CREDENTIALS_PATH", str(tmp_path / "c.yaml"))
    overridden = credentials_path()

    assert default == Path.home() / ".config" / "tack" / "credentials.yaml"
    assert overridden == tmp_path / "c.yaml"


def test_load_credentials_missing_file_empty(tmp_path: Path) -> None:
    credentials = load_credentials(tmp_path / "absent.yaml")

    assert credentials.providers == {}
    assert credentials.path == tmp_path / "absent.yaml"
    assert credentials.git_token() is None
    assert credentials.daytona_api_key() is None
    assert credentials.provider_key("anthropic") is None


def test_load_credentials_reads_env_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_credentials(tmp_path, "git: {token: from-env-path}\n")
    monkeypatch.setenv("TACK_CREDENTIALS_PATH", str(path))

    credentials = load_credentials()

    assert credentials.git_token() == "from-env-path"
    assert credentials.path == path


def test_load_credentials_full_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OAUTH_ACCESS", "access-from-env")
    monkeypatch.setenv("GH_TOKEN_FOR_TEST", "ghp-from-env")
    path = write_credentials(tmp_path, FULL_FILE)

    credentials = load_credentials(path)

    codex = credentials.providers["openai-codex"]
    assert isinstance(codex, OAuthCredential)
    assert codex.expires_at == 1767225600
    assert credentials.git is not None
    assert credentials.git.host == "github.com"
    assert credentials.provider_key("anthropic") == "sk-ant-literal"
    assert credentials.provider_key("openai-codex") == "access-from-env"
    assert credentials.git_token() == "ghp-from-env"
    assert credentials.daytona_api_key() == "daytona-from-command"


def test_credentials_raw_values_by_key(tmp_path: Path) -> None:
    credentials = load_credentials(write_credentials(tmp_path, FULL_FILE))

    raw = credentials.raw_values()

    assert raw == {
        "providers.anthropic.api_key": "sk-ant-literal",
        "providers.openai-codex.access_token": "OAUTH_ACCESS",
        "providers.openai-codex.refresh_token": "refresh-literal",
        "git.token": "GH_TOKEN_FOR_TEST",
        "sandbox.daytona.api_key": "!printf daytona-from-command",
    }


def test_resolve_value_literal() -> None:
    assert resolve_value("plain-secret-value") == "plain-secret-value"


def test_resolve_value_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghs-from-environment")

    assert resolve_value("GITHUB_TOKEN") == "ghs-from-environment"


def test_resolve_value_unset_env_name_literal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        value = resolve_value("NOT_SET_ANYWHERE", key="git.token")

    assert value == "NOT_SET_ANYWHERE"
    assert "git.token looks like an environment variable name" in caplog.text
    assert "NOT_SET_ANYWHERE" not in caplog.text


def test_resolve_value_lowercase_not_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("github_token", "from-lower-case-variable")

    assert resolve_value("github_token") == "github_token"


def test_resolve_value_runs_command() -> None:
    assert resolve_value("!echo from-shell") == "from-shell"


def test_resolve_value_strips_one_newline() -> None:
    assert resolve_value("!printf 'two\\n\\n'") == "two\n"


def test_resolve_value_command_sees_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TACK_VAULT_ITEM", "vault-value")

    assert resolve_value('!printf "%s" "$TACK_VAULT_ITEM"') == "vault-value"


def test_resolve_value_failing_command_hides_output(tmp_path: Path) -> None:
    command = f"!printf {CANARY}; printf {CANARY}-err >&2; exit 7"
    source = tmp_path / "credentials.yaml"

    with pytest.raises(ConfigError) as caught:
        resolve_value(command, key="providers.anthropic.api_key", path=source)

    message = str(caught.value)
    assert caught.value.key == "providers.anthropic.api_key"
    assert caught.value.path == str(source)
    assert "exit status 7" in message
    assert CANARY not in message


def test_resolve_value_command_timeout() -> None:
    started = time.monotonic()

    with pytest.raises(ConfigError) as caught:
        resolve_value("!sleep 20; echo late", key="git.token", timeout=0.3)

    assert "timed out after 0.3 seconds" in caught.value.problem
    assert time.monotonic() - started < 5


def test_resolve_value_command_no_output() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_value("!true", key="git.token")

    assert caught.value.problem.startswith("the command for git.token printed nothing.")


def test_resolve_value_bang_without_command() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_value("!   ", key="git.token")

    assert "not followed by a command" in caught.value.problem


def test_describe_source_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAYTONA_API_KEY", "dtn-value")

    assert describe_source("!op read op://vault/item") == "command"
    assert describe_source("DAYTONA_API_KEY") == "environment variable DAYTONA_API_KEY"
    assert describe_source("UNSET_NAME") == "literal"
    assert describe_source("dtn_literal") == "literal"


def test_find_daytona_key_prefers_credentials(tmp_path: Path) -> None:
    path = write_credentials(tmp_path, "sandbox:\n  daytona: {api_key: stored}\n")
    config = TackConfig.model_validate({"sandbox": {"daytona": {"api_key": "cfg"}}})

    key = find_daytona_api_key(load_credentials(path), config)

    assert key == "stored"


def test_find_daytona_key_falls_back_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAYTONA_API_KEY", "dtn-from-env")
    config = TackConfig.model_validate(
        {"sandbox": {"daytona": {"api_key": "DAYTONA_API_KEY"}}}
    )

    with_fallback = find_daytona_api_key(Credentials(), config)
    without = find_daytona_api_key(Credentials(), TackConfig())

    assert with_fallback == "dtn-from-env"
    assert without is None


def test_credentials_error_unknown_key(tmp_path: Path) -> None:
    error = load_error(tmp_path, "git:\n  token: x\n  user: me\n")

    assert error.path == str(tmp_path / "credentials.yaml")
    assert error.key == "git.user"
    assert "Allowed keys here: type, host, token." in error.problem


def test_credentials_error_old_schema_hint(tmp_path: Path) -> None:
    error = load_error(tmp_path, "github:\n  pat: x\n")

    assert error.key == "github"
    assert "old credentials schema" in error.problem
    assert "use git with type pat" in error.problem


def test_credentials_error_missing_type(tmp_path: Path) -> None:
    error = load_error(tmp_path, "providers:\n  anthropic: {api_key: x}\n")

    assert error.key == "providers.anthropic.type"
    assert "missing" in error.problem
    assert "'api_key', 'oauth'" in error.problem


def test_credentials_error_missing_required(tmp_path: Path) -> None:
    error = load_error(tmp_path, "sandbox:\n  daytona: {type: api_key}\n")

    assert error.key == "sandbox.daytona.api_key"
    assert error.problem == "this required key is missing."


def test_credentials_error_expires_at_type(tmp_path: Path) -> None:
    text = "providers:\n  c: {type: oauth, access_token: a, expires_at: soon}\n"

    error = load_error(tmp_path, text)

    assert error.key == "providers.c.expires_at"
    assert error.problem == "expected an integer, got a string."


@pytest.mark.parametrize(
    "text",
    [
        f"providers:\n  anthropic: {CANARY}\n",
        f"providers:\n  anthropic: {{type: {CANARY}, api_key: x}}\n",
        f"providers:\n  anthropic: {{type: api_key, api_key: [{CANARY}]}}\n",
        f"providers:\n  x: {{type: oauth, access_token: a, expires_at: {CANARY}}}\n",
        "git:\n  token: 7319560021\n",
        f"git:\n  token: {CANARY}\n  hots: {CANARY}\n",
        f"git: {{token: {CANARY}\n",
        f"git:\n  token: {CANARY}\n  token: {CANARY}\n",
        f"{CANARY}\n",
        f"- {CANARY}\n",
    ],
)
def test_credentials_error_never_shows_secret(tmp_path: Path, text: str) -> None:
    error = load_error(tmp_path, text)

    assert CANARY not in str(error)
    assert "7319560021" not in str(error)


def test_credentials_command_error_never_shows_secret(tmp_path: Path) -> None:
    text = f'git:\n  token: "!echo {CANARY}; exit 3"\n'
    credentials = load_credentials(write_credentials(tmp_path, text))

    with pytest.raises(ConfigError) as caught:
        credentials.git_token()

    assert caught.value.key == "git.token"
    assert "exit status 3" in caught.value.problem
    assert CANARY not in str(caught.value)


def test_load_credentials_wide_mode_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_credentials(tmp_path, f"git: {{token: {CANARY}}}\n", mode=0o644)

    with caplog.at_level(logging.WARNING):
        load_credentials(path)

    assert "mode 0644" in caplog.text
    assert f"chmod 600 {path}" in caplog.text
    assert CANARY not in caplog.text


def test_load_credentials_private_mode_silent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_credentials(tmp_path, "git: {token: x}\n", mode=0o600)

    with caplog.at_level(logging.WARNING):
        load_credentials(path)

    assert caplog.text == ""
