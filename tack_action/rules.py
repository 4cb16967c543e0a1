"""Scoped rules: Markdown files whose bodies are added to agent prompts.

Rules live in ``<repo>/.tack/rules/*.md`` (project) and
``~/.config/tack/rules/*.md`` (user). Each file starts with YAML frontmatter:

    ---
    scope: "src/api/**"        # required; a glob or a list of globs
    priority: high             # high or normal (default)
    tools: {exclude: [bash]}   # optional include/exclude lists
    ---
    Rule text in Markdown.

A rule applies to a stream when one of its globs overlaps one of the stream's
file-scope globs, that is, when some path could match both. Applicable rules
are sorted high priority first, then by source path, and high-priority bodies
are prefixed with "IMPORTANT CONSTRAINT:".
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import ConfigError

logger = logging.getLogger(__name__)

PRIORITIES = ("high", "normal")
IMPORTANT_PREFIX = "IMPORTANT CONSTRAINT:"

_FRONTMATTER_FENCE = "---"


@dataclass(frozen=True)
class Rule:
    """One scoped rule file."""

    source: str
    scope: tuple[str, ...]
    body: str
    priority: str = "normal"
    tools: dict[str, list[str]] = field(default_factory=dict)


def user_rules_dir() -> Path:
    """Return ``~/.config/tack/rules``."""
    return Path("~/.config/tack/rules").expanduser()


def load_rules(repo: str | Path, user_dir: str | Path | None = None) -> list[Rule]:
    """Read every rule file of the project and the user, in source-path order.

    Raises ConfigError for a file without frontmatter, without ``scope``,
    or with an unknown ``priority``.
    """
    directories = [
        Path(repo) / ".tack" / "rules",
        Path(user_dir) if user_dir is not None else user_rules_dir(),
    ]
    rules = []
    for directory in directories:
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.md")):
            rules.append(parse_rule(path))
    return rules


def parse_rule(path: Path) -> Rule:
    """Parse one rule file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, "", f"failed to read the rule file: {exc}.") from exc

    lines = text.replace("\r\n", "\n").split("\n")
    if not lines or lines[0].strip() != _FRONTMATTER_FENCE:
        raise ConfigError(
            path,
            "",
            "a rule file must start with YAML frontmatter between '---' lines "
            "that sets at least `scope`.",
        )
    try:
        end = next(
            index
            for index, line in enumerate(lines[1:], start=1)
            if line.strip() == _FRONTMATTER_FENCE
        )
    except StopIteration:
        raise ConfigError(
            path, "", "the frontmatter has no closing '---' line."
        ) from None

    try:
        meta = yaml.safe_load("\n".join(lines[1:end])) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(path, "", f"invalid YAML frontmatter: {exc}.") from exc
    if not isinstance(meta, dict):
        raise ConfigError(path, "", "the frontmatter must be a mapping.")

    return Rule(
        source=str(path),
        scope=_read_scope(path, meta.get("scope")),
        body="\n".join(lines[end + 1 :]).strip(),
        priority=_read_priority(path, meta.get("priority", "normal")),
        tools=_read_tools(path, meta.get("tools")),
    )


def select_rules(rules: list[Rule], file_scope: list[str]) -> list[Rule]:
    """Return the rules that overlap ``file_scope``, high priority first.

    An empty file scope means the whole repository, so every rule applies.
    """
    scope = file_scope or ["**"]
    chosen = [
        rule
        for rule in rules
        if any(globs_overlap(mine, theirs) for mine in rule.scope for theirs in scope)
    ]
    return sorted(chosen, key=lambda rule: (rule.priority != "high", rule.source))


def render_rules(
    repo: str | Path, file_scope: list[str], *, user_dir: str | Path | None = None
) -> str:
    """Return the prompt section with the rules for ``file_scope``, or ``""``."""
    rules = select_rules(load_rules(repo, user_dir), file_scope)
    bodies = [rule for rule in rules if rule.body]
    if not bodies:
        return ""

    parts = ["## Rules", ""]
    for rule in bodies:
        text = rule.body
        if rule.priority == "high":
            text = f"{IMPORTANT_PREFIX} {text}"
        parts += [text, ""]
    logger.debug("added %d rules for scope %s", len(bodies), file_scope)
    return "\n".join(parts)


