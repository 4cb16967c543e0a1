"""Run one agent session in a sandbox, with an idle limit and a wall clock.

The loop is the same for every runtime. It checks that the runtime's CLI runs
in the sandbox, uploads the prompt and starts the runtime's command in the
background under the in-sandbox runner (``runner.py``). The runner keeps the
raw output in ``<tmpdir>/agents/<name>.log``, writes the exit status to
``<tmpdir>/agents/<name>.exit`` and posts callbacks when a relay is set. The
loop then passes new output lines through the runtime's parser to report activity,
and stops the command when it goes silent for too long or runs past its
maximum duration.
"""

from __future__ import annotations

import logging
import re
import shlex
import threading
import time
from collections.abc import Callable
from importlib import resources

from ..errors import AgentError, SandboxError
from ..recovery import FailureKind
from ..sandbox.base import CommandHandle, Sandbox
from .base import AgentRequest, AgentResult, AgentRuntime
from .transcript import TranscriptReader

logger = logging.getLogger(__name__)

# Characters of output quoted in the error of a failed session.
OUTPUT_TAIL_CHARS = 2000

_AGENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

# Files uploaded into every sandbox to run agents; both use only the stdlib.
RUNNER_FILES = ("runner.py", "transcript.py")

# The variable that carries the callback signing secret to the runner, which
# removes it from the agent's environment.
CALLBACK_SECRET_VARIABLE = "TACK_CALLBACK_SECRET"


# Seconds between exit-code polls while output streams over a socket.
STREAM_POLL_S = 5.0


def run_agent(
    sandbox: Sandbox,
    runtime: AgentRuntime,
    request: AgentRequest,
    *,
    on_activity: Callable[[str], None] | None = None,
    on_started: Callable[[str], None] | None = None,
    poll_interval: float = 0.2,
) -> AgentResult:
    """Run one agent session to its end and return its result.

    A timeout or a non-zero exit is returned as a failure of kind
    ``agent_runtime_transient``, not raised. ``on_started`` receives the
    command id, so a restarted orchestrator can kill a session left running.
    """
    handle = _start(sandbox, runtime, request)
    if on_started is not None:
        on_started(handle.id)

    try:
        exit_code, error = _watch(handle, runtime, request, on_activity, poll_interval)
    except BaseException:
        handle.kill()
        raise

    output = handle.logs()
    parsed = runtime.parse(output)
    if error:
        logger.warning("agent %s stopped: %s", request.name, error)
        return AgentResult(
            None, output, parsed, FailureKind.AGENT_RUNTIME_TRANSIENT.value, error
        )
    if exit_code in (126, 127):
        # The shell could not find or execute the agent: no retry will help.
        raise AgentError(
            f"the {request.role} command could not run (exit code {exit_code}); "
            "check that agents.command names an installed program. Output:\n"
            f"{output.strip()[-OUTPUT_TAIL_CHARS:]}"
        )
    if exit_code != 0:
        error = (
            f"{request.role} exited with code {exit_code}; the output ended with:\n"
            f"{output.strip()[-OUTPUT_TAIL_CHARS:]}"
        )
        logger.warning("agent %s exited with code %s", request.name, exit_code)
        return AgentResult(
            exit_code, output, parsed, _failure_kind(runtime, output), error
        )

    logger.info("agent %s finished", request.name)
    return AgentResult(exit_code, output, parsed)


def kill_command(sandbox: Sandbox, command_id: str) -> None:
    """Kill a command left running by an orchestrator that stopped early.

    A command that already ended, or that the sandbox does not know, is skipped.
    """
    try:
        handle = sandbox.get_command(command_id)
    except SandboxError as exc:
        logger.info(
            "command %s in sandbox %s not found: %s", command_id, sandbox.id, exc
        )
        return
    handle.kill()
    logger.info("killed command %s in sandbox %s", command_id, sandbox.id)


def session_paths(sandbox: Sandbox, name: str) -> tuple[str, str]:
    """Return the (raw log, exit status file) paths of an agent session."""
    return (
        f"{sandbox.tmpdir}/agents/{name}.log",
        f"{sandbox.tmpdir}/agents/{name}.exit",
    )


