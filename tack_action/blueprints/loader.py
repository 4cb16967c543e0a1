"""Reading blueprint files: YAML parsing, error translation and layering.

Layers, later ones winning by blueprint ``id``: the built-in blueprints
shipped in this package, the user layer (``~/.config/tack/blueprints``),
then the project layer (``<repo>/.tack/blueprints``). Filenames do not
matter, and files in one directory are read in sorted order.
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ..errors import BlueprintError
from .model import Blueprint
from .validation import MAX_REF_DEPTH, validate_blueprints

logger = logging.getLogger(__name__)

BUILTIN_PREFIX = "builtin:"
BLUEPRINT_SUFFIXES = (".yaml", ".yml")


def default_user_dir() -> Path:
    """Return the user layer's blueprint directory, ``~/.config/tack/blueprints``."""
    return Path.home() / ".config" / "tack" / "blueprints"


def load_blueprints(
    repo: str | Path | None,
    *,
    user_dir: str | Path | None = None,
    max_depth: int = MAX_REF_DEPTH,
) -> dict[str, Blueprint]:
    """Load the built-in, user and project blueprints, validated, keyed by id."""
    user = Path(user_dir) if user_dir is not None else default_user_dir()
    layers: list[tuple[str, list[Blueprint]]] = [
        ("built-in", load_builtin_blueprints()),
        ("user", read_blueprint_dir(user)),
    ]
    if repo is not None:
        layers.append(
            ("project", read_blueprint_dir(Path(repo) / ".tack" / "blueprints"))
        )

    loaded: dict[str, Blueprint] = {}
    for layer, blueprints in layers:
        layer_sources: dict[str, str] = {}
        for blueprint in blueprints:
            _log_override(layer, blueprint, loaded.get(blueprint.id), layer_sources)
            layer_sources[blueprint.id] = blueprint.source
            loaded[blueprint.id] = blueprint

    validate_blueprints(loaded, max_depth=max_depth)
    logger.debug("Loaded blueprints: %s", ", ".join(sorted(loaded)))

    return loaded


def _log_override(
    layer: str,
    blueprint: Blueprint,
    previous: Blueprint | None,
    layer_sources: dict[str, str],
) -> None:
    if previous is None:
        return

    # Two files of one directory with the same id is more often a copy
    # left behind than a deliberate override, so it gets a warning.
    if blueprint.id in layer_sources:
        logger.warning(
            "Blueprint id %r is defined in both %s and %s; the later file, %s, is used",
            blueprint.id,
            previous.source,
            blueprint.source,
            blueprint.source,
        )
        return

    logger.info(
        "The %s blueprint %r from %s overrides the one from %s",
        layer,
        blueprint.id,
        blueprint.source,
        previous.source,
    )


def load_builtin_blueprints() -> list[Blueprint]:
    """Parse the blueprints shipped in ``tack_action/blueprints/builtin``."""
    folder = resources.files(__package__).joinpath("builtin")
    entries = [e for e in folder.iterdir() if e.name.endswith(BLUEPRINT_SUFFIXES)]

    return [
        parse_blueprint(entry.read_text(encoding="utf-8"), BUILTIN_PREFIX + entry.name)
        for entry in sorted(entries, key=lambda e: e.name)
    ]


def read_blueprint_dir(directory: Path) -> list[Blueprint]:
    """Parse every ``*.yaml`` and ``*.yml`` file in ``directory``, sorted by name."""
    if not directory.exists():
        return []

    if not directory.is_dir():
        raise BlueprintError(
            f"{directory}: expected a directory of blueprint YAML files, found a "
            f"file; move it away or turn it into a directory"
        )

    paths = sorted(
        p for p in directory.iterdir() if p.suffix in BLUEPRINT_SUFFIXES and p.is_file()
    )

    return [parse_blueprint(_read_text(path), str(path)) for path in paths]


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BlueprintError(f"{path}: cannot read blueprint file: {exc}") from exc


