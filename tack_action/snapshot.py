"""Daytona snapshots of a prepared repository: build, check and update.

A snapshot is built by creating a sandbox from the base image, cloning the
repository into its workdir, running ``project_setup.commands`` and
snapshotting the sandbox. Its name ends in a fingerprint of those inputs: the
setup commands, the base image and the repository's dependency manifests and
lock files. ``check`` compares the configured name with the fingerprint of
the current checkout, so a changed lock file makes the snapshot stale.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .config import TackConfig, project_config_path
from .errors import ConfigError, SandboxError, SandboxNotFound, TackError
from .sandbox import git
from .sandbox.daytona import DaytonaProvider, DaytonaSandbox

log = logging.getLogger(__name__)

# Dependency manifests and lock files, matched by file name at any depth.
MANIFEST_PATTERNS = (
    "pyproject.toml",
    "setup.py",
    "setup.cfg",
    "requirements*.txt",
    "Pipfile",
    "Pipfile.lock",
    "poetry.lock",
    "uv.lock",
    "pdm.lock",
    "package.json",
    "package-lock.json",
    "npm-shrinkwrap.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "bun.lockb",
    "go.mod",
    "go.sum",
    "Cargo.toml",
    "Cargo.lock",
    "Gemfile",
    "Gemfile.lock",
    "composer.json",
    "composer.lock",
    "mix.exs",
    "mix.lock",
    "pom.xml",
    "build.gradle",
    "build.gradle.kts",
    "gradle.lockfile",
    ".tool-versions",
    ".python-version",
    ".nvmrc",
)

# Characters of the fingerprint kept in the snapshot name.
DIGEST_CHARS = 12

# Seconds a snapshot build may take before it is abandoned.
BUILD_TIMEOUT_S = 1800.0

_NAME_TAIL = re.compile(r"-([0-9a-f]{12})$")
_SKIP_DIRS = {".git", "node_modules", ".venv", "venv", "target", "__pycache__"}


@dataclass
class Fingerprint:
    """The hash of a snapshot's inputs, and the inputs themselves."""

    digest: str
    image: str
    commands: list[str]
    files: dict[str, str] = field(default_factory=dict)

    @property
    def short(self) -> str:
        """Return the part of the digest that goes into snapshot names."""
        return self.digest[:DIGEST_CHARS]


@dataclass
class SnapshotStatus:
    """The verdict of ``check``: missing, stale or current, and why."""

    status: str
    reason: str
    configured: str
    expected: str
    fingerprint: Fingerprint

    def as_dict(self) -> dict[str, Any]:
        """Return the verdict as JSON-ready values."""
        return {
            "status": self.status,
            "reason": self.reason,
            "configured": self.configured,
            "expected": self.expected,
            "image": self.fingerprint.image,
            "setup_commands": self.fingerprint.commands,
            "files": self.fingerprint.files,
        }


def find_manifests(repo: Path) -> list[str]:
    """Return the repository's dependency manifests and lock files, sorted."""
    paths = _tracked_files(repo)
    if paths is None:
        paths = _walk_files(repo)
    return sorted(
        path
        for path in paths
        if any(fnmatch.fnmatch(Path(path).name, p) for p in MANIFEST_PATTERNS)
        and (repo / path).is_file()
    )


