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
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

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


def check_known_provider(provider: str, path: Path) -> None:
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
    check_known_provider(provider, target)
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
