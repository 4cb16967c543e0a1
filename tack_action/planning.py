"""Parsing and validating the planner's output into a plan.

The planner's final message contains one fenced YAML block::

    streams:
      - title: API endpoints
        description: Add the /items endpoints.
        file_scope: ["src/api/**"]
        dependencies: []
    quality_gates:
      - pytest -q

Everything in the planner's text is data: it is parsed with a PyYAML safe
loader only, never executed or interpolated, and its size is capped before
parsing. Unknown keys and duplicate keys are errors, as in config files.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml

from .config import StrictSafeLoader
from .errors import PlanError
from .model import Plan, Stream, slugify

logger = logging.getLogger(__name__)

# Planner output is a few kilobytes. The cap keeps runaway or hostile output
# from costing parse time and memory.
MAX_PLAN_BYTES = 256 * 1024

# Aliases let a small YAML document describe a huge tree (the "billion laughs"
# attack). Walking the loaded value stops after this many visits, which is far
# more than any real plan needs.
MAX_PLAN_VALUES = 20_000

SLUG_MAX_LENGTH = 30

# Slugs that other names are built from: the merge branch tack/<id>/merge and
# the merger and planner sandboxes tack-<id>-merge and tack-<id>-planner. A
# stream whose title slugifies to one of them gets "-stream" appended.
RESERVED_SLUGS = frozenset({"merge", "planner"})

STREAM_KEYS = ("title", "description", "file_scope", "dependencies")
PLAN_KEYS = ("streams", "quality_gates")

# An opening fence of three or more backticks with an optional info string,
# then everything up to a closing fence of the same length on its own line.
# A block cut off before its closing fence runs to the end of the text.
_FENCE_RE = re.compile(
    r"^[ \t]{0,3}(?P<fence>`{3,})[ \t]*(?P<info>[^\n`]*)\n"
    r"(?P<body>.*?)"
    r"(?:^[ \t]{0,3}(?P=fence)[ \t]*$|\Z)",
    re.MULTILINE | re.DOTALL,
)
_STREAMS_KEY_RE = re.compile(r"^\s*streams\s*:", re.MULTILINE)
_YAML_LANGUAGES = {"yaml", "yml"}


def parse_plan_output(text: str, *, max_streams: int = 8) -> Plan:
    """Build a validated draft plan from the planner's final message."""
    _check_size(len(text.encode("utf-8")), "The planner output")
    document = _find_plan_document(text)
    plan = _build_plan(document, raw_output=text)
    validate_plan(plan, max_streams=max_streams)
    return plan


def load_plan_file(path: str | Path, *, max_streams: int = 8) -> Plan:
    """Load a plan from a YAML file or from a text file with a fenced block."""
    path = Path(path)
    text = _read_plan_file(path)

    if path.suffix.lower() not in (".yaml", ".yml"):
        return parse_plan_output(text, max_streams=max_streams)

    document = _load_yaml(text, f"plan file {str(path)!r}")
    if not isinstance(document, dict) or "streams" not in document:
        raise PlanError(
            f"Plan file {str(path)!r} must contain a mapping with a 'streams' "
            "key at the top level."
        )
    plan = _build_plan(document, raw_output=text)
    validate_plan(plan, max_streams=max_streams)
    return plan


def _read_plan_file(path: Path) -> str:
    """Read a regular file of at most MAX_PLAN_BYTES as UTF-8 text."""
    source = f"Plan file {str(path)!r}"
    try:
        # Checked before opening, because opening a FIFO blocks until a
        # writer appears, and a device such as /dev/zero reports size 0.
        _check_regular(path.stat().st_mode, path)

        # O_NONBLOCK keeps the open from blocking if the path was swapped for
        # a FIFO after the check; it has no effect on reading a regular file.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(descriptor, "rb") as file:
            _check_regular(os.fstat(file.fileno()).st_mode, path)
            data = file.read(MAX_PLAN_BYTES + 1)
    except OSError as exc:
        raise PlanError(f"Cannot read plan file {str(path)!r}: {exc}.") from exc

    if len(data) > MAX_PLAN_BYTES:
        raise PlanError(
            f"{source} is larger than the {MAX_PLAN_BYTES} bytes allowed. "
            "Shorten the plan."
        )

    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PlanError(
            f"{source} is not valid UTF-8 (byte offset {exc.start}). Save it as UTF-8."
        ) from exc


