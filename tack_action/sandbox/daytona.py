"""The Daytona sandbox provider, built on the ``daytona`` SDK 0.226.1.

Each sandbox is a Daytona sandbox whose user home contains the repository
checkout (``<home>/repo``) and a private scratch directory (``<home>/.tack``).
Long-running commands run in one Daytona session per sandbox. Every SDK call
goes through ``call_with_retry``, which retries transient failures and turns
SDK exceptions into ``SandboxError``.

``import daytona`` happens inside the provider, because the first import of
the SDK's client costs about a second and ~90 MB.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import shlex
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from ..errors import SandboxError, SandboxNotFound
from .base import ExecResult
from .daytona_retry import call_with_retry

log = logging.getLogger(__name__)

T = TypeVar("T")

# NOTE: Daytona's own default image when no snapshot is configured. The tag
# follows Daytona's published sandbox image and may need bumping with the SDK.
DEFAULT_IMAGE = "daytonaio/sandbox:0.4.3"

# The session that runs every long-running command of a sandbox.
SESSION_ID = "tack"

# Refresh the sandbox's activity timestamp at most this often while a command
# runs, because processes inside a sandbox do not count as activity and the
# auto-stop timer would otherwise stop the sandbox under a long agent run.
ACTIVITY_REFRESH_SECONDS = 60.0

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WAITING_TO_START = {
    "creating",
    "starting",
    "restoring",
    "pending_build",
    "building_snapshot",
    "pulling_snapshot",
    "resuming",
    "resizing",
    "snapshotting",
    "forking",
}
_WAITING_TO_STOP = {"stopping", "archiving", "pausing"}
_STARTABLE = {"stopped", "archived", "paused"}
_GONE = {"destroyed", "destroying"}


def _is_cause(error: BaseException, class_name: str) -> bool:
    """Tell whether ``error`` was raised from a daytona exception of this class."""
    cause = error.__cause__
    return cause is not None and any(
        klass.__name__ == class_name for klass in type(cause).__mro__
    )


class DaytonaProvider:
    """Creates, finds and reattaches Daytona sandboxes for one repository."""

    name = "daytona"

    def __init__(
        self,
        api_key: str,
        api_url: str | None = None,
        *,
        snapshot: str = "",
        resources: dict[str, int] | None = None,
        auto_stop_interval: int = 30,
        auto_delete_interval: int = 1440,
        repo_label: str = "",
        image: str = DEFAULT_IMAGE,
        retry_deadline: float = 120.0,
        start_timeout: float = 180.0,
    ) -> None:
        if not api_key:
            raise SandboxError(
                "The Daytona API key is empty. Set the DAYTONA_API_KEY secret or run "
                "`tack-action auth` to store one."
            )
        self._api_key = api_key
        self._api_url = api_url.rstrip("/") if api_url else None
        self.snapshot = snapshot
        self.resources = dict(resources or {})
        self.auto_stop_interval = auto_stop_interval
        self.auto_delete_interval = auto_delete_interval
        self.repo_label = repo_label
        self.image = image
        self.retry_deadline = retry_deadline
        self.start_timeout = start_timeout
        self._client: Any = None
        self._client_lock = threading.Lock()

    @property
    def client(self) -> Any:
        """Return the SDK client, creating it on first use."""
        with self._client_lock:
            if self._client is None:
                from daytona import Daytona, DaytonaConfig

                # An explicit config keeps the SDK from reading .env files.
                config = DaytonaConfig(api_key=self._api_key, api_url=self._api_url)
                self._client = call_with_retry(
                    "connecting to Daytona",
                    lambda: Daytona(config),
                    deadline=self.retry_deadline,
                )
            return self._client

    def call(self, action: str, call: Callable[[], T], *, idempotent: bool = True) -> T:
        """Run one SDK call with retries and error translation."""
        return call_with_retry(
            action, call, deadline=self.retry_deadline, idempotent=idempotent
        )

    def create(
        self,
        name: str,
        labels: dict[str, str],
        env: dict[str, str] | None = None,
        resources: dict[str, int] | None = None,
    ) -> DaytonaSandbox:
        """Create and start a sandbox, with its workdir and tmpdir in place."""
        params = self._create_params(name, labels, env, resources)
        sdk_sandbox = self.call(
            f"creating sandbox {name!r}", lambda: self._create_or_adopt(params)
        )
        sandbox = DaytonaSandbox(self, sdk_sandbox)
        sandbox.mark_started()
        log.info("Created Daytona sandbox %s (%s)", sandbox.name, sandbox.id)

        sandbox.prepare_directories()
        return sandbox

    def _create_params(
        self,
        name: str,
        labels: dict[str, str],
        env: dict[str, str] | None,
        resources: dict[str, int] | None,
    ) -> Any:
        from daytona import (
            CreateSandboxFromImageParams,
            CreateSandboxFromSnapshotParams,
            Resources,
        )

        common: dict[str, Any] = {
            "name": name,
            "labels": self._scoped(labels),
            "env_vars": dict(env or {}),
            "auto_stop_interval": self.auto_stop_interval,
            "auto_delete_interval": self.auto_delete_interval,
        }
        if self.snapshot:
            if resources:
                log.debug("Ignoring resources for %s: snapshots fix them", name)
            return CreateSandboxFromSnapshotParams(snapshot=self.snapshot, **common)

        wanted = {**self.resources, **(resources or {})}
        return CreateSandboxFromImageParams(
            image=self.image,
            resources=Resources(**_daytona_resources(wanted)),
            **common,
        )

    def _create_or_adopt(self, params: Any) -> Any:
        from daytona import DaytonaConflictError

        try:
            return self.client.create(params, timeout=self.start_timeout)
        except DaytonaConflictError:
            # A retried create whose first attempt reached the server finds
            # its own sandbox under the same name, so adopt it when the labels
            # show it belongs to this stream.
            existing = self.client.get(params.name)
            wanted = {k: v for k, v in params.labels.items() if k.startswith("tack.")}
            if any(existing.labels.get(k) != v for k, v in wanted.items()):
                raise SandboxError(
                    f"A Daytona sandbox named {params.name!r} already exists with "
                    f"other labels {existing.labels!r}. Delete it, or run "
                    "`tack-action cleanup`, and try again."
                ) from None
            log.info("Adopting existing Daytona sandbox %s", params.name)
            return existing

    def _scoped(self, labels: dict[str, str]) -> dict[str, str]:
        scoped = dict(labels)
        if self.repo_label:
            scoped.setdefault("tack.repo", self.repo_label)
        return scoped

    def find(self, labels: dict[str, str]) -> list[DaytonaSandbox]:
        """Return the live sandboxes whose labels include ``labels`` (and the repo)."""
        from daytona import ListSandboxesQuery

        query = ListSandboxesQuery(labels=self._scoped(labels))
        found = self.call(
            f"listing sandboxes with labels {query.labels!r}",
            lambda: list(self.client.list(query)),
        )
        return [
            DaytonaSandbox(self, sdk_sandbox)
            for sdk_sandbox in found
            if _state_name(sdk_sandbox) not in _GONE
        ]

    def get(self, sandbox_id: str) -> DaytonaSandbox:
        """Return the sandbox with this id or name, started and ready to use."""
        sdk_sandbox = self.call(
            f"reading sandbox {sandbox_id!r}",
            lambda: self.client.get(sandbox_id, request_timeout=30),
        )
        sandbox = DaytonaSandbox(self, sdk_sandbox)
        sandbox.ensure_started()
        return sandbox

    def find_or_create(
        self,
        name: str,
        labels: dict[str, str],
        env: dict[str, str] | None = None,
        resources: dict[str, int] | None = None,
    ) -> tuple[DaytonaSandbox, bool]:
        """Reuse the sandbox with these labels, or create one; return it and
        whether it is new."""
        for sandbox in self.find(labels):
            try:
                sandbox.ensure_started()
            except SandboxNotFound:
                continue
            except SandboxError as exc:
                log.warning(
                    "Sandbox %s (%s) cannot be reused, creating a new one: %s",
                    sandbox.name,
                    sandbox.id,
                    exc,
                )
                sandbox.delete()
                continue
            sandbox.prepare_directories()
            return sandbox, False
        return self.create(name, labels, env, resources), True


def _daytona_resources(resources: dict[str, int]) -> dict[str, int]:
    """Convert tack resources (memory in MB, disk in GB) to Daytona's GiB units."""
    converted = {
        key: int(resources[key]) for key in ("cpu", "disk", "gpu") if key in resources
    }
    if "memory" in resources:
        converted["memory"] = max(1, math.ceil(int(resources["memory"]) / 1024))
    return converted