def _tracked_files(repo: Path) -> list[str] | None:
    try:
        result = subprocess.run(
            ["git", "-C", str(repo), "ls-files", "-co", "--exclude-standard", "-z"],
            capture_output=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return [p for p in result.stdout.decode("utf-8", "replace").split("\0") if p]


def _walk_files(repo: Path) -> list[str]:
    found = []
    for path in repo.rglob("*"):
        parts = set(path.relative_to(repo).parts)
        if path.is_file() and not parts & _SKIP_DIRS:
            found.append(path.relative_to(repo).as_posix())
    return found


def fingerprint(repo: Path, config: TackConfig, image: str) -> Fingerprint:
    """Hash the setup commands, the base image and the dependency files."""
    files = {
        path: hashlib.sha256((repo / path).read_bytes()).hexdigest()
        for path in find_manifests(repo)
    }
    commands = list(config.project_setup.commands)
    payload = json.dumps(
        {"image": image, "commands": commands, "files": files}, sort_keys=True
    )
    digest = hashlib.sha256(payload.encode()).hexdigest()
    return Fingerprint(digest, image, commands, files)


def snapshot_name(repo: Path, inputs: Fingerprint) -> str:
    """Return ``tack-<repository>-<fingerprint>``, the name of a snapshot."""
    slug = re.sub(r"[^a-z0-9]+", "-", repo.resolve().name.lower()).strip("-")
    return f"tack-{slug[:30] or 'repo'}-{inputs.short}"


def check_snapshot(
    provider: DaytonaProvider, repo: Path, config: TackConfig, image: str
) -> SnapshotStatus:
    """Tell whether the configured snapshot exists and matches the checkout."""
    current = fingerprint(repo, config, image)
    expected = snapshot_name(repo, current)
    configured = config.sandbox.daytona.snapshot

    def verdict(status: str, reason: str) -> SnapshotStatus:
        return SnapshotStatus(status, reason, configured, expected, current)

    if not configured:
        return verdict(
            "missing",
            "sandbox.daytona.snapshot is not set; run `tack-action snapshot update`",
        )
    state = snapshot_state(provider, configured)
    if state is None:
        return verdict(
            "missing", f"Daytona has no snapshot named {configured!r}; build it again"
        )
    if state in ("error", "build_failed"):
        return verdict("missing", f"snapshot {configured!r} is in the {state} state")

    tail = _NAME_TAIL.search(configured)
    if tail is None:
        return verdict(
            "stale",
            f"snapshot {configured!r} carries no fingerprint, so it may not match "
            "the setup commands, base image or dependency files",
        )
    if tail.group(1) != current.short:
        return verdict(
            "stale",
            f"the setup commands, base image {image!r} or dependency files "
            f"({', '.join(current.files) or 'none'}) changed since {configured!r} "
            f"was built: fingerprint {current.short}, snapshot {tail.group(1)}",
        )
    if state != "active":
        return verdict("stale", f"snapshot {configured!r} is {state}, not active")
    return verdict("current", f"snapshot {configured!r} matches the checkout")


def snapshot_state(provider: DaytonaProvider, name: str) -> str | None:
    """Return a snapshot's state, such as ``active``, or None when it is absent."""
    try:
        found = provider.call(
            f"reading snapshot {name!r}", lambda: provider.client.snapshot.get(name)
        )
    except SandboxNotFound:
        return None
    state = getattr(found, "state", None)
    return str(getattr(state, "value", state) or "unknown")


def build_snapshot(
    provider: DaytonaProvider,
    repo: Path,
    config: TackConfig,
    *,
    origin: str,
    name: str,
    git_env: dict[str, str] | None = None,
    timeout: float = BUILD_TIMEOUT_S,
) -> str:
    """Build snapshot ``name`` from a sandbox with the repository set up."""
    labels = {"tack.role": "snapshot", "tack.snapshot": name}
    builder = provider.create(f"{name}-build", labels)
    try:
        _set_up(builder, config, origin=origin, git_env=git_env or {})
        provider.call(
            f"snapshotting sandbox {builder.name!r} as {name!r}",
            lambda: builder.sdk.create_snapshot(name, timeout=timeout),
            idempotent=False,
        )
        _wait_until_active(provider, name, timeout)
    finally:
        builder.delete()
    log.info("Built snapshot %s", name)
    return name


def _set_up(
    sandbox: DaytonaSandbox,
    config: TackConfig,
    *,
    origin: str,
    git_env: dict[str, str],
) -> None:
    git.clone(sandbox, origin, env=git_env)
    base = config.daemon.base_branch
    git.checkout(sandbox, base)
    for command in config.project_setup.commands:
        result = sandbox.exec(command, timeout=BUILD_TIMEOUT_S)
        if result.exit_code != 0:
            raise SandboxError(
                f"project_setup command {command!r} failed with exit code "
                f"{result.exit_code} while building the snapshot; fix it in "
                f".tack/config.yaml:\n{result.output.strip()[-1500:]}"
            )


def _wait_until_active(provider: DaytonaProvider, name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        state = snapshot_state(provider, name)
        if state == "active":
            return
        if state in ("error", "build_failed"):
            raise SandboxError(
                f"Snapshot {name!r} ended in the {state} state; see its build logs "
                "in the Daytona dashboard."
            )
        if time.monotonic() > deadline:
            raise SandboxError(
                f"Snapshot {name!r} is still {state} after {timeout:.0f} s; check "
                "it in the Daytona dashboard."
            )
        time.sleep(1.0)


def origin_of(repo: Path) -> str:
    """Return the URL of the repository's ``origin``, or its own path."""
    result = subprocess.run(
        ["git", "-C", str(repo), "remote", "get-url", "origin"],
        capture_output=True,
        text=True,
    )
    if result.returncode == 0 and result.stdout.strip():
        return result.stdout.strip()
    return str(repo.resolve())


# Editing .tack/config.yaml.

_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][\w.-]*):(?P<rest>.*)$")


