"""Running quality gates and attributing their failures to file scopes.

Gates are shell commands that run in order in a sandbox, and a non-zero exit
is a failure. With no scope (post-merge gates on the integrated result) the
first failure stops the chain and fails the report.

With a stream's file scope, the failing output is searched for paths of files
in the repository. The failure counts against the stream when the output names
no file at all, or names at least one file inside the scope. When every named
file is outside the scope the failure is attributed elsewhere: it does not fail
the stream, because pre-existing errors in other files must not block it, and
post-merge gates catch breakage between streams. Such a failure does not stop
the chain either, so the remaining gates still check the stream's own files.
"""

from __future__ import annotations

import logging
import posixpath
import re
import time
from dataclasses import dataclass, field
from functools import lru_cache

from .recovery import FIX_CONTEXT_LIMIT, truncate_context
from .sandbox.base import Sandbox

logger = logging.getLogger(__name__)

# Seconds one gate command may run, per stream and after each merge.
GATE_TIMEOUT_S = 30 * 60

# Characters that end a path token in tool output: whitespace, quotes,
# brackets and the separators of "key=value, key=value" annotations.
_TOKEN_RE = re.compile(r"[^\s'\"`()<>\[\]{},;=|]+")

# A trailing ":12", ":12:3" or ":12:3:" location after a file name.
_LOCATION_RE = re.compile(r"(?::\d+)+:?$")

# Lists every tracked file and every untracked file that is not ignored, so
# files a builder created but has not committed yet are recognised too.
_LIST_FILES = "git ls-files -z --cached --others --exclude-standard"


@dataclass
class GateResult:
    """The outcome of one quality gate command."""

    command: str
    exit_code: int
    output: str
    duration_s: float


@dataclass
class GateReport:
    """The outcome of a chain of gates and where its failures were attributed.

    ``failed`` is the gate that failed the report, if any. The path lists
    cover every failing gate that ran, and ``attributed_elsewhere`` is true
    when at least one gate failed only on files outside the scope.
    """

    results: list[GateResult] = field(default_factory=list)
    passed: bool = True
    failed: GateResult | None = None
    in_scope_paths: list[str] = field(default_factory=list)
    out_of_scope_paths: list[str] = field(default_factory=list)
    attributed_elsewhere: bool = False

    def fix_context(self, limit: int = FIX_CONTEXT_LIMIT) -> str:
        """Describe the failed gate for the builder, keeping the output's end."""
        if self.failed is None:
            return ""

        lines = [
            f"Quality gate failed: {self.failed.command}",
            f"Exit code: {self.failed.exit_code}",
        ]
        if self.in_scope_paths:
            named = ", ".join(self.in_scope_paths)
            lines.append(f"Files in your scope named in the output: {named}")
        lines.append("Output:")
        lines.append(truncate_context(self.failed.output, limit))
        return "\n".join(lines)


def run_gates(
    sandbox: Sandbox,
    commands: list[str],
    *,
    scope: list[str] | None = None,
    timeout: float | None = None,
    env: dict[str, str] | None = None,
) -> GateReport:
    """Run gate commands in order in the sandbox's workdir and attribute failures.

    A gate that times out raises ``SandboxError`` from ``Sandbox.exec``, like
    any other failure to run a command.
    """
    report = GateReport()
    known_files: set[str] | None = None

    for command in commands:
        started = time.monotonic()
        executed = sandbox.exec(command, env=env, timeout=timeout)
        result = GateResult(
            command=command,
            exit_code=executed.exit_code,
            output=executed.output,
            duration_s=time.monotonic() - started,
        )
        report.results.append(result)
        logger.info(
            "quality gate %r exited with %d in %.1fs",
            command,
            result.exit_code,
            result.duration_s,
        )
        if result.exit_code == 0:
            continue

        if scope is None:
            _fail(report, result)
            break

        if known_files is None:
            known_files = list_files(sandbox)
        paths = extract_paths(result.output, known_files, sandbox.workdir)
        inside = [p for p in paths if in_scope(p, scope)]
        outside = [p for p in paths if p not in inside]
        _extend_unique(report.in_scope_paths, inside)
        _extend_unique(report.out_of_scope_paths, outside)

        if not paths or inside:
            _fail(report, result)
            break

        report.attributed_elsewhere = True
        logger.info(
            "quality gate %r failed only on files outside the scope: %s",
            command,
            ", ".join(outside),
        )

    return report


def list_files(sandbox: Sandbox) -> set[str]:
    """Return the repository's tracked and untracked, not ignored, files."""
    result = sandbox.exec(_LIST_FILES)
    if result.exit_code != 0:
        # Without the file list no path can be recognised, so every failure
        # counts against the stream, which is the safe direction.
        logger.warning(
            "cannot list repository files in %s (exit code %d): %s",
            sandbox.workdir,
            result.exit_code,
            result.output.strip()[-500:],
        )
        return set()
    return {name for name in result.output.split("\0") if name}


