"""Adding, listing, testing and removing entries of Tack's ``credentials.yaml``.

Writes edit the file with ruamel.yaml's round-trip mode, so other entries and
comments survive. Each write takes an exclusive ``flock`` on
``credentials.yaml.lock`` beside the file for the whole read-modify-write, and
replaces the file atomically with a temporary file created at mode 0600, so a
second writer waits instead of losing its entry and readers never see half a
file.

The Action uses ``resolve_secret`` and ``mask``: an explicit input wins over
the file, both go through ``resolve_value``, and every resolved secret is
masked in the job log.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import logging
import os
import re
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import Enum
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError as RuamelYAMLError

from .config import read_yaml_mapping, validate_mapping
from .credentials import (
    _OLD_SCHEMA_HINTS,
    ENV_VAR_NAME,
    Credentials,
    OAuthCredential,
    credentials_path,
    describe_source,
    load_credentials,
    resolve_value,
)
from .errors import ConfigError

logger = logging.getLogger(__name__)


API_KEY_PROVIDERS = ("anthropic", "openai", "gemini", "groq", "mistral", "xai")
PROVIDERS = ("daytona", "github", *API_KEY_PROVIDERS)
ALIASES = {"git": "github"}

# Secrets shorter than this are shown without any of their characters.
MIN_LENGTH_TO_SHOW_TAIL = 16
MASK = "********"

HTTP_TIMEOUT_SECONDS = 15.0
DEFAULT_DAYTONA_API_URL = "https://app.daytona.io/api"
DEFAULT_GITHUB_API_URL = "https://api.github.com"


@dataclass(frozen=True)
class ModelEndpoint:
    """The cheapest authenticated request of one model provider's API."""

    base_url_env: str
    default_base_url: str
    path: str
    key_header: str
    key_prefix: str = ""
    extra_headers: tuple[tuple[str, str], ...] = ()


# Each base URL follows the convention of the provider's own SDK, so the same
# override works for both: OpenAI-style bases include /v1, the others do not.
MODEL_ENDPOINTS = {
    "anthropic": ModelEndpoint(
        "ANTHROPIC_BASE_URL",
        "https://api.anthropic.com",
        "/v1/models?limit=1",
        "x-api-key",
        extra_headers=(("anthropic-version", "2023-06-01"),),
    ),
    "openai": ModelEndpoint(
        "OPENAI_BASE_URL",
        "https://api.openai.com/v1",
        "/models",
        "Authorization",
        "Bearer ",
    ),
    "gemini": ModelEndpoint(
        "GOOGLE_GEMINI_BASE_URL",
        "https://generativelanguage.googleapis.com",
        "/v1beta/models?pageSize=1",
        "x-goog-api-key",
    ),
    "groq": ModelEndpoint(
        "GROQ_BASE_URL",
        "https://api.groq.com",
        "/openai/v1/models",
        "Authorization",
        "Bearer ",
    ),
    "mistral": ModelEndpoint(
        "MISTRAL_BASE_URL",
        "https://api.mistral.ai",
        "/v1/models",
        "Authorization",
        "Bearer ",
    ),
    "xai": ModelEndpoint(
        "XAI_BASE_URL",
        "https://api.x.ai/v1",
        "/models",
        "Authorization",
        "Bearer ",
    ),
}


# Names and paths.


def canonical_provider(name: str) -> str:
    """Return the provider's canonical name, such as ``github`` for ``git``."""
    lowered = name.strip().lower()
    return ALIASES.get(lowered, lowered)


def entry_key(provider: str) -> str:
    """Return the dotted key of a provider's entry, such as ``sandbox.daytona``."""
    if provider == "daytona":
        return "sandbox.daytona"

    if provider == "github":
        return "git"

    return f"providers.{provider}"


def _check_known(provider: str, path: Path) -> None:
    if provider not in PROVIDERS:
        raise ConfigError(
            path,
            "",
            f"unknown provider {provider!r}. Use one of: {', '.join(PROVIDERS)}.",
        )


# Adding and removing.


@dataclass(frozen=True)
class WriteResult:
    """The outcome of one write of the credentials file."""

    path: Path
    key: str
    # The mode the file had before the write, when group or others could
    # read it; the write leaves it at 0600.
    fixed_mode: int | None = None


