"""Local sandboxes: one directory per sandbox on the machine running the job.

Layout of a sandbox named ``<name>`` under the provider's root::

    <root>/<name>/sandbox.json   id, name, labels, env, state, created_at
    <root>/<name>/repo/          the workdir; empty until the caller clones
    <root>/<name>/tmp/           the tmpdir: HOME, prompts, command logs

Isolation is by process only: commands run as the same user as the
orchestrator. What the provider does guarantee is that no command inherits the
orchestrator's environment, which contains the GitHub and Daytona tokens.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from ..errors import SandboxError, SandboxNotFound
from .base import ExecResult

logger = logging.getLogger(__name__)

_RECORD_FILE = "sandbox.json"
_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_COMMAND_ID_PATTERN = re.compile(r"cmd-[0-9a-f]{16}")
_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"

# Seconds between SIGTERM and SIGKILL when a command is killed.
KILL_GRACE_S = 2.0

# The wrapper runs the command, then records its exit code in a file, so any
# process can learn the code later. The file is written under a temporary name
# and renamed, so a reader never sees a half-written code.
_WRAPPER = (
    'bash -c "$1"; code=$?; printf "%s\\n" "$code" >"$2.tmp"; mv -f "$2.tmp" "$2"'
)

# The launcher starts the wrapper in the background and exits at once. The
# wrapper is then no child of the orchestrator, so it keeps running (and is
# reaped by init) when the orchestrator exits or is killed. It stays in the
# launcher's process group, whose id is the launcher's pid.
_LAUNCHER = 'bash -c "$1" tack-wrapper "$2" "$3" &'


class LocalProvider:
    """Provider that creates sandboxes as directories under ``root``."""

    name = "local"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def create(
        self,
        name: str,
        labels: dict[str, str],
        env: dict[str, str] | None = None,
        resources: dict[str, int] | None = None,
    ) -> LocalSandbox:
        """Create and start an empty sandbox directory named ``name``."""
        _check_name(name)
        directory = self.root / name
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            directory.mkdir()
        except FileExistsError as exc:
            raise SandboxError(
                f"A local sandbox named {name!r} already exists at {str(directory)!r}; "
                "delete it or choose another name."
            ) from exc

        (directory / "repo").mkdir()
        (directory / "tmp" / "home").mkdir(parents=True)
        (directory / "tmp" / "commands").mkdir()
        record = {
            "id": name,
            "name": name,
            "labels": dict(labels),
            "env": dict(env or {}),
            "state": "started",
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        _write_record(directory, record)

        # Local sandboxes share the machine, so CPU, memory and disk requests
        # have nothing to apply to.
        logger.info("created local sandbox %s at %s", name, directory)
        return LocalSandbox(directory, record)

    def find(self, labels: dict[str, str]) -> list[LocalSandbox]:
        """Return every sandbox whose labels include all of ``labels``."""
        found = []
        for record_path in sorted(self.root.glob(f"*/{_RECORD_FILE}")):
            try:
                record = _read_record(record_path.parent)
            except SandboxError as exc:
                logger.warning("skipping unreadable local sandbox: %s", exc)
                continue
            own = record.get("labels", {})
            if all(own.get(key) == value for key, value in labels.items()):
                found.append(LocalSandbox(record_path.parent, record))
        return found

    def get(self, sandbox_id: str) -> LocalSandbox:
        """Return the sandbox with this id, or raise SandboxNotFound."""
        if not _NAME_PATTERN.fullmatch(sandbox_id):
            raise SandboxNotFound(f"No local sandbox has the id {sandbox_id!r}.")
        directory = self.root / sandbox_id
        if not (directory / _RECORD_FILE).is_file():
            raise SandboxNotFound(
                f"No local sandbox has the id {sandbox_id!r} under {str(self.root)!r}."
            )
        return LocalSandbox(directory, _read_record(directory))


class LocalSandbox:
    """A sandbox directory with a repository checkout and a private tmpdir."""

    def __init__(self, directory: Path, record: dict) -> None:
        self.directory = directory
        self.id: str = record["id"]
        self.name: str = record["name"]
        self.labels: dict[str, str] = dict(record.get("labels", {}))
        self.env: dict[str, str] = dict(record.get("env", {}))
        self.workdir = str(directory / "repo")
        self.tmpdir = str(directory / "tmp")
        self._running: set[subprocess.Popen[bytes]] = set()

    def __repr__(self) -> str:
        return f"LocalSandbox(id={self.id!r}, directory={str(self.directory)!r})"

    def exec(
        self,
        command: str,
        *,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> ExecResult:
        """Run ``command`` with bash and wait for it. A timeout raises SandboxError."""
        self._check_started()
        try:
            process = subprocess.Popen(
                ["bash", "-c", command],
                cwd=self._resolve_cwd(cwd),
                env=self._build_env(env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise SandboxError(
                f"Cannot start bash in sandbox {self.name!r}: {exc}; check that "
                "bash is installed and on PATH."
            ) from exc
        self._running.add(process)
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            _kill_group(process.pid, grace_s=0)
            _reap(process)
            raise SandboxError(
                f"Command {command!r} in sandbox {self.name!r} timed out after "
                f"{timeout} seconds and was killed; raise the timeout or make the "
                "command finish sooner."
            ) from exc
        finally:
            self._running.discard(process)
        return ExecResult(process.returncode, output.decode("utf-8", "replace"))

    def start_command(
        self,
        command: str,
        *,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
    ) -> LocalCommand:
        """Start ``command`` in the background and return its handle."""
        self._check_started()
        command_id = f"cmd-{uuid.uuid4().hex[:16]}"
        commands = Path(self.tmpdir) / "commands"
        commands.mkdir(parents=True, exist_ok=True)
        handle = LocalCommand(command_id, commands)

        with open(handle.log_path, "ab") as log:
            launcher = subprocess.Popen(
                [
                    "bash",
                    "-c",
                    _LAUNCHER,
                    "tack-launcher",
                    _WRAPPER,
                    command,
                    str(handle.exit_path),
                ],
                cwd=self._resolve_cwd(cwd),
                env=self._build_env(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            launcher.wait()
        handle.pid_path.write_text(f"{launcher.pid}\n")
        logger.debug("started command %s in sandbox %s", command_id, self.name)
        return handle

    def get_command(self, command_id: str) -> LocalCommand:
        """Reattach to a command started earlier, possibly by another process."""
        commands = Path(self.tmpdir) / "commands"
        handle = LocalCommand(command_id, commands)
        if (
            not _COMMAND_ID_PATTERN.fullmatch(command_id)
            or not handle.pid_path.exists()
        ):
            raise SandboxError(
                f"No command with id {command_id!r} was started in sandbox "
                f"{self.name!r}."
            )
        return handle

    def upload(self, data: bytes, path: str) -> None:
        """Write ``data`` to ``path``, which must lie inside the sandbox directory."""
        target = self._resolve_path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def download(self, path: str) -> bytes:
        """Read the file at ``path``, which must lie inside the sandbox directory."""
        target = self._resolve_path(path)
        try:
            return target.read_bytes()
        except OSError as exc:
            raise SandboxError(
                f"Cannot read {path!r} in sandbox {self.name!r}: {exc.strerror}."
            ) from exc

    def state(self) -> str:
        """Return ``started`` or ``stopped``, as last recorded."""
        return _read_record(self.directory).get("state", "started")

    def start(self) -> None:
        """Record the sandbox as started so it accepts commands again."""
        self._set_state("started")

    def stop(self) -> None:
        """Kill every running command and record the sandbox as stopped."""
        self._kill_all()
        self._set_state("stopped")

    def delete(self) -> None:
        """Kill every running command and remove the sandbox directory."""
        self._kill_all()
        shutil.rmtree(self.directory, ignore_errors=False)
        logger.info("deleted local sandbox %s", self.name)

    def _check_started(self) -> None:
        state = self.state()
        if state != "started":
            raise SandboxError(f"Sandbox {self.name!r} is {state}; start it first.")

    def _set_state(self, state: str) -> None:
        record = _read_record(self.directory)
        record["state"] = state
        _write_record(self.directory, record)

    def _kill_all(self) -> None:
        for process in list(self._running):
            _kill_group(process.pid, grace_s=0)
        for pid_path in (Path(self.tmpdir) / "commands").glob("*.pid"):
            LocalCommand(pid_path.stem, pid_path.parent).kill()

    def _build_env(self, extra: dict[str, str] | None) -> dict[str, str]:
        # Start from an empty environment because the orchestrator's own contains
        # tokens.
        env = {
            "PATH": os.environ.get("PATH") or _DEFAULT_PATH,
            "HOME": str(Path(self.tmpdir) / "home"),
            "TMPDIR": self.tmpdir,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
            # Git must never find a repository above the sandbox's own clone,
            # such as a project that contains the worktree directory.
            "GIT_CEILING_DIRECTORIES": str(Path(self.workdir).parent),
        }
        for name in ("LANG", "LC_ALL"):
            if name in os.environ:
                env[name] = os.environ[name]
        env.update(self.env)
        env.update(extra or {})
        return env

    def _resolve_cwd(self, cwd: str | None) -> str:
        directory = Path(self.workdir) / (cwd or "")
        if not directory.is_dir():
            raise SandboxError(
                f"The working directory {cwd!r} does not exist in sandbox "
                f"{self.name!r}; create it or pass another cwd."
            )
        return str(directory)

    def _resolve_path(self, path: str) -> Path:
        # Resolve symbolic links first, so a link planted inside the checkout
        # cannot point an upload or download outside the sandbox.
        root = os.path.realpath(self.directory)
        target = os.path.realpath(os.path.join(self.workdir, path))
        if os.path.commonpath([root, target]) != root:
            raise SandboxError(
                f"The path {path!r} lies outside sandbox {self.name!r}; use a path "
                f"under {root!r}."
            )
        return Path(target)


class LocalCommand:
    """A background command, tracked through files so any process can reattach."""

    def __init__(self, command_id: str, directory: Path) -> None:
        self.id = command_id
        self.log_path = directory / f"{command_id}.log"
        self.exit_path = directory / f"{command_id}.exit"
        self.pid_path = directory / f"{command_id}.pid"

    def poll(self) -> int | None:
        """Return the exit code, None while it runs, or -1 if it vanished."""
        code = self._read_exit_code()
        if code is not None:
            return code
        if _group_alive(self._pgid()):
            return None

        # The wrapper may have written the file between the two checks.
        code = self._read_exit_code()
        return -1 if code is None else code

    def logs(self) -> str:
        """Return everything the command has written so far."""
        try:
            return self.log_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def kill(self) -> None:
        """Stop the command and every process it started, if any still run."""
        pgid = self._pgid()
        if pgid is not None:
            _kill_group(pgid, grace_s=KILL_GRACE_S)

    def _pgid(self) -> int | None:
        try:
            return int(self.pid_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def _read_exit_code(self) -> int | None:
        try:
            return int(self.exit_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None


def _check_name(name: str) -> None:
    if not _NAME_PATTERN.fullmatch(name):
        raise SandboxError(
            f"Invalid sandbox name {name!r}: use letters, digits, '.', '_' and '-', "
            "starting with a letter or digit, at most 128 characters."
        )


def _read_record(directory: Path) -> dict:
    path = directory / _RECORD_FILE
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise SandboxNotFound(
            f"The local sandbox at {str(directory)!r} no longer exists."
        ) from exc
    except (OSError, ValueError) as exc:
        raise SandboxError(f"Cannot read {str(path)!r}: {exc}.") from exc
    if not isinstance(record, dict) or "id" not in record or "name" not in record:
        raise SandboxError(f"{str(path)!r} is not a local sandbox record.")
    return record


def _write_record(directory: Path, record: dict) -> None:
    path = directory / _RECORD_FILE
    partial = path.with_suffix(".json.tmp")
    partial.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    os.replace(partial, path)


def _group_alive(pgid: int | None) -> bool:
    """Return whether a session-leading process group has a live member."""
    if pgid is None:
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True

    # An exited process stays a zombie until its parent reaps it, and some
    # container init processes never reap orphans. A zombie still passes
    # the signal 0 check, so on Linux look at each member's state in /proc. Requiring
    # the session id to match too keeps a recycled pid from passing as ours,
    # because every group this module starts leads its own session.
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        return True
    for stat_path in proc.glob("[0-9]*/stat"):
        try:
            stat = stat_path.read_text()
        except OSError:
            continue
        # The command name may contain spaces and parentheses, so split after
        # its closing parenthesis: state ppid pgrp session ...
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) < 4 or fields[0] in ("Z", "X"):
            continue
        if int(fields[2]) == pgid and int(fields[3]) == pgid:
            return True
    return False


def _kill_group(pgid: int, *, grace_s: float) -> None:
    """Send SIGTERM to a process group, then SIGKILL after ``grace_s`` seconds."""
    signals = [signal.SIGTERM, signal.SIGKILL] if grace_s > 0 else [signal.SIGKILL]
    for number in signals:
        if not _group_alive(pgid):
            return
        try:
            os.killpg(pgid, number)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and _group_alive(pgid):
            time.sleep(0.05)


def _reap(process: subprocess.Popen[bytes]) -> None:
    # A process that escaped the group may still hold the output pipe open,
    # so stop waiting for end-of-file after a short while.
    try:
        process.communicate(timeout=2)
    except subprocess.TimeoutExpired:
        if process.stdout is not None:
            process.stdout.close()
        process.wait()
