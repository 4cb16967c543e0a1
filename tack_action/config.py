"""Models for ``.tack/config.yaml`` and the layered loading of it.

Layers, later ones winning: built-in defaults, the user layer
(``~/.config/tack/config.yaml`` or ``$TACK_USER_CONFIG_PATH``), then the
project layer ``<repo>/.tack/config.yaml``. Mappings merge key by key, and a
later layer's list or scalar replaces the earlier value.

The YAML reading and the translation of pydantic errors into ``ConfigError``
live here too, because ``credentials.py`` reads its file the same way.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from pydantic_core import PydanticCustomError

from .errors import ConfigError

logger = logging.getLogger(__name__)

# Tack's code replaces a non-positive agents.max_concurrent with this value.
FALLBACK_MAX_CONCURRENT = 5

# Wall-clock limits per agent role, in minutes. Roles not listed use "default".
BUILTIN_MAX_DURATION_MINUTES: dict[str, float] = {
    "default": 30,
    "planner": 20,
    "builder": 45,
    "reviewer": 15,
}
BUILTIN_IDLE_MINUTES: float = 10

# Role names that agents.timeouts and a mapping agents.command accept. They are
# the blueprint roles plus "default", which applies to every role not listed.
KNOWN_ROLES = (
    "default",
    "planner",
    "builder",
    "reviewer",
    "scout",
    "lead",
    "merger",
    "pr-writer",
)

# Keys that Tack once accepted in config.yaml, with the key that replaced them.
_CONFIG_KEY_HINTS = {
    "sandbox.post_create": "sandbox.post_create is deprecated in Tack; "
    "move its commands to project_setup.commands.",
}


_Model = typing.TypeVar("_Model", bound=BaseModel)


class _Strict(BaseModel):
    # Strict mode keeps YAML's own types: `max_concurrent: "8"` or
    # `auto_resolve: yes` (a string, see StrictSafeLoader) are errors, not
    # silent conversions.
    model_config = ConfigDict(extra="forbid", strict=True)


def _check_command(command: str) -> str:
    if not command.strip():
        raise PydanticCustomError(
            "empty_command",
            "the command is empty. Remove the entry or write a shell command.",
        )
    return command


def _check_role(role: str) -> None:
    if role not in KNOWN_ROLES:
        raise PydanticCustomError(
            "unknown_role",
            "unknown role {role}. Known roles: {known}.",
            {"key": role, "role": repr(role), "known": ", ".join(KNOWN_ROLES)},
        )


# A shell command in a list; blank commands are rejected because they would
# pass as gates or setup steps without running anything.
Command = Annotated[str, AfterValidator(_check_command)]


class Resources(_Strict):
    """CPU, memory and disk for each Daytona sandbox."""

    cpu: int = 2
    memory: int = 2048  # MB
    disk: int = 10  # GB


class DaytonaSettings(_Strict):
    """Daytona endpoint, snapshot and a fallback API key."""

    api_url: str = ""
    snapshot: str = ""
    # Used only when credentials.yaml has no sandbox.daytona entry. This file
    # is usually committed, so the value should name an environment variable.
    api_key: str = ""


class SandboxSettings(_Strict):
    """Sandbox provider, worktree root, sizing and cleanup intervals."""

    provider: Literal["local", "daytona"] = "local"
    worktree_dir: str = ""  # empty means $TMPDIR/tack-worktrees
    default_resources: Resources = Field(default_factory=Resources)
    auto_stop_interval: int = 30  # minutes
    auto_delete_interval: int = 1440  # minutes
    daytona: DaytonaSettings = Field(default_factory=DaytonaSettings)


class ProjectSetup(_Strict):
    """Commands that prepare a new sandbox, and checks that it is ready."""

    commands: list[Command] = Field(default_factory=list)
    verify: list[Command] = Field(default_factory=list)


class DaemonSettings(_Strict):
    """The callback URL sandboxes report to, and the base branch."""

    external_url: str = ""
    base_branch: str = "main"


class RoleTimeout(_Strict):
    """Time limits of one agent role; an unset field is inherited."""

    max_duration_minutes: float | None = Field(default=None, gt=0)
    idle_minutes: float | None = Field(default=None, gt=0)


class PiSettings(_Strict):
    """The Pi runtime's provider, model and thinking level."""

    provider: str = ""
    model: str = ""
    thinking_level: (
        Literal["off", "minimal", "low", "medium", "high", "xhigh"] | None
    ) = None