def check_stored_value(raw: str) -> None:
    """Reject a value that cannot be stored as a literal, command or variable name."""
    if not raw:
        raise ConfigError(credentials_path(), "", "the value is empty.")

    if "\n" in raw or "\r" in raw:
        raise ConfigError(
            credentials_path(), "", "the value contains a line break. Store one line."
        )


def literal_value(secret: str) -> str:
    """Return a typed or piped secret as it will be stored, or raise ConfigError.

    The secret is never quoted in errors: a literal that starts with ``!`` or
    looks like an environment variable name would be read back differently,
    so it is rejected with the option to use instead.
    """
    value = secret.strip()
    check_stored_value(value)
    if value.startswith("!"):
        raise ConfigError(
            credentials_path(),
            "",
            "the secret starts with '!', which marks a command. "
            "Pass --command COMMAND to store a command lookup.",
        )

    if ENV_VAR_NAME.match(value):
        raise ConfigError(
            credentials_path(),
            "",
            "the secret looks like an environment variable name. "
            "Pass --env NAME to store a reference to a variable.",
        )
    return value


def env_reference(name: str) -> str:
    """Return the stored form of ``--env NAME``, or raise ConfigError."""
    if not ENV_VAR_NAME.match(name):
        raise ConfigError(
            credentials_path(),
            "",
            f"{name!r} is not an environment variable name. Use upper-case "
            "letters, digits and underscores, not starting with a digit.",
        )
    return name


def command_reference(command: str) -> str:
    """Return the stored form of ``--command COMMAND``, or raise ConfigError."""
    command = command.strip()
    if not command:
        raise ConfigError(credentials_path(), "", "the command is empty.")

    check_stored_value(command)
    return f"!{command}"


def add_credential(
    provider: str,
    raw: str,
    *,
    host: str = "github.com",
    path: str | Path | None = None,
) -> WriteResult:
    """Store a provider's value in Tack's schema, keeping other entries and comments.

    ``raw`` is the value exactly as the file stores it: a literal, an
    environment variable name, or ``!command``.
    """
    target = Path(path) if path is not None else credentials_path()
    provider = canonical_provider(provider)
    _check_known(provider, target)
    check_stored_value(raw)

    if provider == "github":
        fields = {"type": "pat", "host": host, "token": raw}
    else:
        fields = {"type": "api_key", "api_key": raw}

    key = entry_key(provider)
    fixed_mode = _edit_file(target, lambda document: _set_entry(document, key, fields))
    return WriteResult(target, key, fixed_mode)


def remove_credential(provider: str, *, path: str | Path | None = None) -> WriteResult:
    """Delete a provider's entry, keeping the rest of the file and its comments.

    Any name under ``providers`` can be removed, including OAuth providers such
    as ``openai-codex``. Raises ConfigError when the file has no such entry.
    """
    target = Path(path) if path is not None else credentials_path()
    provider = canonical_provider(provider)
    key = entry_key(provider)

    def delete(document: CommentedMap) -> None:
        if not _delete_entry(document, key):
            raise ConfigError(
                target,
                key,
                f"there is no entry for {provider!r} to remove. "
                "Run `tack-action auth list` to see the stored providers.",
            )

    fixed_mode = _edit_file(target, delete)
    return WriteResult(target, key, fixed_mode)


def _set_entry(document: CommentedMap, key: str, fields: dict[str, str]) -> None:
    *sections, name = key.split(".")
    parent = document
    for section in sections:
        child = parent.get(section)
        if not isinstance(child, CommentedMap):
            child = CommentedMap()
            parent[section] = child
        parent = child

    # Flow-style parents such as `providers: {}` would otherwise print the
    # new entry on one line.
    parent.fa.set_block_style()
    entry = parent.get(name)
    if not isinstance(entry, CommentedMap):
        parent[name] = CommentedMap(fields)
        return

    # Updating in place keeps the comments inside the entry.
    entry.fa.set_block_style()
    for stale in [field for field in entry if field not in fields]:
        del entry[stale]
    for field, value in fields.items():
        entry[field] = value


def _delete_entry(document: CommentedMap, key: str) -> bool:
    *sections, name = key.split(".")
    parents = [document]
    for section in sections:
        child = parents[-1].get(section)
        if not isinstance(child, CommentedMap):
            return False
        parents.append(child)

    if name not in parents[-1]:
        return False

    del parents[-1][name]

    # A section left empty by the removal goes too, innermost first.
    for section, parent in zip(reversed(sections), reversed(parents[:-1]), strict=True):
        if parent[section]:
            break
        del parent[section]
    return True


