"""A sandbox that runs commands with bash in a real local directory.

It implements the command and file parts of the ``Sandbox`` protocol, which is
all that quality gates and prompt tests need, without any provider around it.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

from tack_action.errors import SandboxError
from tack_action.sandbox.base import ExecResult

# A fixed author and committer keep commits independent of the developer's git
# config, which the test environment hides anyway.
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Tack Test",
    "GIT_AUTHOR_EMAIL": "tack-test@example.com",
    "GIT_COMMITTER_NAME": "Tack Test",
    "GIT_COMMITTER_EMAIL": "tack-test@example.com",
}


class DirSandbox:
    """Runs shell commands in ``workdir`` and keeps scratch files in ``tmpdir``."""

    def __init__(self, workdir: Path, tmpdir: Path | None = None) -> None:
        self.id = uuid.uuid4().hex
        self.name = f"dir-{self.id[:8]}"
        self.labels: dict[str, str] = {}
        self.workdir = str(workdir)
        scratch = tmpdir if tmpdir is not None else workdir.parent / f"{self.name}-tmp"
        scratch.mkdir(parents=True, exist_ok=True)
        self.tmpdir = str(scratch)
        self.commands: list[str] = []

    def exec(
        self,
        command: str,
        *,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> ExecResult:
        """Run ``command`` with bash and return its interleaved output."""
        self.commands.append(command)
        merged_env = {**os.environ, **GIT_ENV, **(env or {})}
        try:
            completed = subprocess.run(
                ["bash", "-c", command],
                cwd=cwd or self.workdir,
                env=merged_env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise SandboxError(
                f"Command timed out after {timeout} seconds: {command!r}."
            ) from exc
        output = completed.stdout.decode("utf-8", errors="replace")
        return ExecResult(exit_code=completed.returncode, output=output)

    def upload(self, data: bytes, path: str) -> None:
        """Write ``data`` to ``path``, creating parent directories."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def download(self, path: str) -> bytes:
        """Read the file at ``path``."""
        return Path(path).read_bytes()

    def state(self) -> str:
        return "started"


def make_repo(path: Path, files: dict[str, str]) -> DirSandbox:
    """Create a git repository with ``files`` committed and return its sandbox."""
    path.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")

    sandbox = DirSandbox(path)
    result = sandbox.exec(
        "git init -q -b main && git add -A && git commit -q -m 'Initial commit'"
    )
    if result.exit_code != 0:
        raise RuntimeError(f"Cannot create test repository: {result.output}")
    sandbox.commands.clear()
    return sandbox