class AgentSettings(_Strict):
    """The agent runtime, its command, concurrency and time limits."""

    runtime: Literal["command", "claude-code", "codex", "pi"] = "command"
    # The shell command the command runtime runs: one for every role, or one
    # per role name in KNOWN_ROLES, with "default" for the roles not listed.
    command: str | dict[str, str] | None = None
    max_concurrent: int = 8
    stagger_delay_ms: int = Field(default=500, ge=0)
    timeouts: dict[str, RoleTimeout] = Field(default_factory=dict)
    # When true, builder changes outside the stream's file scope are reverted
    # before the quality gates run; otherwise they are only reported.
    enforce_file_scope: bool = False
    pi: PiSettings = Field(default_factory=PiSettings)

    @field_validator("command")
    @classmethod
    def _check_command_roles(
        cls, value: str | dict[str, str] | None
    ) -> str | dict[str, str] | None:
        if isinstance(value, dict):
            for role in value:
                _check_role(role)
        return value

    @field_validator("timeouts")
    @classmethod
    def _check_timeout_roles(
        cls, value: dict[str, RoleTimeout]
    ) -> dict[str, RoleTimeout]:
        for role in value:
            _check_role(role)
        return value

    @field_validator("max_concurrent")
    @classmethod
    def _replace_non_positive(cls, value: int) -> int:
        # Tack treats zero or a negative value as "unset" rather than an error.
        if value <= 0:
            return FALLBACK_MAX_CONCURRENT
        return value


class RuntimeAuth(_Strict):
    """How an agent runtime gets its LLM provider credential.

    ``native`` leaves authentication to the runtime and the sandbox's own
    environment. ``tack`` resolves ``providers.<credential_ref>`` from
    credentials.yaml and passes it to each agent command's environment.
    """

    mode: Literal["tack", "native"] = "native"
    runtime: str = ""
    provider: str = ""
    method: Literal["api_key", "oauth"] = "api_key"
    credential_ref: str = ""


class ModelSettings(_Strict):
    """Model names per use; an empty name leaves the choice to the runtime."""

    default: str = ""
    agent: str = ""
    planner: str = ""
    small_tasks: str = ""


class GitSettings(_Strict):
    """The author identity of agent commits."""

    author_name: str = "Tack"
    author_email: str = "tack@local"


class PlanningSettings(_Strict):
    """Limits on the plans the planner may return."""

    max_streams: int = Field(default=8, ge=1)


class MergeSettings(_Strict):
    """Conflict handling of the merge queue."""

    # Tier 2 retries a conflicting merge with -X theirs. Off, a conflict is
    # recorded for a human at once.
    auto_resolve: bool = True


class TackConfig(_Strict):
    """The effective configuration: every layer merged and validated."""

    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    project_setup: ProjectSetup = Field(default_factory=ProjectSetup)
    daemon: DaemonSettings = Field(default_factory=DaemonSettings)
    agents: AgentSettings = Field(default_factory=AgentSettings)
    quality_gates: list[Command] = Field(default_factory=list)
    git: GitSettings = Field(default_factory=GitSettings)
    blueprint: str = ""
    planning: PlanningSettings = Field(default_factory=PlanningSettings)
    merge: MergeSettings = Field(default_factory=MergeSettings)
    runtime_auth: RuntimeAuth = Field(default_factory=RuntimeAuth)
    models: ModelSettings = Field(default_factory=ModelSettings)


def user_config_path() -> Path:
    """Return ``$TACK_USER_CONFIG_PATH``, or ``~/.config/tack/config.yaml``."""
    override = os.environ.get("TACK_USER_CONFIG_PATH")
    if override:
        return Path(override).expanduser()

    return Path("~/.config/tack/config.yaml").expanduser()


def project_config_path(repo: str | Path) -> Path:
    """Return the project layer's path, ``<repo>/.tack/config.yaml``."""
    return Path(repo) / ".tack" / "config.yaml"