# The file: locking, round-trip parsing and atomic replacement.


def _edit_file(path: Path, edit: Callable[[CommentedMap], None]) -> int | None:
    """Apply ``edit`` to the parsed file under the lock and write it back.

    Returns the file's previous mode when it was readable by group or others.
    """
    target = _real_path(path)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)

    with _locked(target):
        old_mode = _file_mode(target)
        document = _read_document(target)
        edit(document)
        text = _dump_document(document)
        _validate_text(text, target)
        _replace_file(target, text)

    if old_mode is not None and old_mode & 0o077:
        logger.warning(
            "Credentials file %s had mode %04o, so other users could read it; "
            "it now has mode 0600.",
            target,
            old_mode,
        )
        return old_mode
    return None


def _real_path(path: Path) -> Path:
    # Writing through a symlink replaces its target, so a credentials file
    # kept in a dotfiles repository stays linked.
    path = path.expanduser()
    if path.is_symlink():
        return path.resolve()
    return path


@contextlib.contextmanager
def _locked(target: Path) -> Iterator[None]:
    # The lock file stays in place: deleting it would let a third writer lock
    # a new inode while the second still holds the old one.
    lock_path = target.with_name(f"{target.name}.lock")
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def _file_mode(path: Path) -> int | None:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return None


def _round_trip_yaml() -> YAML:
    parser = YAML(typ="rt")
    parser.preserve_quotes = True
    # Long `!command` values stay on one line.
    parser.width = 4096
    return parser


def _read_document(path: Path) -> CommentedMap:
    # The strict loader and the model check the file first, so a broken file
    # gets the same error as every other command that reads it.
    data = read_yaml_mapping(path)
    if data is None:
        return CommentedMap()

    validate_mapping(
        Credentials, data, path, reveal_values=False, hints=_OLD_SCHEMA_HINTS
    )
    try:
        document = _round_trip_yaml().load(path.read_text(encoding="utf-8"))
    except RuamelYAMLError as exc:
        raise ConfigError(
            path, "", f"failed to parse the file for editing: {type(exc).__name__}."
        ) from None

    if document is None:
        return CommentedMap()
    return document


def _dump_document(document: CommentedMap) -> str:
    if not document:
        return ""

    buffer = io.StringIO()
    _round_trip_yaml().dump(document, buffer)
    return buffer.getvalue()


def _validate_text(text: str, path: Path) -> None:
    data = yaml.safe_load(text) if text else {}
    validate_mapping(
        Credentials, data or {}, path, reveal_values=False, hints=_OLD_SCHEMA_HINTS
    )


def _replace_file(target: Path, text: str) -> None:
    # mkstemp creates the file with mode 0600 whatever the umask, so the
    # secret is never readable by others, not even before the rename.
    descriptor, temporary = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
    )
    try:
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise

    # The rename is durable only once the directory entry is on disk.
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


# Listing.


@dataclass(frozen=True)
class CredentialEntry:
    """One stored credential as ``auth list`` shows it, with the secret masked."""

    provider: str
    type: str
    key: str
    source: str
    masked: str
    host: str = ""


def redact(value: str) -> str:
    """Return a fixed mask plus at most the last 4 characters of a long secret."""
    if len(value) < MIN_LENGTH_TO_SHOW_TAIL:
        return MASK
    return MASK + value[-4:]


def list_credentials(path: str | Path | None = None) -> list[CredentialEntry]:
    """Return every stored credential with its source and a masked value.

    Commands are not run, so listing never prompts a password manager.
    """
    credentials = load_credentials(path)
    entries: list[CredentialEntry] = []
    if credentials.sandbox.daytona is not None:
        raw = credentials.sandbox.daytona.api_key
        entries.append(_entry("daytona", "api_key", "sandbox.daytona.api_key", raw))

    if credentials.git is not None:
        git = credentials.git
        entries.append(_entry("github", git.type, "git.token", git.token, git.host))

    for name, provider in credentials.providers.items():
        if isinstance(provider, OAuthCredential):
            key = f"providers.{name}.access_token"
            entries.append(_entry(name, "oauth", key, provider.access_token))
        else:
            key = f"providers.{name}.api_key"
            entries.append(_entry(name, "api_key", key, provider.api_key))
    return entries