def write_snapshot_name(repo: Path, name: str) -> Path:
    """Set ``sandbox.daytona.snapshot`` in the project config, keeping the rest."""
    path = project_config_path(repo)
    text = path.read_text() if path.exists() else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(set_snapshot_in_yaml(text, name, source=str(path)))
    return path


def set_snapshot_in_yaml(text: str, name: str, *, source: str = "config") -> str:
    """Return ``text`` with ``sandbox.daytona.snapshot`` set to ``name``.

    Only the one line changes, or the missing lines are inserted, so comments,
    key order and formatting stay as they were.
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:/-]*", name):
        raise TackError(f"Invalid snapshot name {name!r}.")
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    path_keys = ["sandbox", "daytona", "snapshot"]
    start, end, indent = 0, len(lines), -1
    for depth, key in enumerate(path_keys):
        found = _find_key(lines, start, end, indent, key, source)
        if found is None:
            child = _child_indent(lines, start, end, indent)
            insert = _nested(path_keys[depth:], name, child)
            if depth == 0:
                lines.extend(insert)
            else:
                lines[start:start] = insert
            break
        line_no, own_indent, rest = found
        if depth == len(path_keys) - 1:
            comment = _trailing_comment(rest)
            lines[line_no] = f"{' ' * own_indent}snapshot: {name}{comment}\n"
            break
        if rest.strip() and not rest.strip().startswith("#"):
            raise ConfigError(
                source,
                ".".join(path_keys[: depth + 1]),
                f"the mapping {rest.strip()!r} is written inline, which tack-action "
                f"cannot edit safely; set sandbox.daytona.snapshot: {name} by hand",
            )
        start = line_no + 1
        end = _block_end(lines, start, own_indent)
        indent = own_indent
    updated = "".join(lines)
    _verify(updated, name, source)
    return updated


def _find_key(
    lines: list[str], start: int, end: int, parent: int, key: str, source: str
) -> tuple[int, int, str] | None:
    child = _child_indent(lines, start, end, parent)
    for number in range(start, end):
        match = _KEY.match(lines[number].rstrip("\n"))
        if match and len(match["indent"]) == child and match["key"] == key:
            return number, child, match["rest"]
    return None


def _child_indent(lines: list[str], start: int, end: int, parent: int) -> int:
    for number in range(start, end):
        stripped = lines[number].strip()
        if stripped and not stripped.startswith("#"):
            indent = len(lines[number]) - len(lines[number].lstrip(" "))
            if indent > parent:
                return indent
    return 0 if parent < 0 else parent + 2


def _block_end(lines: list[str], start: int, indent: int) -> int:
    for number in range(start, len(lines)):
        stripped = lines[number].strip()
        if not stripped or stripped.startswith("#"):
            continue
        if len(lines[number]) - len(lines[number].lstrip(" ")) <= indent:
            return number
    return len(lines)


def _nested(keys: list[str], name: str, indent: int) -> list[str]:
    step = 2
    out = []
    for offset, key in enumerate(keys):
        pad = " " * (indent + offset * step)
        out.append(f"{pad}{key}: {name}\n" if key == keys[-1] else f"{pad}{key}:\n")
    return out


def _trailing_comment(rest: str) -> str:
    match = re.search(r"\s+#.*$", rest)
    return match.group(0) if match else ""


def _verify(text: str, name: str, source: str) -> None:
    data = yaml.safe_load(text) or {}
    try:
        value = data["sandbox"]["daytona"]["snapshot"]
    except (KeyError, TypeError):
        value = None
    if value != name:
        raise ConfigError(
            source,
            "sandbox.daytona.snapshot",
            f"the edited file reads {value!r} instead of {name!r}; set it by hand",
        )
