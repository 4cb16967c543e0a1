"""The interfaces every sandbox provider implements.

The orchestration core talks to sandboxes only through these protocols, so the
same core drives local clones and remote Daytona sandboxes. Paths inside a
sandbox are strings, because they belong to the sandbox's filesystem, not to
the machine running the orchestrator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class ExecResult:
    """The outcome of a command that ran to completion."""

    exit_code: int
    output: str  # stdout and stderr, interleaved as the command wrote them


@runtime_checkable
class CommandHandle(Protocol):
    """A long-running command started with ``Sandbox.start_command``."""

    id: str

    def poll(self) -> int | None:
        """Return the exit code, or None while the command still runs."""

    def logs(self) -> str:
        """Return everything the command has written so far."""

    def kill(self) -> None:
        """Stop the command and every process it started."""


@runtime_checkable
class Sandbox(Protocol):
    """One isolated environment holding a clone of the repository.

    ``workdir`` is the repository checkout and the default working directory.
    ``tmpdir`` is a private directory outside the checkout for prompts, logs
    and other files that must never be committed.
    """

    id: str
    name: str
    labels: dict[str, str]
    workdir: str
    tmpdir: str

    def exec(
        self,
        command: str,
        *,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> ExecResult:
        """Run a shell command and wait for it. A timeout raises SandboxError."""

    def start_command(
        self,
        command: str,
        *,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
    ) -> CommandHandle:
        """Start a shell command in the background and return its handle."""

    def get_command(self, command_id: str) -> CommandHandle:
        """Reattach to a command started earlier, possibly by another process."""

    def upload(self, data: bytes, path: str) -> None:
        """Write ``data`` to ``path`` inside the sandbox, creating parents."""

    def download(self, path: str) -> bytes:
        """Read the file at ``path`` inside the sandbox."""

    def state(self) -> str:
        """Return the provider's state name, such as ``started`` or ``stopped``."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def delete(self) -> None: ...


@runtime_checkable
class SandboxProvider(Protocol):
    """Creates sandboxes and finds them again after a restart."""

    name: str

    def create(
        self,
        name: str,
        labels: dict[str, str],
        env: dict[str, str] | None = None,
        resources: dict[str, int] | None = None,
    ) -> Sandbox:
        """Create and start an empty sandbox. The caller clones into it."""

    def find(self, labels: dict[str, str]) -> list[Sandbox]:
        """Return every sandbox whose labels include all of ``labels``."""

    def get(self, sandbox_id: str) -> Sandbox:
        """Return the sandbox with this id, or raise SandboxNotFound."""