def _entry(
    provider: str, kind: str, key: str, raw: str, host: str = ""
) -> CredentialEntry:
    source = describe_source(raw)
    if source == "command":
        return CredentialEntry(provider, kind, key, "command", "(not run)", host)

    if source.startswith("environment variable"):
        masked = redact(os.environ[raw])
        return CredentialEntry(provider, kind, key, source, masked, host)

    # The name of an unset variable is not shown, because an upper-case
    # literal may itself be the secret.
    if ENV_VAR_NAME.match(raw):
        source = "literal, or an environment variable that is not set"
    return CredentialEntry(provider, kind, key, source, redact(raw), host)


# The Action's resolution.


def stored_secret(credentials: Credentials, provider: str) -> str | None:
    """Return a provider's resolved value from loaded credentials, or None."""
    provider = canonical_provider(provider)
    if provider == "daytona":
        return credentials.daytona_api_key()

    if provider == "github":
        return credentials.git_token()

    return credentials.provider_key(provider)


def resolve_secret(
    input_value: str | None, provider: str, *, path: str | Path | None = None
) -> str | None:
    """Return a provider's secret: a non-empty input, else the credentials file.

    Both go through ``resolve_value``, so an input may also name an environment
    variable or be a ``!command``. The result is masked in the job log.
    """
    provider = canonical_provider(provider)
    if input_value is not None and input_value.strip():
        value = resolve_value(input_value.strip(), key=provider, path="action input")
    else:
        value = stored_secret(load_credentials(path), provider)

    if not value:
        return None

    mask(value)
    return value


def mask(value: str) -> None:
    """Print ``::add-mask::`` for each line of ``value`` when in GitHub Actions."""
    if os.environ.get("GITHUB_ACTIONS") != "true":
        return

    # The runner reads workflow commands from stdout and unescapes these
    # three characters the way the actions toolkit escapes them.
    for line in value.splitlines():
        if not line.strip():
            continue
        escaped = line.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        sys.stdout.write(f"::add-mask::{escaped}\n")
    sys.stdout.flush()


# Testing.


class Failure(str, Enum):
    """The kind of ``auth test`` failure. Each kind needs a different fix."""

    NOT_CONFIGURED = "not configured"
    WRONG_KEY = "wrong key"
    EXPIRED_OR_FORBIDDEN = "expired or forbidden"
    NO_NETWORK = "no network"
    RATE_LIMITED = "rate limited"
    NO_PUSH_PERMISSION = "no push permission"
    UNEXPECTED_RESPONSE = "unexpected response"


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one authenticated test call."""

    provider: str
    failure: Failure | None
    message: str
    details: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether the credential worked."""
        return self.failure is None


def check_credential(
    provider: str,
    *,
    path: str | Path | None = None,
    daytona_api_url: str | None = None,
    repo_dir: str | Path | None = None,
) -> CheckResult:
    """Make one lightweight authenticated call with a stored credential.

    ``daytona_api_url`` is ``sandbox.daytona.api_url`` from the config, if set.
    ``repo_dir`` is where the GitHub check reads the ``origin`` remote; it
    defaults to the working directory.
    """
    provider = canonical_provider(provider)
    target = Path(path) if path is not None else credentials_path()
    _check_known(provider, target)
    credentials = load_credentials(target)
    secret = stored_secret(credentials, provider)
    if not secret:
        return CheckResult(
            provider,
            Failure.NOT_CONFIGURED,
            f"{target} has no {entry_key(provider)} entry. "
            f"Run `tack-action auth add {provider}` first.",
        )

    if provider == "daytona":
        api_url = (
            daytona_api_url
            or os.environ.get("DAYTONA_API_URL")
            or DEFAULT_DAYTONA_API_URL
        )
        result = check_daytona(secret, api_url)
    elif provider == "github":
        host = credentials.git.host if credentials.git is not None else "github.com"
        result = check_github(secret, host, Path(repo_dir or Path.cwd()))
    else:
        result = check_model_provider(provider, secret)
    return _scrubbed(result, secret)


def _scrubbed(result: CheckResult, secret: str) -> CheckResult:
    # Server messages and SDK errors are quoted in results; none may carry
    # the secret back to the terminal.
    def scrub(text: str) -> str:
        return text.replace(secret, "[redacted]")

    return CheckResult(
        result.provider,
        result.failure,
        scrub(result.message),
        tuple(scrub(line) for line in result.details),
    )