def _state_name(sdk_sandbox: Any) -> str:
    state = getattr(sdk_sandbox, "state", None)
    return str(getattr(state, "value", state) or "unknown")


class DaytonaSandbox:
    """One Daytona sandbox behind the ``Sandbox`` protocol."""

    def __init__(self, provider: DaytonaProvider, sdk_sandbox: Any) -> None:
        self.provider = provider
        self.sdk = sdk_sandbox
        self.id: str = sdk_sandbox.id
        self.name: str = sdk_sandbox.name
        self.labels: dict[str, str] = dict(sdk_sandbox.labels or {})
        self._home: str | None = None
        self._started = False
        self._session_ready = False
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"DaytonaSandbox(id={self.id!r}, name={self.name!r})"

    @property
    def workdir(self) -> str:
        """Return the repository checkout path inside the sandbox."""
        return f"{self._home_dir()}/repo"

    @property
    def tmpdir(self) -> str:
        """Return the private scratch directory, outside the checkout."""
        return f"{self._home_dir()}/.tack"

    def _home_dir(self) -> str:
        with self._lock:
            if self._home is None:
                home = self.toolbox(
                    "reading the home directory", self.sdk.get_user_home_dir
                )
                self._home = str(home).rstrip("/") or "/"
            return self._home

    # Lifecycle.

    def mark_started(self) -> None:
        """Record that the sandbox is known to be started."""
        self._started = True

    def state(self) -> str:
        """Return the sandbox's current Daytona state, such as ``started``."""
        self.provider.call(f"reading sandbox {self.name!r}", self.sdk.refresh_data)
        return _state_name(self.sdk)

    def ensure_started(self) -> None:
        """Start, wait for or recover the sandbox until it is ``started``."""
        with self._lock:
            self._ensure_started()

    def _ensure_started(self) -> None:
        timeout = self.provider.start_timeout
        state = self.state()
        if state in _WAITING_TO_STOP:
            self.provider.call(
                f"waiting for sandbox {self.name!r} to stop",
                lambda: self.sdk.wait_for_sandbox_stop(timeout=timeout),
            )
            state = self.state()

        if state in _STARTABLE:
            log.info(
                "Starting sandbox %s (%s), which was %s", self.name, self.id, state
            )
            # Archived sandboxes are restored from object storage first.
            factor = 3 if state == "archived" else 1
            self.provider.call(
                f"starting sandbox {self.name!r}",
                lambda: self.sdk.start(timeout=timeout * factor),
            )
        elif state in _WAITING_TO_START:
            self.provider.call(
                f"waiting for sandbox {self.name!r} to start",
                lambda: self.sdk.wait_for_sandbox_start(timeout=timeout),
            )
        elif state in ("error", "build_failed"):
            self._recover(state)
        elif state in _GONE:
            raise SandboxNotFound(
                f"Sandbox {self.name!r} ({self.id}) is {state}; create a new one."
            )
        elif state != "started":
            raise SandboxError(
                f"Sandbox {self.name!r} ({self.id}) is in the unexpected state "
                f"{state!r}. Check it in the Daytona dashboard, or delete it with "
                "`tack-action cleanup`."
            )
        self._started = True

    def _recover(self, state: str) -> None:
        reason = getattr(self.sdk, "error_reason", None) or "no reason given"
        if not getattr(self.sdk, "recoverable", False):
            raise SandboxError(
                f"Sandbox {self.name!r} ({self.id}) is in the {state!r} state and "
                f"cannot be recovered: {reason}. Delete it with `tack-action cleanup` "
                "so the next run creates a new one."
            )
        log.warning(
            "Recovering sandbox %s (%s) from %s: %s", self.name, self.id, state, reason
        )
        self.provider.call(
            f"recovering sandbox {self.name!r}",
            lambda: self.sdk.recover(timeout=self.provider.start_timeout),
        )

    def start(self) -> None:
        """Start the sandbox unless it already runs."""
        self.ensure_started()

    def stop(self) -> None:
        """Stop the sandbox and wait until it is stopped."""
        self.provider.call(
            f"stopping sandbox {self.name!r}",
            lambda: self.sdk.stop(timeout=self.provider.start_timeout),
        )
        with self._lock:
            self._started = False
            self._session_ready = False

    def delete(self) -> None:
        """Delete the sandbox; a sandbox that is already gone is fine."""
        try:
            self.provider.call(
                f"deleting sandbox {self.name!r}",
                lambda: self.sdk.delete(timeout=self.provider.start_timeout),
            )
        except SandboxNotFound:
            log.info("Sandbox %s (%s) was already deleted", self.name, self.id)

    def refresh_activity(self) -> None:
        """Reset the sandbox's auto-stop timer."""
        self.provider.call(
            f"refreshing activity of sandbox {self.name!r}",
            lambda: self.sdk.refresh_activity(request_timeout=30),
        )

    # Toolbox calls.

    def toolbox(
        self, action: str, call: Callable[[], T], *, idempotent: bool = True
    ) -> T:
        """Run a toolbox call, starting the sandbox first when it has stopped."""
        if not self._started:
            self.ensure_started()
        try:
            return self.provider.call(action, call, idempotent=idempotent)
        except SandboxError:
            # A sandbox stopped behind our back (auto-stop, a restart) returns
            # 400 for toolbox calls with "Is the Sandbox started?", and the command
            # never ran, so start it and try once more.
            if self.state() == "started":
                raise
        self.ensure_started()
        with self._lock:
            self._session_ready = False
        return self.provider.call(action, call, idempotent=idempotent)

    def prepare_directories(self) -> None:
        """Create the workdir and tmpdir when they are missing."""
        commands = f"{self.tmpdir}/commands"
        result = self.exec(
            f"mkdir -p {shlex.quote(self.workdir)} {shlex.quote(commands)}",
            cwd=self._home_dir(),
            timeout=60,
        )
        if result.exit_code != 0:
            raise SandboxError(
                f"Failed to create {self.workdir!r} in sandbox {self.name!r}: "
                f"{result.output.strip()}"
            )

    def exec(
        self,
        command: str,
        *,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> ExecResult:
        """Run a shell command in the sandbox and wait for it."""
        seconds = None if timeout is None else max(1, math.ceil(timeout))
        directory = cwd or self.workdir
        response = self.toolbox(
            f"running a command in sandbox {self.name!r}",
            lambda: self.sdk.process.exec(
                command, cwd=directory, env=dict(env) if env else None, timeout=seconds
            ),
            idempotent=False,
        )
        # The daemon reports -1 when it could not run the command at all.
        exit_code = response.exit_code if response.exit_code is not None else -1
        return ExecResult(exit_code=int(exit_code), output=response.result or "")

    def start_command(
        self,
        command: str,
        *,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
    ) -> DaytonaCommandHandle:
        """Start a command in the sandbox's session and return its handle.

        ``env`` becomes part of the session command text, which Daytona keeps
        and lists, so it must hold no write credential.
        """
        from daytona import SessionExecuteRequest

        token = uuid.uuid4().hex[:16]
        wrapped = self._wrap(command, cwd or self.workdir, env or {}, token)
        request = SessionExecuteRequest(command=wrapped, run_async=True)
        action = f"starting a command in sandbox {self.name!r}"
        self._ensure_session()
        try:
            response = self.toolbox(
                action,
                lambda: self.sdk.process.execute_session_command(SESSION_ID, request),
                idempotent=False,
            )
        except SandboxNotFound:
            # Sessions live in the daemon's memory and vanish on restart.
            with self._lock:
                self._session_ready = False
            self._ensure_session()
            response = self.toolbox(
                action,
                lambda: self.sdk.process.execute_session_command(SESSION_ID, request),
                idempotent=False,
            )
        return DaytonaCommandHandle(self, f"{token}:{response.cmd_id}")

    def get_command(self, command_id: str) -> DaytonaCommandHandle:
        """Reattach to a command started earlier with ``start_command``."""
        if not re.fullmatch(r"[0-9a-f]+:[^:]+", command_id):
            raise SandboxError(
                f"Invalid Daytona command id {command_id!r}; expected the id that "
                "start_command returned, such as 'a1b2c3:<daytona command id>'."
            )
        return DaytonaCommandHandle(self, command_id)

    def _ensure_session(self) -> None:
        with self._lock:
            if self._session_ready:
                return
            try:
                self.toolbox(
                    f"creating the command session in sandbox {self.name!r}",
                    lambda: self.sdk.process.create_session(SESSION_ID),
                )
            except SandboxError as exc:
                if not _is_cause(exc, "DaytonaConflictError"):
                    raise
            self._session_ready = True

    def _wrap(self, command: str, cwd: str, env: dict[str, str], token: str) -> str:
        """Wrap ``command`` so that it records its pid and exit code in tmpdir."""
        for name in env:
            if not _ENV_NAME.fullmatch(name):
                raise SandboxError(
                    f"Invalid environment variable name {name!r}; use letters, "
                    "digits and underscores."
                )
        base = f"{self.tmpdir}/commands/{token}"
        exports = "".join(f"export {k}={shlex.quote(v)}; " for k, v in env.items())
        script = (
            f"echo $$ > {shlex.quote(base + '.pid')}; "
            f"cd {shlex.quote(cwd)} || exit 127; "
            f"{exports}"
            f"bash -c {shlex.quote(command)}; "
            "code=$?; "
            f"echo $code > {shlex.quote(base + '.exit')}; "
            "exit $code"
        )
        commands = shlex.quote(f"{self.tmpdir}/commands")
        return f"mkdir -p {commands} && bash -c {shlex.quote(script)}"

    def command_file(self, token: str, suffix: str) -> str:
        """Return the path of a command's pid or exit file."""
        return f"{self.tmpdir}/commands/{token}.{suffix}"

    # Files.

    def upload(self, data: bytes, path: str) -> None:
        """Write ``data`` to ``path`` in the sandbox."""
        self.toolbox(
            f"uploading {path!r} to sandbox {self.name!r}",
            lambda: self.sdk.fs.upload_file(data, path, timeout=300),
        )

    def download(self, path: str) -> bytes:
        """Read the file at ``path`` in the sandbox."""
        try:
            return self.toolbox(
                f"downloading {path!r} from sandbox {self.name!r}",
                lambda: self.sdk.fs.download_file(path, 300),
            )
        except SandboxNotFound as exc:
            raise SandboxError(
                f"File {path!r} does not exist in sandbox {self.name!r}."
            ) from exc


class DaytonaCommandHandle:
    """A command running in a Daytona sandbox's session."""

    def __init__(self, sandbox: DaytonaSandbox, command_id: str) -> None:
        self.id = command_id
        self.sandbox = sandbox
        self._token, self._cmd_id = command_id.split(":", 1)
        self._last_activity = time.monotonic()

    def __repr__(self) -> str:
        return f"DaytonaCommandHandle(id={self.id!r}, sandbox={self.sandbox.name!r})"

    def poll(self) -> int | None:
        """Return the exit code, or None while the command runs."""
        process = self.sandbox.sdk.process
        try:
            command = self.sandbox.toolbox(
                f"polling command {self.id!r}",
                lambda: process.get_session_command(
                    SESSION_ID, self._cmd_id, request_timeout=30
                ),
            )
        except SandboxNotFound:
            return self._poll_files()
        if command.exit_code is None:
            self._keep_alive()
            return None
        return int(command.exit_code)

    def _keep_alive(self) -> None:
        if time.monotonic() - self._last_activity < ACTIVITY_REFRESH_SECONDS:
            return
        self._last_activity = time.monotonic()
        self.sandbox.refresh_activity()

    def _poll_files(self) -> int | None:
        """Read the exit code from tmpdir once the session has been lost."""
        exit_file = shlex.quote(self.sandbox.command_file(self._token, "exit"))
        pid_file = shlex.quote(self.sandbox.command_file(self._token, "pid"))
        result = self.sandbox.exec(
            f"cat {exit_file} 2>/dev/null && exit 0; "
            f'kill -0 "$(cat {pid_file} 2>/dev/null)" 2>/dev/null && echo running',
            cwd="/",
            timeout=30,
        )
        text = result.output.strip()
        if text.isdigit():
            return int(text)
        if text == "running":
            self._keep_alive()
            return None
        raise SandboxError(
            f"Command {self.id!r} in sandbox {self.sandbox.name!r} is gone: the "
            "sandbox stopped or restarted while it ran, so its session was lost. "
            "Run the step again."
        )

    def logs(self) -> str:
        """Return everything the command has written so far."""
        process = self.sandbox.sdk.process
        try:
            response = self.sandbox.toolbox(
                f"reading the logs of command {self.id!r}",
                lambda: process.get_session_command_logs(
                    SESSION_ID, self._cmd_id, request_timeout=60
                ),
            )
        except SandboxNotFound:
            log.warning("The logs of command %s are gone with its session", self.id)
            return ""
        return response.output or ""

    def kill(self) -> None:
        """Stop the command and every process it started."""
        pid_file = shlex.quote(self.sandbox.command_file(self._token, "pid"))
        script = (
            'tree() { for c in $(pgrep -P "$1" 2>/dev/null); do tree "$c"; done; '
            'kill -TERM "$1" 2>/dev/null; }; '
            f"pid=$(cat {pid_file} 2>/dev/null) || exit 0; "
            'kill -TERM -- "-$pid" 2>/dev/null || tree "$pid"; exit 0'
        )
        self.sandbox.exec(script, cwd="/", timeout=30)

    def follow(
        self, on_output: Callable[[str], None], poll_interval: float = 1.0
    ) -> int:
        """Stream the command's output to ``on_output`` and return its exit code.

        Output arrives over the log WebSocket while it works. When the socket
        fails or closes before the command ends, the rest comes from polling
        the logs, so a chunk may repeat after a fallback.
        """
        streamed: list[str] = []

        def receive(chunk: str) -> None:
            streamed.append(chunk)
            on_output(chunk)
            self._keep_alive()

        try:
            asyncio.run(
                self.sandbox.sdk.process.get_session_command_logs_async(
                    SESSION_ID, self._cmd_id, receive, receive
                )
            )
        except Exception as exc:
            # Any stream failure, including a non-1000 close, means polling.
            log.warning(
                "Log streaming for command %s failed, polling instead: %s", self.id, exc
            )
        exit_code = self.poll()
        if exit_code is not None and not streamed:
            tail = self.logs()
            if tail:
                on_output(tail)
            return exit_code
        if exit_code is not None:
            return exit_code
        return self._follow_by_polling(on_output, len("".join(streamed)), poll_interval)

    def _follow_by_polling(
        self, on_output: Callable[[str], None], emitted: int, poll_interval: float
    ) -> int:
        while True:
            exit_code = self.poll()
            text = self.logs()
            if len(text) > emitted:
                on_output(text[emitted:])
                emitted = len(text)
            if exit_code is not None:
                return exit_code
            time.sleep(poll_interval)