def extract_paths(output: str, known_files: set[str], workdir: str) -> list[str]:
    """Return repository files named in tool output, in order of appearance.

    Tokens lose line and column suffixes (``x.py:12:3``), pytest node ids
    (``x.py::test_a``), the workdir prefix and a leading ``./``. Only files in
    ``known_files`` are kept, so a version number counts only when a file has
    that name, and URLs never count. A relative name that is not a known path
    (Go test output prints ``x_test.go:12``) matches every known file ending in
    ``/<name>``. When the name is ambiguous, one candidate inside the scope is
    enough to fail the stream, so a guess never lets an error through.
    """
    prefix = workdir.rstrip("/") + "/"
    by_basename: dict[str, list[str]] = {}
    for known in sorted(known_files):
        by_basename.setdefault(posixpath.basename(known), []).append(known)
    found: list[str] = []
    seen: set[str] = set()

    # Tool output repeats the same tokens often, so each is cleaned only once.
    for token in dict.fromkeys(_TOKEN_RE.findall(output)):
        candidate = _clean_token(token, prefix)
        if not candidate:
            continue
        for path in _match_known(candidate, known_files, by_basename):
            if path not in seen:
                seen.add(path)
                found.append(path)
    return found


def in_scope(path: str, globs: list[str]) -> bool:
    """Return whether a repository path matches any of the file scope globs.

    ``**`` matches any number of directories, ``*`` and ``?`` never cross a
    ``/``, and a glob without wildcards (``src/api`` or ``src/api/``) matches
    that file or everything under that directory.
    """
    path = _strip_dot_slash(path)
    for glob in globs:
        glob = _strip_dot_slash(glob.strip()).lstrip("/")
        if not glob:
            continue
        if not _has_wildcard(glob):
            directory = glob.rstrip("/")
            if path == directory or path.startswith(directory + "/"):
                return True
            continue
        if glob.endswith("/"):
            glob += "**"
        if _glob_regex(glob).fullmatch(path):
            return True
    return False


def _fail(report: GateReport, result: GateResult) -> None:
    report.passed = False
    report.failed = result


def _extend_unique(target: list[str], items: list[str]) -> None:
    for item in items:
        if item not in target:
            target.append(item)


def _clean_token(token: str, workdir_prefix: str) -> str:
    """Turn one output token into a candidate repository-relative path."""
    token = token.split("::", 1)[0]
    token = token.rstrip(".:")
    token = _LOCATION_RE.sub("", token)
    if token.startswith("file://"):
        token = token[len("file://") :]
    if token.startswith(workdir_prefix):
        token = token[len(workdir_prefix) :]
    if "://" in token or token.startswith("/"):
        return ""

    normal = posixpath.normpath(token)
    if normal in (".", "") or normal.startswith("../"):
        return ""
    return normal


def _match_known(
    candidate: str, known_files: set[str], by_basename: dict[str, list[str]]
) -> list[str]:
    if candidate in known_files:
        return [candidate]
    # Only a name with an extension is matched by its trailing path, so words
    # such as "error" or "main" never match a file.
    basename = posixpath.basename(candidate)
    if "." not in basename:
        return []
    suffix = "/" + candidate
    return [f for f in by_basename.get(basename, []) if f.endswith(suffix)]


def _strip_dot_slash(text: str) -> str:
    while text.startswith("./"):
        text = text[2:]
    return text


def _has_wildcard(glob: str) -> bool:
    return any(char in glob for char in "*?[")


@lru_cache(maxsize=256)
def _glob_regex(glob: str) -> re.Pattern[str]:
    """Translate a scope glob into a regular expression for whole paths."""
    parts: list[str] = []
    index = 0
    while index < len(glob):
        if glob.startswith("**/", index):
            # "**/" matches zero or more whole directories.
            parts.append(r"(?:[^/]+/)*")
            index += 3
        elif glob.startswith("**", index):
            parts.append(r".*")
            index += 2
        elif glob[index] == "*":
            parts.append(r"[^/]*")
            index += 1
        elif glob[index] == "?":
            parts.append(r"[^/]")
            index += 1
        elif glob[index] == "[":
            end = glob.find("]", index + 2)
            if end == -1:
                parts.append(re.escape("["))
                index += 1
            else:
                parts.append(_character_class(glob[index + 1 : end]))
                index = end + 1
        else:
            parts.append(re.escape(glob[index]))
            index += 1
    return re.compile("".join(parts))


def _character_class(content: str) -> str:
    """Translate the inside of a glob's ``[...]`` into a regex class."""
    negate = content.startswith("!")
    if negate:
        content = content[1:]
    # Escaping every character except "-" keeps ranges such as "a-z" working.
    escaped = "".join(char if char == "-" else re.escape(char) for char in content)
    return ("[^/" if negate else "[") + escaped + "]"