def _check_regular(mode: int, path: Path) -> None:
    if not stat.S_ISREG(mode):
        raise PlanError(
            f"Plan file {str(path)!r} is not a regular file (it is a device, "
            "FIFO, socket or directory). Pass the path of a YAML or text file."
        )


def validate_plan(plan: Plan, *, max_streams: int) -> None:
    """Raise ``PlanError`` unless the plan's streams and gates are usable."""
    if not plan.streams:
        raise PlanError("The plan has no streams. Add at least one stream.")
    if len(plan.streams) > max_streams:
        raise PlanError(
            f"The plan has {len(plan.streams)} streams but at most {max_streams} "
            "are allowed. Ask for fewer streams, or raise planning.max_streams "
            "in .tack/config.yaml."
        )

    titles: set[str] = set()
    for index, stream in enumerate(plan.streams, start=1):
        _check_title(stream.title, index)
        if stream.title in titles:
            raise PlanError(
                f"Stream title {stream.title!r} is used more than once. "
                "Give every stream a unique title."
            )
        titles.add(stream.title)

    for stream in plan.streams:
        _check_file_scope(stream)
        _check_dependencies(stream, titles)

    _check_quality_gates(plan.quality_gates)
    _check_acyclic(plan)


def dependency_order(plan: Plan) -> list[Stream]:
    """Return the streams with each after its dependencies, ties in plan order."""
    placed: set[str] = set()
    ordered: list[Stream] = []
    remaining = list(plan.streams)
    while remaining:
        ready = next(
            (s for s in remaining if all(d in placed for d in s.dependencies)), None
        )
        if ready is None:
            names = ", ".join(repr(s.title) for s in remaining)
            raise PlanError(
                f"Streams {names} depend on unknown streams or on each other in "
                "a cycle. Fix their dependencies."
            )
        ordered.append(ready)
        placed.add(ready.title)
        remaining.remove(ready)
    return ordered


def dependants(plan: Plan, title: str) -> list[Stream]:
    """Return every stream that depends on ``title`` directly or transitively."""
    if not any(s.title == title for s in plan.streams):
        known = ", ".join(repr(s.title) for s in plan.streams)
        raise PlanError(f"No stream has the title {title!r}. Streams: {known}.")

    affected = {title}
    changed = True
    while changed:
        changed = False
        for stream in plan.streams:
            if stream.title in affected:
                continue
            if any(d in affected for d in stream.dependencies):
                affected.add(stream.title)
                changed = True
    return [s for s in plan.streams if s.title in affected and s.title != title]


def _check_size(size: int, source: str) -> None:
    if size > MAX_PLAN_BYTES:
        raise PlanError(
            f"{source} is {size} bytes, more than the {MAX_PLAN_BYTES} bytes "
            "allowed. Ask the planner for a shorter answer."
        )


def _find_plan_document(text: str) -> dict[str, Any]:
    """Return the last fenced YAML mapping that has a ``streams`` key."""
    # Fences are matched per line, so Windows line endings are normalised first.
    text = text.replace("\r\n", "\n")
    blocks = list(_FENCE_RE.finditer(text))
    for block in reversed(blocks):
        language = block.group("info").strip().split(" ")[0].lower()
        if language and language not in _YAML_LANGUAGES:
            continue
        body = block.group("body")
        try:
            document = _load_yaml(body, "the planner's YAML block")
        except PlanError:
            # A broken block that was clearly meant as the plan must not be
            # skipped in favour of an earlier draft, but a broken unrelated
            # snippet (shell output in a bare fence) can be.
            if language and _STREAMS_KEY_RE.search(body):
                raise
            continue
        if isinstance(document, dict) and "streams" in document:
            return document

    raise PlanError(
        "The planner output contains no fenced YAML block with a 'streams' key. "
        "The final message must end with one ```yaml block listing the streams."
    )