def check_model_provider(provider: str, api_key: str) -> CheckResult:
    """List models with the provider's API key, the cheapest authenticated call."""
    endpoint = MODEL_ENDPOINTS[provider]
    base = os.environ.get(endpoint.base_url_env) or endpoint.default_base_url
    url = base.rstrip("/") + endpoint.path
    headers = {endpoint.key_header: endpoint.key_prefix + api_key}
    headers.update(endpoint.extra_headers)

    try:
        response = _get(url, headers)
    except httpx.TransportError as exc:
        return _network_failure(provider, url, exc, endpoint.base_url_env)

    if response.status_code == 200:
        return CheckResult(provider, None, f"the key can list models at {base}.")

    # Gemini rejects an invalid key with 400 and reason API_KEY_INVALID.
    # NOTE: xAI's 400 "Incorrect API key provided" is taken from its error
    # output as users report it, not from a published reference.
    wrong_key_markers = ("API_KEY_INVALID", "Incorrect API key")
    if response.status_code == 400 and any(
        marker in response.text for marker in wrong_key_markers
    ):
        return _wrong_key(provider, url, response)
    return _http_failure(provider, url, response)


def check_daytona(api_key: str, api_url: str) -> CheckResult:
    """List at most one sandbox with the daytona SDK."""
    # The SDK costs about a second to import, so only this check loads it.
    from daytona import (
        Daytona,
        DaytonaAuthenticationError,
        DaytonaConfig,
        DaytonaConnectionError,
        DaytonaError,
        DaytonaForbiddenError,
        DaytonaRateLimitError,
        DaytonaTimeoutError,
        ListSandboxesQuery,
    )

    url = f"{api_url.rstrip('/')}/sandbox"
    try:
        client = Daytona(DaytonaConfig(api_key=api_key, api_url=api_url))
        first_page = client.list(ListSandboxesQuery(limit=1))
        found = next(iter(first_page), None)
    except DaytonaAuthenticationError:
        return CheckResult(
            "daytona",
            Failure.WRONG_KEY,
            f"{url} answered 401 Unauthorized, so the API key is wrong or was "
            "revoked. Store a valid key with `tack-action auth add daytona`.",
        )
    except DaytonaForbiddenError as exc:
        return CheckResult(
            "daytona",
            Failure.EXPIRED_OR_FORBIDDEN,
            f"{url} answered 403 Forbidden: {exc.message}. The key has expired "
            "or lacks the permission to list sandboxes; create a key with "
            "sandbox access in the Daytona dashboard.",
        )
    except DaytonaRateLimitError as exc:
        wait = _retry_after(exc.headers)
        return CheckResult(
            "daytona",
            Failure.RATE_LIMITED,
            f"{url} answered 429 Too Many Requests{wait}. The key was not checked.",
        )
    except (DaytonaConnectionError, DaytonaTimeoutError) as exc:
        return CheckResult(
            "daytona",
            Failure.NO_NETWORK,
            f"cannot reach {api_url}: {exc.message}. Check the network, or "
            "sandbox.daytona.api_url and DAYTONA_API_URL.",
        )
    except DaytonaError as exc:
        # Refused or dropped connections reach us as a plain DaytonaError
        # raised from urllib3's MaxRetryError.
        cause = _transport_cause(exc)
        if exc.status_code is None and cause is not None:
            return CheckResult(
                "daytona",
                Failure.NO_NETWORK,
                f"cannot reach {api_url}: {cause}. Check the network, or "
                "sandbox.daytona.api_url and DAYTONA_API_URL.",
            )

        status = exc.status_code or "no status"
        return CheckResult(
            "daytona",
            Failure.UNEXPECTED_RESPONSE,
            f"listing sandboxes at {url} failed ({status}): {exc.message}",
        )

    listed = "one sandbox" if found is not None else "no sandboxes"
    return CheckResult("daytona", None, f"the key listed {listed} at {api_url}.")


def _transport_cause(error: BaseException) -> str | None:
    """Return the innermost OS-level reason in an exception chain, if any."""
    import urllib3

    reason: str | None = None
    current: BaseException | None = error
    while current is not None:
        if isinstance(current, OSError) and current.strerror:
            reason = current.strerror
        elif isinstance(current, urllib3.exceptions.HTTPError) and reason is None:
            reason = type(current).__name__
        current = current.__cause__ or current.__context__
    return reason