def read_exit_status(sandbox: Sandbox, name: str) -> int | None:
    """Return the exit status the runner wrote for a session, or None if none yet.

    This confirms that a session ended when its command handle is gone, for
    example after the orchestrator restarted.
    """
    _, exit_path = session_paths(sandbox, name)
    try:
        text = sandbox.download(exit_path).decode("utf-8", "replace").strip()
    except SandboxError:
        return None
    try:
        return int(text)
    except ValueError:
        logger.warning("exit status file %s contains %r, not a number", exit_path, text)
        return None


def runner_command(
    sandbox: Sandbox, request: AgentRequest, command: str, output_format: str
) -> str:
    """Upload the runner and return the shell command that runs ``command`` under it.

    Without ``python3`` in the sandbox, a bash fallback still keeps the log
    and the exit status file but sends no callbacks.
    """
    runner_dir = f"{sandbox.tmpdir}/tack-runner"
    package = resources.files(__package__)
    for name in RUNNER_FILES:
        sandbox.upload(package.joinpath(name).read_bytes(), f"{runner_dir}/{name}")

    log_path, exit_path = session_paths(sandbox, request.name)
    runner = shlex.join(
        [
            "python3",
            f"{runner_dir}/runner.py",
            "--name",
            request.name,
            "--format",
            output_format,
            "--log",
            log_path,
            "--exit-file",
            exit_path,
            "--workdir",
            sandbox.workdir,
            "--",
            command,
        ]
    )
    log, exit_file = shlex.quote(log_path), shlex.quote(exit_path)
    fallback = (
        f"unset {CALLBACK_SECRET_VARIABLE}\n"
        f"mkdir -p {shlex.quote(f'{sandbox.tmpdir}/agents')}\n"
        f"bash -c {shlex.quote(command)} 2>&1 | tee -a {log}\n"
        "status=${PIPESTATUS[0]}\n"
        f'printf "%s\\n" "$status" > {exit_file}\n'
        'exit "$status"'
    )
    script = (
        f"if command -v python3 >/dev/null 2>&1; then\n  exec {runner}\nfi\n{fallback}"
    )
    return f"bash -c {shlex.quote(script)}"


def _start(
    sandbox: Sandbox, runtime: AgentRuntime, request: AgentRequest
) -> CommandHandle:
    if not _AGENT_NAME.fullmatch(request.name):
        raise AgentError(
            f"Invalid agent name {request.name!r}: use letters, digits, '.', '_' "
            "and '-', starting with a letter or digit."
        )
    verify = getattr(runtime, "verify", None)
    if callable(verify):
        verify(sandbox)

    prompt_path = f"{sandbox.tmpdir}/prompts/{request.name}.md"
    sandbox.upload(request.prompt.encode("utf-8"), prompt_path)

    command, runtime_env = runtime.command(request, prompt_path)
    output_format = getattr(runtime, "output_format", "text")
    wrapped = runner_command(sandbox, request, command, output_format)
    env = {**request.env, **runtime_env}
    handle = sandbox.start_command(wrapped, env=env)
    logger.info(
        "started agent %s (%s, runtime %s) as command %s in sandbox %s",
        request.name,
        request.role,
        runtime.name,
        handle.id,
        sandbox.id,
    )
    return handle