def _load_yaml(text: str, source: str) -> Any:
    try:
        document = yaml.load(text, Loader=StrictSafeLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        raise PlanError(f"Invalid YAML in {source}: {exc}") from exc
    _check_value_count(document)
    return document


def _check_value_count(document: Any) -> None:
    """Reject documents whose aliases expand into an oversized tree."""
    budget = MAX_PLAN_VALUES
    pending = [document]
    while pending:
        value = pending.pop()
        budget -= 1
        if budget < 0:
            raise PlanError(
                f"The plan expands to more than {MAX_PLAN_VALUES} values. "
                "Remove YAML anchors and aliases that repeat large structures."
            )
        if isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)


def _build_plan(document: dict[str, Any], *, raw_output: str) -> Plan:
    _check_keys(document, PLAN_KEYS, "The plan")
    raw_streams = document.get("streams")
    if not isinstance(raw_streams, list):
        raise PlanError(
            f"'streams' must be a list of mappings, not {_describe(raw_streams)}."
        )

    streams = [_build_stream(raw, index) for index, raw in enumerate(raw_streams, 1)]
    _resolve_dependency_case(streams)
    _assign_slugs(streams)

    gates = document.get("quality_gates")
    if gates is None:
        gates = []
    if not isinstance(gates, list):
        raise PlanError(
            f"'quality_gates' must be a list of commands, not {_describe(gates)}."
        )
    for gate in gates:
        if not isinstance(gate, str):
            raise PlanError(
                f"Every quality gate must be a command string; got {_describe(gate)}."
            )

    return Plan(
        streams=streams, quality_gates=[g.strip() for g in gates], raw_output=raw_output
    )


def _build_stream(raw: Any, index: int) -> Stream:
    if not isinstance(raw, dict):
        raise PlanError(
            f"Stream {index} must be a mapping with title, description, "
            f"file_scope and dependencies, not {_describe(raw)}."
        )

    title = raw.get("title")
    label = f"Stream {index}"
    if isinstance(title, str) and title.strip():
        label = f"Stream {title.strip()!r}"
    _check_keys(raw, STREAM_KEYS, label)
    _check_title(title, index)
    title = title.strip()

    description = raw.get("description")
    if description is None:
        description = ""
    if not isinstance(description, str):
        raise PlanError(
            f"Stream {title!r}: 'description' must be a string, "
            f"not {_describe(description)}."
        )

    file_scope = _string_list(raw.get("file_scope"), title, "file_scope")
    dependencies = _string_list(raw.get("dependencies"), title, "dependencies")
    return Stream(
        title=title,
        description=description.strip(),
        file_scope=[g.strip() for g in file_scope],
        dependencies=[d.strip() for d in dependencies],
    )


def _check_keys(mapping: dict[Any, Any], allowed: tuple[str, ...], owner: str) -> None:
    for key in mapping:
        if key not in allowed:
            raise PlanError(
                f"{owner} has the unknown key {_describe(key)}. Allowed keys: "
                f"{', '.join(allowed)}."
            )