def check_github(token: str, host: str, repo_dir: Path) -> CheckResult:
    """Read the token's user and scopes, then its push permission on ``origin``."""
    base = _github_api_url(host)
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
    }
    url = f"{base}/user"
    try:
        response = _get(url, headers)
    except httpx.TransportError as exc:
        return _network_failure("github", url, exc, "GITHUB_API_URL")

    # Installation tokens, such as the Actions GITHUB_TOKEN, have no user, so
    # GitHub returns 403 "Resource not accessible by integration".
    if response.status_code == 403 and "by integration" in _server_message(response):
        identity = "the token is a GitHub App installation token"
        details = ["Its permissions are set per repository by the app."]
    elif response.status_code == 200:
        login = _json_field(response, "login") or "an unknown user"
        identity = f"the token belongs to {login}"
        details = [_describe_scopes(response.headers.get("X-OAuth-Scopes"))]
    else:
        return _http_failure("github", url, response)

    origin = _origin_repository(repo_dir, host)
    if isinstance(origin, str):
        details.append(origin)
        return CheckResult("github", None, f"{identity}.", tuple(details))

    owner, name = origin
    url = f"{base}/repos/{owner}/{name}"
    try:
        response = _get(url, headers)
    except httpx.TransportError as exc:
        return _network_failure("github", url, exc, "GITHUB_API_URL")

    if response.status_code == 404:
        return CheckResult(
            "github",
            Failure.NO_PUSH_PERMISSION,
            f"{url} answered 404 Not Found: {identity} but cannot see "
            f"{owner}/{name}. Give the token access to the repository.",
            tuple(details),
        )

    if response.status_code != 200:
        return _http_failure("github", url, response)

    permissions = _json_field(response, "permissions")
    installation = identity.endswith("installation token")
    if not isinstance(permissions, dict) and installation:
        # NOTE: GitHub may leave `permissions` out for installation tokens,
        # whose write access comes from the workflow's `permissions:` block.
        details.append(
            f"GitHub did not report its permissions on {owner}/{name}; the "
            "workflow needs `permissions: contents: write` to push."
        )
        return CheckResult("github", None, f"{identity}.", tuple(details))

    if not isinstance(permissions, dict) or permissions.get("push") is not True:
        return CheckResult(
            "github",
            Failure.NO_PUSH_PERMISSION,
            f"{identity} but cannot push to {owner}/{name}. "
            "Use a token with write access (classic: the repo scope; "
            "fine-grained: Contents read and write).",
            tuple(details),
        )

    details.append(f"It can push to {owner}/{name}.")
    return CheckResult("github", None, f"{identity}.", tuple(details))


def _github_api_url(host: str) -> str:
    configured = os.environ.get("GITHUB_API_URL")
    if configured:
        return configured.rstrip("/")

    if host == "github.com":
        return DEFAULT_GITHUB_API_URL

    # GitHub Enterprise Server serves the REST API under /api/v3.
    return f"https://{host}/api/v3"


def _describe_scopes(header: str | None) -> str:
    # Only classic tokens carry X-OAuth-Scopes; fine-grained tokens and app
    # tokens carry per-repository permissions instead.
    if header is None:
        return (
            "It is a fine-grained or app token, so its permissions are set "
            "per repository."
        )

    scopes = [scope.strip() for scope in header.split(",") if scope.strip()]
    if not scopes:
        return "It is a classic token with no scopes, so it cannot push."

    listed = ", ".join(scopes)
    if "repo" not in scopes:
        return (
            f"It is a classic token with scopes {listed}, without repo, so it "
            "cannot push to private repositories."
        )
    return f"It is a classic token with scopes {listed}."


# Matches scp-like remotes such as git@github.com:octo/widgets.git.
_SCP_REMOTE = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>[^/].*)$")


def parse_remote_url(url: str) -> tuple[str, str, str] | None:
    """Return (host, owner, repository) of an HTTPS, SSH or scp-like git URL."""
    url = url.strip()
    if "://" in url:
        parts = urlsplit(url)
        host = parts.hostname or ""
        path = parts.path
    else:
        match = _SCP_REMOTE.match(url)
        if match is None:
            return None
        host = match["host"]
        path = match["path"]

    segments = [segment for segment in path.strip("/").split("/") if segment]
    if not host or len(segments) != 2:
        return None

    owner, name = segments
    return host.lower(), owner, name.removesuffix(".git")