def _watch(
    handle: CommandHandle,
    runtime: AgentRuntime,
    request: AgentRequest,
    on_activity: Callable[[str], None] | None,
    poll_interval: float,
) -> tuple[int | None, str]:
    """Wait until the command exits or a limit passes. Return (exit code, error).

    Handles that can stream (``follow``, such as Daytona's log WebSocket) feed
    output as it arrives; others are polled every ``poll_interval`` seconds.
    """
    started = time.monotonic()
    last_output = started
    seen_chars = 0
    consumed = 0
    # Runtimes with JSON output read it with state that spans lines, such as
    # the working directory from the first event, so one reader sees it all.
    make_reader = getattr(runtime, "reader", None)
    reader = make_reader() if callable(make_reader) else None
    stream = _LogStream.start(handle)

    # NOTE: each poll reads the whole session log into memory, so an agent
    # that prints hundreds of megabytes costs that much memory here.
    while True:
        if stream is not None:
            exit_code, output = stream.snapshot()
        else:
            exit_code = handle.poll()
            output = handle.logs()
        now = time.monotonic()
        if len(output) != seen_chars:
            seen_chars = len(output)
            last_output = now

        # Only complete lines are parsed while the command runs; the rest is
        # parsed once it has exited and can write no more.
        end = len(output) if exit_code is not None else output.rfind("\n") + 1
        if end > consumed:
            _report(runtime, reader, output[consumed:end], on_activity)
            consumed = end

        if exit_code is not None:
            return exit_code, ""
        if now - started >= request.max_duration_s:
            handle.kill()
            limit = _describe_duration(request.max_duration_s)
            return None, (
                f"{request.role} timed out after {limit}; raise "
                f"agents.timeouts.{request.role}.max_duration_minutes or split the "
                "objective into smaller streams."
            )
        if now - last_output >= request.idle_s:
            handle.kill()
            limit = _describe_duration(request.idle_s)
            return None, (
                f"{request.role} was idle for {limit} with no output and was "
                f"stopped; raise agents.timeouts.{request.role}.idle_minutes if "
                "the agent needs longer silent stretches."
            )
        if stream is not None:
            stream.wait(poll_interval)
        else:
            time.sleep(poll_interval)


class _LogStream:
    """Output of a command that streams it, collected by a background thread.

    The streamed text is for live activity and idle detection only. The
    result is read afterwards from the plain logs, because a log WebSocket can
    close early or repeat a prefix.
    """

    def __init__(self, handle: CommandHandle) -> None:
        self._handle = handle
        self._chunks: list[str] = []
        self._exit_code: int | None = None
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._last_poll = time.monotonic()

    @classmethod
    def start(cls, handle: CommandHandle) -> _LogStream | None:
        follow = getattr(handle, "follow", None)
        if not callable(follow):
            return None
        stream = cls(handle)
        thread = threading.Thread(
            target=stream._follow, args=(follow,), name="agent-logs", daemon=True
        )
        thread.start()
        return stream

    def _follow(self, follow: Callable[..., int]) -> None:
        try:
            self._exit_code = follow(self._receive)
        except Exception as exc:  # noqa: BLE001 - any failure falls back to polling
            logger.warning("log stream of %s failed: %s", self._handle.id, exc)
            self._exit_code = None
        finally:
            self._done.set()

    def _receive(self, chunk: str) -> None:
        with self._lock:
            self._chunks.append(chunk)

    def wait(self, seconds: float) -> None:
        if self._done.is_set():
            time.sleep(seconds)
        else:
            self._done.wait(seconds)

    def snapshot(self) -> tuple[int | None, str]:
        """Return the exit code (None while running) and the output so far."""
        if self._done.is_set():
            exit_code = self._exit_code
            if exit_code is None:
                exit_code = self._handle.poll()
            return exit_code, self._handle.logs()

        # A socket can stay open without data after the command ended, so the
        # exit code is also polled now and then.
        now = time.monotonic()
        if now - self._last_poll >= STREAM_POLL_S:
            self._last_poll = now
            exit_code = self._handle.poll()
            if exit_code is not None:
                return exit_code, self._handle.logs()
        with self._lock:
            return None, "".join(self._chunks)


def _report(
    runtime: AgentRuntime,
    reader: TranscriptReader | None,
    text: str,
    on_activity: Callable[[str], None] | None,
) -> None:
    if on_activity is None:
        return
    if reader is None:
        lines = runtime.parse(text).activity
    else:
        lines = [line for raw in text.splitlines() for line in reader.feed(raw)]
    for line in lines:
        on_activity(line)


def _failure_kind(runtime: AgentRuntime, output: str) -> str:
    """Return the failure kind of a non-zero exit; runtimes may refine it."""
    classify = getattr(runtime, "classify_failure", None)
    kind = classify(output) if callable(classify) else None
    return kind or FailureKind.AGENT_RUNTIME_TRANSIENT.value


def _describe_duration(seconds: float) -> str:
    if seconds >= 60:
        return f"{seconds / 60:.1f} minutes"
    return f"{seconds:.1f} seconds"
