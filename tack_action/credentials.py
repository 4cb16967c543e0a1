"""Models for Tack's ``credentials.yaml`` and the resolution of its values.

The file lives outside the repository (``~/.config/tack/credentials.yaml``
or ``$TACK_CREDENTIALS_PATH``) with mode 0600. Every secret in it is a
literal, the name of an environment variable, or ``!command`` whose output is
the value, so a CI job can write ``token: GITHUB_TOKEN``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import stat
import subprocess
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from .config import TackConfig, read_yaml_mapping, validate_mapping
from .errors import ConfigError

logger = logging.getLogger(__name__)

# Upper bound for one `!command` lookup, such as `!op read op://vault/item`.
COMMAND_TIMEOUT_SECONDS = 30.0

ENV_VAR_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")

# Top-level keys of the old credentials schema and where each one moved.
_OLD_SCHEMA_HINTS = {
    "anthropic": "This is the old credentials schema: "
    "use providers.anthropic with type api_key or oauth.",
    "github": "This is the old credentials schema: use git with type pat and token.",
    "daytona": "This is the old credentials schema: "
    "use sandbox.daytona with type api_key.",
}


class _Strict(BaseModel):
    # The same rules as the config models: unknown keys and YAML values of
    # the wrong type are errors.
    model_config = ConfigDict(extra="forbid", strict=True)


class ApiKeyCredential(_Strict):
    """An LLM provider reached with an API key."""

    type: Literal["api_key"]
    api_key: str


class OAuthCredential(_Strict):
    """An LLM provider reached with an OAuth token pair."""

    type: Literal["oauth"]
    access_token: str
    refresh_token: str = ""
    expires_at: int | None = None  # Unix seconds


ProviderCredential = Annotated[
    ApiKeyCredential | OAuthCredential, Field(discriminator="type")
]


class GitCredential(_Strict):
    """A personal access token for pushing to a git host."""

    type: Literal["pat"] = "pat"
    host: str = "github.com"
    token: str


class DaytonaCredential(_Strict):
    """The API key of a Daytona account."""

    type: Literal["api_key"] = "api_key"
    api_key: str


class SandboxCredentials(_Strict):
    """Credentials of remote sandbox providers."""

    daytona: DaytonaCredential | None = None


class Credentials(_Strict):
    """The contents of ``credentials.yaml``; accessors return resolved values."""

    providers: dict[str, ProviderCredential] = Field(default_factory=dict)
    git: GitCredential | None = None
    sandbox: SandboxCredentials = Field(default_factory=SandboxCredentials)

    _path: Path = PrivateAttr(default_factory=lambda: credentials_path())

    @property
    def path(self) -> Path:
        """The file these credentials came from, named in errors."""
        return self._path

    def git_token(self) -> str | None:
        """Return the resolved git token, or None when no git entry exists."""
        if self.git is None:
            return None

        return resolve_value(self.git.token, key="git.token", path=self._path)

    def daytona_api_key(self) -> str | None:
        """Return the resolved Daytona API key, or None when none is stored."""
        daytona = self.sandbox.daytona
        if daytona is None:
            return None

        key = "sandbox.daytona.api_key"
        return resolve_value(daytona.api_key, key=key, path=self._path)

    def provider_key(self, name: str) -> str | None:
        """Return the resolved API key, or OAuth access token, of a provider."""
        provider = self.providers.get(name)
        if provider is None:
            return None

        if isinstance(provider, OAuthCredential):
            key = f"providers.{name}.access_token"
            return resolve_value(provider.access_token, key=key, path=self._path)

        key = f"providers.{name}.api_key"
        return resolve_value(provider.api_key, key=key, path=self._path)

    def raw_values(self) -> dict[str, str]:
        """Return every secret as written in the file, by dotted key.

        Pass each value to ``describe_source`` for a listing, or to
        ``resolve_value`` to collect the values to mask in a job log.
        """
        values: dict[str, str] = {}
        for name, provider in self.providers.items():
            if isinstance(provider, OAuthCredential):
                values[f"providers.{name}.access_token"] = provider.access_token
                if provider.refresh_token:
                    values[f"providers.{name}.refresh_token"] = provider.refresh_token
            else:
                values[f"providers.{name}.api_key"] = provider.api_key

        if self.git is not None:
            values["git.token"] = self.git.token

        if self.sandbox.daytona is not None:
            values["sandbox.daytona.api_key"] = self.sandbox.daytona.api_key
        return values


def credentials_path() -> Path:
    """Return ``$TACK_CREDENTIALS_PATH``, or ``~/.config/tack/credentials.yaml``."""
    override = os.environ.get("TACK_CREDENTIALS_PATH")
    if override:
        return Path(override).expanduser()

    return Path("~/.config/tack/credentials.yaml").expanduser()


def load_credentials(path: str | Path | None = None) -> Credentials:
    """Load and validate a credentials file; a missing file means no credentials.

    Logs a warning when group or other users may read the file. Values are
    resolved only when an accessor requests them, so a broken ``!command``
    fails only the lookup that needs it.
    """
    path = Path(path) if path is not None else credentials_path()
    data = read_yaml_mapping(path)
    if data is None:
        credentials = Credentials()
        credentials._path = path
        return credentials

    _warn_if_readable_by_others(path)
    credentials = validate_mapping(
        Credentials, data, path, reveal_values=False, hints=_OLD_SCHEMA_HINTS
    )
    credentials._path = path
    return credentials


def find_daytona_api_key(credentials: Credentials, config: TackConfig) -> str | None:
    """Return the Daytona API key from the credentials, else from the config.

    Tack falls back to ``sandbox.daytona.api_key`` in the config only when the
    credentials file has no Daytona entry.
    """
    stored = credentials.daytona_api_key()
    if stored is not None:
        return stored

    fallback = config.sandbox.daytona.api_key
    if not fallback:
        return None

    return resolve_value(fallback, key="sandbox.daytona.api_key", path="config.yaml")


def resolve_value(
    raw: str,
    *,
    key: str = "",
    path: str | Path | None = None,
    timeout: float = COMMAND_TIMEOUT_SECONDS,
) -> str:
    """Resolve a credential value: ``!command``, environment variable, or literal.

    A value starting with ``!`` is run with the shell and its output, without
    the trailing newline, is the value. A value shaped like an environment
    variable name (``^[A-Z_][A-Z0-9_]*$``) that names a set variable resolves
    to that variable. Anything else is returned as written. A failing command
    raises ConfigError naming ``key``; the message never includes the
    command's output.
    """
    source = path if path is not None else credentials_path()
    if raw.startswith("!"):
        return _run_value_command(raw[1:], key, source, timeout)

    if ENV_VAR_NAME.match(raw) and raw in os.environ:
        return os.environ[raw]

    if ENV_VAR_NAME.match(raw) and key:
        # The value is not printed, because an upper-case literal may itself
        # be a secret.
        logger.warning(
            "%s: %s looks like an environment variable name, but no such "
            "variable is set; using it as a literal value.",
            source,
            key,
        )
    return raw


def describe_source(raw: str) -> str:
    """Return where a value comes from: command, environment variable, literal."""
    if raw.startswith("!"):
        return "command"

    if ENV_VAR_NAME.match(raw) and raw in os.environ:
        return f"environment variable {raw}"

    return "literal"


def _run_value_command(
    command: str, key: str, source: str | Path, timeout: float
) -> str:
    name = key or "a credential value"
    if not command.strip():
        raise ConfigError(source, key, "the '!' is not followed by a command.")

    # The shell gets its own process group, so that a timeout can also kill
    # children that would otherwise keep the output pipe open.
    try:
        process = subprocess.Popen(
            command,
            shell=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    except OSError as exc:
        raise ConfigError(
            source, key, f"cannot start the command for {name}: {exc.strerror}."
        ) from exc

    try:
        stdout, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise ConfigError(
            source,
            key,
            f"the command for {name} timed out after {timeout:g} seconds. "
            "It runs with stdin closed, so it must not wait for input.",
        ) from None

    # Neither stdout nor stderr goes into the message: either may hold the
    # secret the command was meant to print.
    if process.returncode != 0:
        raise ConfigError(
            source,
            key,
            f"the command for {name} failed with exit status "
            f"{process.returncode}. Run it in a shell to see its error output.",
        )

    value = stdout.removesuffix("\n").removesuffix("\r")
    if not value:
        raise ConfigError(
            source,
            key,
            f"the command for {name} printed nothing. Make it print the secret.",
        )
    return value


def _warn_if_readable_by_others(path: Path) -> None:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return

    if mode & 0o077:
        logger.warning(
            "Credentials file %s has mode %04o, so other users may read it. "
            "Run `chmod 600 %s`.",
            path,
            mode,
            path,
        )