def _string_list(value: Any, title: str, field: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise PlanError(
            f"Stream {title!r}: {field!r} must be a list of strings, "
            f"not {_describe(value)}."
        )
    for item in value:
        if not isinstance(item, str):
            raise PlanError(
                f"Stream {title!r}: every entry in {field!r} must be a string; "
                f"got {_describe(item)}."
            )
    return value


def _resolve_dependency_case(streams: list[Stream]) -> None:
    """Map each dependency that matches one title case-insensitively to it."""
    titles = {s.title for s in streams}
    by_folded: dict[str, list[str]] = {}
    for stream in streams:
        by_folded.setdefault(stream.title.casefold(), []).append(stream.title)

    for stream in streams:
        resolved = []
        for dependency in stream.dependencies:
            candidates = by_folded.get(dependency.casefold(), [])
            if dependency not in titles and len(candidates) == 1:
                dependency = candidates[0]
            resolved.append(dependency)
        stream.dependencies = resolved


def _assign_slugs(streams: list[Stream]) -> None:
    """Give each stream a unique, unreserved slug, adding -2, -3 within the limit."""
    used: set[str] = set(RESERVED_SLUGS)
    for stream in streams:
        base = slugify(stream.title, SLUG_MAX_LENGTH)
        if base in RESERVED_SLUGS:
            base = f"{base}-stream"
        slug = base
        number = 2
        while slug in used:
            suffix = f"-{number}"
            slug = base[: SLUG_MAX_LENGTH - len(suffix)].rstrip("-") + suffix
            number += 1
        used.add(slug)
        stream.slug = slug


def _check_title(title: Any, index: int) -> None:
    if not isinstance(title, str):
        raise PlanError(
            f"Stream {index}: 'title' must be a string, not {_describe(title)}."
        )
    if not title.strip():
        raise PlanError(f"Stream {index} has an empty title. Give it a title.")


def _check_file_scope(stream: Stream) -> None:
    scope = stream.file_scope
    if not isinstance(scope, list) or not scope:
        raise PlanError(
            f"Stream {stream.title!r}: 'file_scope' must be a non-empty list of "
            "globs relative to the repository root, such as 'src/api/**'."
        )
    for glob in scope:
        if not isinstance(glob, str) or not glob.strip():
            raise PlanError(
                f"Stream {stream.title!r}: every entry in 'file_scope' must be a "
                f"non-empty string; got {_describe(glob)}."
            )
        if _is_absolute(glob):
            raise PlanError(
                f"Stream {stream.title!r}: file scope {glob!r} is absolute. Use a "
                "path relative to the repository root."
            )
        if ".." in re.split(r"[/\\]", glob):
            raise PlanError(
                f"Stream {stream.title!r}: file scope {glob!r} contains a '..' "
                "segment. Use a path inside the repository."
            )


def _is_absolute(glob: str) -> bool:
    return (
        glob.startswith(("/", "\\", "~")) or re.match(r"^[A-Za-z]:", glob) is not None
    )


def _check_dependencies(stream: Stream, titles: set[str]) -> None:
    if not isinstance(stream.dependencies, list):
        raise PlanError(
            f"Stream {stream.title!r}: 'dependencies' must be a list of stream "
            f"titles, not {_describe(stream.dependencies)}."
        )
    for dependency in stream.dependencies:
        if not isinstance(dependency, str):
            raise PlanError(
                f"Stream {stream.title!r}: every entry in 'dependencies' must be "
                f"a stream title; got {_describe(dependency)}."
            )
        if dependency == stream.title:
            raise PlanError(
                f"Stream {stream.title!r} depends on itself. Remove it from its "
                "own dependencies."
            )
        if dependency not in titles:
            known = ", ".join(repr(t) for t in sorted(titles))
            raise PlanError(
                f"Stream {stream.title!r} depends on {dependency!r}, which is not "
                f"a stream title in this plan. Known titles: {known}."
            )


def _check_quality_gates(gates: Any) -> None:
    if not isinstance(gates, list):
        raise PlanError(
            f"'quality_gates' must be a list of commands, not {_describe(gates)}."
        )
    for gate in gates:
        if not isinstance(gate, str) or not gate.strip():
            raise PlanError(
                "Every quality gate must be a non-empty command; "
                f"got {_describe(gate)}."
            )


def _check_acyclic(plan: Plan) -> None:
    """Raise with the titles of the first dependency cycle found, in order."""
    edges = {s.title: s.dependencies for s in plan.streams}
    done: set[str] = set()

    for start in edges:
        if start in done:
            continue
        # An explicit stack of (title, next dependency index) avoids recursion
        # limits and keeps the current path for naming the cycle.
        path: list[str] = [start]
        on_path = {start}
        stack: list[tuple[str, int]] = [(start, 0)]
        while stack:
            title, position = stack[-1]
            dependencies = edges[title]
            if position == len(dependencies):
                stack.pop()
                path.pop()
                on_path.discard(title)
                done.add(title)
                continue
            stack[-1] = (title, position + 1)
            dependency = dependencies[position]
            if dependency in on_path:
                cycle = path[path.index(dependency) :] + [dependency]
                chain = " -> ".join(repr(t) for t in cycle)
                raise PlanError(
                    f"The stream dependencies form a cycle: {chain}. Remove one "
                    "of these dependencies."
                )
            if dependency not in done:
                path.append(dependency)
                on_path.add(dependency)
                stack.append((dependency, 0))


def _describe(value: Any) -> str:
    """Name a value for an error message without printing a large structure."""
    if isinstance(value, str):
        return repr(value if len(value) <= 80 else value[:77] + "...")
    if value is None or isinstance(value, (bool, int, float)):
        return f"{type(value).__name__} {value!r}"
    return f"a {type(value).__name__}"