def load_config(repo: str | Path, *, user_path: str | Path | None = None) -> TackConfig:
    """Load and validate the defaults, user and project layers, merged.

    ``user_path`` replaces the usual user layer path. A missing file adds
    nothing. Each layer is validated on its own first, so that a
    ``ConfigError`` names the file the mistake is in.
    """
    paths = [
        Path(user_path) if user_path is not None else user_config_path(),
        project_config_path(repo),
    ]

    merged: dict[str, Any] = {}
    used: list[Path] = []
    for path in paths:
        layer = read_yaml_mapping(path)
        if layer is None:
            continue

        validate_mapping(TackConfig, layer, path, hints=_CONFIG_KEY_HINTS)
        merged = merge_mappings(merged, layer)
        used.append(path)

    logger.debug("Loaded config layers: %s", ", ".join(map(str, used)) or "none")
    source = " + ".join(map(str, used)) or "built-in defaults"
    return validate_mapping(TackConfig, merged, source)


def timeout_for(config: TackConfig, role: str) -> tuple[float, float]:
    """Return the (max_duration_seconds, idle_seconds) limits of an agent role.

    Each field comes from ``agents.timeouts.<role>`` if set, else from
    ``agents.timeouts.default``, else from the role's built-in value.
    """
    configured = config.agents.timeouts
    own = configured.get(role, RoleTimeout())
    fallback = configured.get("default", RoleTimeout())
    builtin_max = BUILTIN_MAX_DURATION_MINUTES.get(
        role, BUILTIN_MAX_DURATION_MINUTES["default"]
    )

    max_minutes = _first_set(
        own.max_duration_minutes, fallback.max_duration_minutes, builtin_max
    )
    idle_minutes = _first_set(
        own.idle_minutes, fallback.idle_minutes, BUILTIN_IDLE_MINUTES
    )
    return max_minutes * 60.0, idle_minutes * 60.0


def worktree_root(config: TackConfig) -> Path:
    """Return the directory for local worktrees, with ``~`` and ``$VARS`` expanded.

    An empty ``sandbox.worktree_dir`` means ``<tempdir>/tack-worktrees``. An
    unset environment variable stays in the path as written.
    """
    raw = config.sandbox.worktree_dir.strip()
    if not raw:
        return Path(tempfile.gettempdir()) / "tack-worktrees"

    return Path(os.path.expanduser(os.path.expandvars(raw)))


def agent_command(config: TackConfig, role: str) -> str | None:
    """Return the shell command the command runtime runs for ``role``, if any.

    A string ``agents.command`` serves every role. A mapping is looked up by
    role, then by ``default``. An empty command counts as unset.
    """
    command = config.agents.command
    if isinstance(command, dict):
        command = command.get(role) or command.get("default")

    return command or None


def merge_mappings(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict:
    """Return ``base`` updated by ``override``, merging nested mappings key by key."""
    merged = dict(base)
    for key, value in override.items():
        earlier = merged.get(key)
        if isinstance(value, Mapping) and isinstance(earlier, Mapping):
            merged[key] = merge_mappings(earlier, value)
        else:
            merged[key] = value

    return merged


def read_yaml_mapping(path: Path) -> dict[str, Any] | None:
    """Parse a YAML file whose top level must be a mapping.

    Returns None when the file does not exist and ``{}`` when it is empty.
    Raises ConfigError for an unreadable file, invalid YAML, a duplicate key
    or a top level that is not a mapping. Messages never quote the file.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(path, "", f"failed to read the file: {reason}.") from exc

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            path, "", f"the file is not valid UTF-8 (byte offset {exc.start})."
        ) from exc

    try:
        data = yaml.load(text, Loader=StrictSafeLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(path, "", _describe_yaml_error(exc)) from exc

    if data is None:
        return {}

    if not isinstance(data, dict):
        raise ConfigError(
            path,
            "",
            f"the top level must be a mapping of keys to values, "
            f"got {_describe_type(data)}.",
        )
    return data


def validate_mapping(
    model: type[_Model],
    data: Mapping[str, Any],
    path: str | Path,
    *,
    reveal_values: bool = True,
    hints: Mapping[str, str] | None = None,
) -> _Model:
    """Validate ``data`` as ``model``, raising ConfigError on the first problem.

    With ``reveal_values`` off, messages describe a wrong value by its type
    only, which keeps secrets out of them. ``hints`` maps a dotted key to an
    extra sentence shown when that key is unknown.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise config_error_from_validation(
            exc, path, model, reveal_values=reveal_values, hints=hints
        ) from None


def config_error_from_validation(
    exc: ValidationError,
    path: str | Path,
    model: type[BaseModel],
    *,
    reveal_values: bool = True,
    hints: Mapping[str, str] | None = None,
) -> ConfigError:
    """Convert a pydantic ValidationError into one ConfigError.

    The error carries the first problem in full and lists the dotted keys of
    any others.
    """
    problems: dict[str, list[_Problem]] = {}
    for error in exc.errors():
        problem = _problem_from_error(error, model, reveal_values, hints or {})
        problems.setdefault(problem.key, []).append(problem)

    # A union such as `str | dict[str, str]` reports one error per member. When
    # a deeper key failed, the value had the right shape and only that deeper
    # error matters.
    keys = [key for key in problems if not _has_deeper_key(key, problems)]

    first = keys[0]
    message = _join_problems(problems[first])
    if len(keys) > 1:
        message += " Other invalid keys: " + ", ".join(keys[1:]) + "."

    return ConfigError(path, first, message)


class _Problem(typing.NamedTuple):
    key: str
    expected: str | None
    got: str
    text: str | None


class StrictSafeLoader(yaml.SafeLoader):
    """A SafeLoader that rejects duplicate keys and reads only true/false as booleans.

    PyYAML follows YAML 1.1, where yes, no, on, off, y and n are booleans too.
    Here they stay strings, as in YAML 1.2, so a strict model rejects them
    instead of reading `auto_resolve: yes` as true.
    """


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> Any:
    # PyYAML silently keeps the last of two equal keys. A repeated key is
    # almost always an editing mistake, so report where the second one is.
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
        except TypeError:
            continue

        if duplicate:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r}",
                key_node.start_mark,
            )
        seen.add(key)

    return loader.construct_mapping(node, deep=True)


StrictSafeLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)

_BOOL_TAG = "tag:yaml.org,2002:bool"

# Every implicit resolver of SafeLoader except its YAML 1.1 boolean one, which
# is replaced by the YAML 1.2 core schema spellings.
StrictSafeLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
StrictSafeLoader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)

# YAML 1.1 boolean spellings that StrictSafeLoader reads as strings.
_YAML11_BOOLEANS = {"yes", "no", "on", "off", "y", "n"}


def _describe_yaml_error(exc: yaml.YAMLError) -> str:
    # Only the problem text and position are used: str(exc) would quote the
    # offending line, which may hold a secret.
    problem = getattr(exc, "problem", None) or "the text could not be parsed"
    mark = getattr(exc, "problem_mark", None)
    if mark is None:
        return f"invalid YAML: {problem}."

    return f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {problem}."


def _first_set(*values: float | None) -> float:
    return float(next(value for value in values if value is not None))


def _has_deeper_key(key: str, problems: Mapping[str, object]) -> bool:
    return any(
        other.startswith(key + ".") or other.startswith(key + "[") for other in problems
    )


def _join_problems(problems: list[_Problem]) -> str:
    texts = [problem.text for problem in problems if problem.text]
    if texts:
        return texts[0]

    expected = " or ".join(dict.fromkeys(p.expected for p in problems if p.expected))
    return f"expected {expected}, got {problems[0].got}."


# pydantic error types and the expectation each one reports.
_EXPECTATIONS = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}

# Key names whose values are never quoted in a message.
_SECRET_KEYS = {"api_key", "token", "access_token", "refresh_token"}


def _problem_from_error(
    error: Mapping[str, Any],
    model: type[BaseModel],
    reveal_values: bool,
    hints: Mapping[str, str],
) -> _Problem:
    parts, owner, annotation = _walk_location(model, error["loc"])
    kind = error["type"]
    context = error.get("ctx") or {}
    value = error.get("input")

    last = parts[-1] if parts else ""
    reveal = reveal_values and last not in _SECRET_KEYS
    got = _describe_value(value) if reveal else _describe_type(value)

    if kind == "extra_forbidden":
        key = _join_key(parts)
        allowed = ", ".join(owner.model_fields) if owner else "none"
        text = f"unknown key {last!r}. Allowed keys here: {allowed}."
        if key in hints:
            text += " " + hints[key]
        return _Problem(key, None, got, text)

    if kind == "missing":
        return _Problem(_join_key(parts), None, got, "this required key is missing.")

    if kind in ("empty_command", "unknown_role"):
        # Our own validators: the message is complete, and "key" in the
        # context names the offending mapping key below the location.
        extra = context.get("key")
        key = _join_key([*parts, extra] if extra else parts)
        return _Problem(key, None, got, error["msg"])

    if kind == "bool_type" and isinstance(value, str):
        if value.lower() in _YAML11_BOOLEANS:
            text = (
                f"expected true or false, got {got}. YAML 1.1 spellings such as "
                "yes, no, on and off are not booleans here."
            )
            return _Problem(_join_key(parts), None, got, text)

    if kind in ("union_tag_invalid", "union_tag_not_found"):
        # A tagged union: the "type" key chooses the shape of the mapping.
        tags = ", ".join(repr(tag) for tag in _union_tags(annotation))
        key = _join_key([*parts, "type"])
        if kind == "union_tag_not_found":
            text = f"this required key is missing; set it to one of {tags}."
        elif reveal_values:
            text = f"expected one of {tags}, got {context.get('tag')!r}."
        else:
            text = f"expected one of {tags}."
        return _Problem(key, None, got, text)

    return _Problem(_join_key(parts), _expectation(kind, context), got, None)