def parse_blueprint(text: str, source: str) -> Blueprint:
    """Parse one blueprint file's text; ``source`` names it in error messages."""
    root, data = _parse_yaml(text, source)

    if not isinstance(data, dict):
        raise BlueprintError(
            f"{source}:{root.start_mark.line + 1}: expected a mapping with the keys "
            f"'id' and 'steps', got {_type_name(data)}"
        )

    if "source" in data:
        raise BlueprintError(
            f"{_where(source, root, ('source',))}: {_blueprint_label(data)}: "
            f"unknown key 'source'; remove it, because the loader records the "
            f"file a blueprint came from by itself"
        )

    try:
        blueprint = Blueprint.model_validate({**data, "source": source})
    except ValidationError as exc:
        problems = [_describe_error(err, data, root, source) for err in exc.errors()]
        raise BlueprintError("\n".join(problems)) from exc

    for index, step in enumerate(blueprint.steps):
        step._line = _node_line(root, ("steps", index))

    return blueprint


def _parse_yaml(text: str, source: str) -> tuple[Node, Any]:
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise BlueprintError(
                f"{source}:1: the file is empty; a blueprint file needs at least "
                f"'id' and 'steps'"
            )
        _reject_duplicate_keys(root, source)
        data = loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = exc.problem or exc.context or "invalid YAML"
        raise BlueprintError(
            f"{source}:{line}: invalid YAML: {problem}; fix the syntax on that line"
        ) from exc
    except yaml.YAMLError as exc:
        raise BlueprintError(f"{source}: invalid YAML: {exc}") from exc
    finally:
        loader.dispose()

    return root, data


def _reject_duplicate_keys(node: Node, source: str) -> None:
    # PyYAML keeps the last of two equal keys without a word, which would
    # silently drop half of a step, so duplicates are rejected here.
    if isinstance(node, MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if isinstance(key, ScalarNode):
                if key.value in seen:
                    raise BlueprintError(
                        f"{source}:{key.start_mark.line + 1}: duplicate key "
                        f"{key.value!r}; remove one of the two"
                    )
                seen.add(key.value)
            _reject_duplicate_keys(value, source)

    elif isinstance(node, SequenceNode):
        for item in node.value:
            _reject_duplicate_keys(item, source)


def _describe_error(error: Any, data: dict[str, Any], root: Node, source: str) -> str:
    loc = tuple(error["loc"])
    subject = _blueprint_label(data)

    key_path = loc
    if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
        subject = f"{subject}, {_step_label(data, loc[1])}"
        key_path = loc[2:]

    parts = [_where(source, root, loc), subject]

    if key_path and error["type"] not in ("missing", "extra_forbidden", "too_short"):
        parts.append("key " + repr(".".join(str(p) for p in key_path)))

    return ": ".join(parts) + ": " + _problem_text(error)


def _blueprint_label(data: dict[str, Any]) -> str:
    blueprint_id = data.get("id")
    if isinstance(blueprint_id, str) and blueprint_id:
        return f"blueprint {blueprint_id!r}"

    return "blueprint without an id"


def _step_label(data: dict[str, Any], index: int) -> str:
    steps = data.get("steps")
    step = steps[index] if isinstance(steps, list) and index < len(steps) else None
    if isinstance(step, dict) and isinstance(step.get("id"), str):
        return f"step {step['id']!r}"

    return f"step #{index + 1} (no id)"


def _problem_text(error: Any) -> str:
    kind = error["type"]
    last = error["loc"][-1] if error["loc"] else ""
    message = str(error["msg"])

    if kind == "missing":
        return f"missing required key {last!r}"
    if kind == "extra_forbidden":
        return f"unknown key {last!r}; check its spelling or remove it"
    if kind == "value_error":
        return message.removeprefix("Value error, ")
    if kind == "too_short":
        return f"{last!r} is empty; add at least one entry"
    if kind == "literal_error":
        return f"invalid value {error['input']!r}: {message}"

    return f"{message} (got {error['input']!r})"


def _where(source: str, root: Node, loc: tuple[Any, ...]) -> str:
    return f"{source}:{_node_line(root, loc)}"


def _node_line(root: Node, loc: tuple[Any, ...]) -> int:
    # Walk the YAML node tree along a pydantic error location and return
    # the 1-based line of the deepest node that exists.
    node = root
    line = root.start_mark.line
    for part in loc:
        if isinstance(node, MappingNode) and isinstance(part, str):
            match = [(k, v) for k, v in node.value if getattr(k, "value", None) == part]
            if not match:
                break
            key, node = match[0]
            line = key.start_mark.line
        elif isinstance(node, SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line
        else:
            break

    return line + 1


def _type_name(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"

    return f"a {type(value).__name__} ({value!r})"