def _origin_repository(repo_dir: Path, host: str) -> tuple[str, str] | str:
    """Return (owner, name) of ``origin``, or a sentence saying why it was skipped."""
    try:
        completed = subprocess.run(
            ["git", "remote", "get-url", "origin"],
            cwd=repo_dir,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"Push permission was not checked: git failed to run ({exc})."

    if completed.returncode != 0:
        return (
            f"Push permission was not checked: {repo_dir} is not a git "
            "repository with an origin remote."
        )

    parsed = parse_remote_url(completed.stdout)
    if parsed is None:
        return (
            "Push permission was not checked: the origin URL is not of the "
            "form HOST/OWNER/REPOSITORY."
        )

    origin_host, owner, name = parsed
    if origin_host != host.lower():
        return (
            f"Push permission was not checked: origin is on {origin_host}, "
            f"but the token is for {host}."
        )
    return owner, name


# HTTP helpers shared by the checks.


def _get(url: str, headers: dict[str, str]) -> httpx.Response:
    with httpx.Client(timeout=HTTP_TIMEOUT_SECONDS, follow_redirects=False) as client:
        return client.get(url, headers=headers)


def _status_text(response: httpx.Response) -> str:
    """Return the status code and its standard phrase, such as ``401 Unauthorized``."""
    try:
        phrase = HTTPStatus(response.status_code).phrase
    except ValueError:
        phrase = response.reason_phrase
    return f"{response.status_code} {phrase}"


def _json_field(response: httpx.Response, name: str) -> Any:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get(name) if isinstance(body, dict) else None


def _server_message(response: httpx.Response) -> str:
    """Return the error message from a JSON error body, shortened."""
    try:
        body = response.json()
    except ValueError:
        return ""

    message: Any = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            message = error.get("message")
        elif isinstance(error, str):
            message = error
        message = message or body.get("message") or body.get("detail")

    if not isinstance(message, str):
        return ""
    return message.strip()[:200]


def _wrong_key(provider: str, url: str, response: httpx.Response) -> CheckResult:
    # The 401 body is not quoted: some providers echo part of the key in it.
    return CheckResult(
        provider,
        Failure.WRONG_KEY,
        f"{url} answered {_status_text(response)}, so the "
        f"key is wrong or was revoked. Store a valid key with "
        f"`tack-action auth add {provider}`.",
    )


def _http_failure(provider: str, url: str, response: httpx.Response) -> CheckResult:
    status = response.status_code
    remaining = response.headers.get("X-RateLimit-Remaining")
    # GitHub reports an exhausted primary rate limit as 403 with
    # X-RateLimit-Remaining: 0.
    if status == 429 or (status == 403 and remaining == "0"):
        wait = _retry_after(response.headers)
        return CheckResult(
            provider,
            Failure.RATE_LIMITED,
            f"{url} answered {_status_text(response)}: rate limited"
            f"{wait}. The key was not checked.",
        )

    if status == 401:
        return _wrong_key(provider, url, response)

    detail = _server_message(response)
    detail = f": {detail}" if detail else ""
    if status == 403:
        return CheckResult(
            provider,
            Failure.EXPIRED_OR_FORBIDDEN,
            f"{url} answered 403 Forbidden{detail}. The key has expired or lacks "
            "the permission for this request; create a new one.",
        )

    return CheckResult(
        provider,
        Failure.UNEXPECTED_RESPONSE,
        f"{url} answered {_status_text(response)}{detail}.",
    )


def _network_failure(
    provider: str, url: str, error: httpx.TransportError, base_env: str
) -> CheckResult:
    reason = str(error) or type(error).__name__
    return CheckResult(
        provider,
        Failure.NO_NETWORK,
        f"cannot reach {url}: {reason}. Check the network connection, or "
        f"{base_env} if it points elsewhere.",
    )


def _retry_after(headers: Any) -> str:
    """Return ', retry after N seconds' from Retry-After or X-RateLimit-Reset."""
    lowered = {str(name).lower(): str(value) for name, value in dict(headers).items()}
    value = lowered.get("retry-after", "").strip()
    seconds: float | None = None
    if value.isdigit():
        seconds = float(value)
    elif value:
        with contextlib.suppress(TypeError, ValueError):
            seconds = parsedate_to_datetime(value).timestamp() - time.time()

    reset = lowered.get("x-ratelimit-reset", "").strip()
    if seconds is None and reset.isdigit():
        seconds = float(reset) - time.time()

    if seconds is None:
        return ""
    return f", retry after {max(0, round(seconds))} seconds"