def _expectation(kind: str, context: Mapping[str, Any]) -> str:
    if kind in _EXPECTATIONS:
        return _EXPECTATIONS[kind]

    if kind == "literal_error":
        return f"one of {context.get('expected')}"

    if kind == "greater_than_equal":
        return f"a value of at least {context.get('ge'):g}"

    if kind == "greater_than":
        return f"a value greater than {context.get('gt'):g}"

    if kind == "value_error":
        return f"a valid value ({context.get('error')})"

    return f"a valid value ({kind})"


def _walk_location(
    model: type[BaseModel], location: tuple[int | str, ...]
) -> tuple[list[str], type[BaseModel] | None, Any]:
    """Turn a pydantic error location into key path parts.

    The walk follows the model's annotations so that union member tags, which
    pydantic puts into the location, are skipped. Also returns the model that
    owns the last key and the annotation of the value at the location.
    """
    parts: list[str] = []
    owner: type[BaseModel] | None = None
    annotation: Any = model
    for item in location:
        # pydantic marks an invalid mapping key with an extra "[key]" item.
        if item == "[key]":
            continue

        annotation = _unwrap(annotation)
        if _is_union(annotation):
            annotation = _union_member(annotation, item)
            continue

        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            owner = annotation
            field = annotation.model_fields.get(str(item))
            annotation = field.annotation if field else None
            parts.append(str(item))
        elif get_origin(annotation) is dict:
            annotation = get_args(annotation)[1]
            parts.append(str(item))
        elif get_origin(annotation) is list and parts:
            annotation = get_args(annotation)[0]
            parts[-1] += f"[{item}]"
        else:
            annotation = None
            parts.append(str(item))

    return parts, owner, annotation


def _unwrap(annotation: Any) -> Any:
    if get_origin(annotation) is typing.Annotated:
        annotation = get_args(annotation)[0]

    # pydantic reports `X | None` without a member tag, so treat it as X.
    if _is_union(annotation):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(members) == 1:
            return _unwrap(members[0])
    return annotation


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (typing.Union, types.UnionType)


def _union_member(union: Any, tag: int | str) -> Any:
    # Tagged unions use the "type" value as the tag. Plain unions use a name
    # such as "str" or "dict[str,str]".
    for member in get_args(union):
        member = _unwrap(member)
        if isinstance(member, type) and issubclass(member, BaseModel):
            type_field = member.model_fields.get("type")
            if type_field and tag in get_args(type_field.annotation):
                return member
            continue

        name = getattr(get_origin(member) or member, "__name__", "")
        if name and str(tag).startswith(name):
            return member

    return None


def _union_tags(annotation: Any) -> list[Any]:
    tags: list[Any] = []
    for member in get_args(_unwrap(annotation)):
        member = _unwrap(member)
        if isinstance(member, type) and issubclass(member, BaseModel):
            type_field = member.model_fields.get("type")
            if type_field:
                tags.extend(get_args(type_field.annotation))
    return tags


def _join_key(parts: list[str]) -> str:
    return ".".join(parts)


def _describe_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"

    if isinstance(value, (str, int, float)):
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "..."

    return _describe_type(value)


def _describe_type(value: Any) -> str:
    if value is None:
        return "null"

    names = [
        (bool, "true or false"),
        (str, "a string"),
        (int, "an integer"),
        (float, "a number"),
        (dict, "a mapping"),
        (list, "a list"),
    ]
    for kind, name in names:
        if isinstance(value, kind):
            return name

    return f"a value of type {type(value).__name__}"