def globs_overlap(first: str, second: str) -> bool:
    """Return whether some repository path matches both globs.

    Globs use the file-scope syntax: ``**`` matches any number of
    directories, ``*`` and ``?`` never cross ``/``, ``[...]`` is a character
    class, and a glob without wildcards also matches everything under it.
    """
    return _intersects(_compile(_normalize(first)), _compile(_normalize(second)))


# --- glob automata -----------------------------------------------------------
#
# Each glob becomes a small nondeterministic automaton whose transitions carry
# a character set: a literal, "any character but /", "any character", or a
# bracket class. Two globs overlap when the product of their automata can
# reach a pair of accepting states, stepping only on sets that share a
# character.

_ANY = ("any",)
_NOT_SLASH = ("not-slash",)

# Appended to a glob without wildcards; NUL cannot occur in a path or a glob.
_DIRECTORY_SUFFIX = "\0/**"


@dataclass(frozen=True)
class _Automaton:
    # transitions[state] is a list of (label, next state); epsilon moves have
    # the label None.
    transitions: tuple[tuple[tuple[tuple | None, int], ...], ...]
    accept: frozenset[int]


def _normalize(glob: str) -> str:
    glob = glob.strip().removeprefix("./").lstrip("/")
    if not glob:
        return "**"
    if not any(char in glob for char in "*?["):
        # A plain path names a file or a directory with everything below it.
        return glob.rstrip("/") + _DIRECTORY_SUFFIX
    if glob.endswith("/"):
        glob += "**"
    return glob


@functools.lru_cache(maxsize=512)
def _compile(glob: str) -> _Automaton:
    moves: list[list[tuple[tuple | None, int]]] = [[]]

    def add_state() -> int:
        moves.append([])
        return len(moves) - 1

    state = 0
    index = 0
    while index < len(glob):
        if glob.startswith(_DIRECTORY_SUFFIX, index):
            # Optional "/" followed by anything: the directory suffix.
            tail = add_state()
            moves[state].append((("literal", "/"), tail))
            moves[tail].append((_ANY, tail))
            final = add_state()
            moves[state].append((None, final))
            moves[tail].append((None, final))
            state = final
            index += len(_DIRECTORY_SUFFIX)
            continue
        if glob.startswith("**/", index):
            # Zero or more whole directories: ([^/]+/)*
            name = add_state()
            nxt = add_state()
            moves[state].append((None, nxt))
            moves[state].append((_NOT_SLASH, name))
            moves[name].append((_NOT_SLASH, name))
            moves[name].append((("literal", "/"), state))
            state = nxt
            index += 3
            continue
        if glob.startswith("**", index):
            nxt = add_state()
            moves[state].append((_ANY, state))
            moves[state].append((None, nxt))
            state = nxt
            index += 2
            continue

        char = glob[index]
        nxt = add_state()
        if char == "*":
            moves[state].append((_NOT_SLASH, state))
            moves[state].append((None, nxt))
        elif char == "?":
            moves[state].append((_NOT_SLASH, nxt))
        elif char == "[" and "]" in glob[index + 1 :]:
            label, index = _read_class(glob, index)
            moves[state].append((label, nxt))
            state = nxt
            continue
        else:
            moves[state].append((("literal", char), nxt))
        state = nxt
        index += 1

    frozen = tuple(tuple(edges) for edges in moves)
    return _Automaton(frozen, frozenset({state}))


def _read_class(glob: str, start: int) -> tuple[tuple, int]:
    index = start + 1
    negated = index < len(glob) and glob[index] in "!^"
    if negated:
        index += 1
    members = set()
    first = True
    while index < len(glob) and (glob[index] != "]" or first):
        if index + 2 < len(glob) and glob[index + 1] == "-" and glob[index + 2] != "]":
            low, high = glob[index], glob[index + 2]
            members.update(chr(code) for code in range(ord(low), ord(high) + 1))
            index += 3
        else:
            members.add(glob[index])
            index += 1
        first = False
    members.discard("/")
    return ("class", negated, frozenset(members)), index + 1


def _labels_meet(first: tuple, second: tuple) -> bool:
    """Return whether two transition labels share at least one character."""
    if first == _ANY:
        return _label_nonempty(second)
    if second == _ANY:
        return _label_nonempty(first)
    if first[0] == "literal":
        return _accepts(second, first[1])
    if second[0] == "literal":
        return _accepts(first, second[1])
    if first == _NOT_SLASH:
        return _label_nonempty(second)
    if second == _NOT_SLASH:
        return _label_nonempty(first)

    _, first_negated, first_members = first
    _, second_negated, second_members = second
    if first_negated and second_negated:
        return True
    if first_negated:
        return bool(second_members - first_members)
    if second_negated:
        return bool(first_members - second_members)
    return bool(first_members & second_members)


def _label_nonempty(label: tuple) -> bool:
    if label[0] == "class" and not label[1]:
        return bool(label[2])
    return True


def _accepts(label: tuple, char: str) -> bool:
    if label == _ANY:
        return True
    if label == _NOT_SLASH:
        return char != "/"
    if label[0] == "literal":
        return label[1] == char
    _, negated, members = label
    if char == "/":
        return False
    return (char in members) != negated


def _closure(automaton: _Automaton, states: set[int]) -> set[int]:
    stack = list(states)
    seen = set(states)
    while stack:
        state = stack.pop()
        for label, target in automaton.transitions[state]:
            if label is None and target not in seen:
                seen.add(target)
                stack.append(target)
    return seen


def _intersects(first: _Automaton, second: _Automaton) -> bool:
    start = (0, 0)
    stack = [start]
    seen = {start}
    while stack:
        left, right = stack.pop()
        left_states = _closure(first, {left})
        right_states = _closure(second, {right})
        if left_states & first.accept and right_states & second.accept:
            return True
        for a in left_states:
            for label_a, target_a in first.transitions[a]:
                if label_a is None:
                    continue
                for b in right_states:
                    for label_b, target_b in second.transitions[b]:
                        if label_b is None or not _labels_meet(label_a, label_b):
                            continue
                        pair = (target_a, target_b)
                        if pair not in seen:
                            seen.add(pair)
                            stack.append(pair)
    return False


def _read_scope(path: Path, value: object) -> tuple[str, ...]:
    if isinstance(value, str) and value.strip():
        return (value.strip(),)
    if (
        isinstance(value, list)
        and value
        and all(isinstance(item, str) and item.strip() for item in value)
    ):
        return tuple(item.strip() for item in value)
    raise ConfigError(
        path,
        "scope",
        f"scope is required and must be a glob or a list of globs, got {value!r}; "
        'use `scope: "**"` for a rule that applies everywhere.',
    )


def _read_priority(path: Path, value: object) -> str:
    if value in PRIORITIES:
        return str(value)
    raise ConfigError(
        path, "priority", f"priority must be 'high' or 'normal', got {value!r}."
    )


def _read_tools(path: Path, value: object) -> dict[str, list[str]]:
    # NOTE: tool lists are validated and kept on the Rule, but no runtime
    # applies them yet; agents see only the rule body.
    if value is None:
        return {}
    if isinstance(value, dict) and set(value) <= {"include", "exclude"}:
        lists = {key: items for key, items in value.items() if items is not None}
        if all(
            isinstance(items, list) and all(isinstance(i, str) for i in items)
            for items in lists.values()
        ):
            return {key: list(items) for key, items in lists.items()}
    raise ConfigError(
        path,
        "tools",
        "tools must be a mapping with `include` and/or `exclude` lists of tool "
        f"names, got {value!r}.",
    )
