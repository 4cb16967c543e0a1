"""Shared base of the Claude Code, Codex and Pi runtimes: checks, roles, parsing.

Each of these runtimes starts a coding-agent CLI in non-interactive mode with
JSON output. The prompt reaches the CLI as a file in the sandbox's tmpdir,
and a short role instruction reaches it as a system prompt where the CLI has
one. The provider credential, when ``runtime_auth.mode`` is ``tack``, is
returned as the command's extra environment, so only that agent process and
its children see it.
"""

from __future__ import annotations

import logging
import re
import shlex

from ..errors import AgentError
from ..recovery import FailureKind
from ..sandbox.base import Sandbox
from .base import AgentOutput, AgentRequest
from .transcript import TranscriptReader

logger = logging.getLogger(__name__)

# Seconds allowed for `<cli> --version` in a fresh sandbox.
VERSION_TIMEOUT_S = 60.0

# Error texts of provider rate limits and overload, as the Anthropic and OpenAI
# APIs word them (HTTP 429 and 529, "rate_limit_error", "overloaded_error").
_RATE_LIMIT = re.compile(
    r"rate[ _-]?limit|too many requests|\b429\b|\b529\b|overloaded", re.IGNORECASE
)

_ROLE_TASKS = {
    "planner": "Discover the repository and write the plan the prompt asks "
    "for. Do not change any file.",
    "builder": "Make the change the prompt describes, inside the file scope "
    "it gives, and leave it uncommitted in the working tree.",
    "reviewer": "Review the diff in the prompt and give the verdict line it "
    "asks for. Do not change any file.",
    "pr-writer": "Write the pull request text the prompt asks for. Do not "
    "change any file.",
}


def role_instructions(role: str) -> str:
    """Return the system prompt text that states an agent's role and limits."""
    task = _ROLE_TASKS.get(role, "Carry out the task in the prompt.")
    return (
        f"You are the {role} agent of tack-action. You run unattended in a "
        "disposable sandbox, with the repository checked out in the current "
        "directory, and no person will answer questions, so make reasonable "
        f"choices and finish. {task} End with the final line the prompt asks "
        "for. Never print, copy or send credentials or tokens."
    )


class CliRuntime:
    """Base class of runtimes that drive a coding-agent CLI."""

    name = ""
    executable = ""
    output_format = "text"
    install_hint = ""

    def __init__(self, credential_env: dict[str, str] | None = None) -> None:
        self._credential_env = dict(credential_env or {})
        self._verified: set[str] = set()

    def verify(self, sandbox: Sandbox) -> str:
        """Check that the CLI runs in ``sandbox`` and return its version line.

        Raises AgentError with an install hint when it does not. A sandbox
        that passed once is not checked again by this runtime object.
        """
        if sandbox.id in self._verified:
            return ""
        executable = shlex.quote(self.executable)
        result = sandbox.exec(
            f"command -v {executable} >/dev/null 2>&1 && {executable} --version",
            timeout=VERSION_TIMEOUT_S,
        )
        if result.exit_code != 0:
            detail = result.output.strip()[-300:] or "command not found"
            raise AgentError(
                f"The {self.executable!r} CLI for agents.runtime {self.name!r} "
                f"does not run in sandbox {sandbox.name!r} ({detail}). Install it "
                f"with `{self.install_hint}` in project_setup.commands or the "
                "sandbox snapshot, or choose another agents.runtime."
            )
        version = result.output.strip().splitlines()[-1] if result.output else ""
        logger.info("%s in sandbox %s: %s", self.executable, sandbox.id, version)
        self._verified.add(sandbox.id)
        return version

    def command(
        self, request: AgentRequest, prompt_path: str
    ) -> tuple[str, dict[str, str]]:
        """Return the CLI's shell command and the credential environment."""
        env = {"TACK_PROMPT_FILE": prompt_path, **self._credential_env}
        return self.build_command(request, prompt_path), env

    def build_command(self, request: AgentRequest, prompt_path: str) -> str:
        """Return the shell command that starts the CLI on the prompt file."""
        raise NotImplementedError

    def reader(self) -> TranscriptReader:
        """Return a new incremental reader of this CLI's output format."""
        return TranscriptReader(self.output_format)

    def classify_failure(self, output: str) -> str | None:
        """Return ``provider_rate_limit`` when a failed session hit a rate limit.

        Returns None for every other failure, which the run loop reports as
        ``agent_runtime_transient``.
        """
        reader = self.reader()
        for line in output.splitlines():
            reader.feed(line)
        reader.finish()
        text = reader.error or reader.final_message
        if _RATE_LIMIT.search(text):
            return FailureKind.PROVIDER_RATE_LIMIT.value
        return None

    def parse(self, output: str) -> AgentOutput:
        """Read activity lines, the final message, messages and cost from output."""
        reader = self.reader()
        activity: list[str] = []
        for line in output.splitlines():
            activity.extend(reader.feed(line))
        activity.extend(reader.finish())
        return AgentOutput(
            activity=activity,
            final_message=reader.final_message,
            messages=reader.messages,
            cost_usd=reader.cost_usd,
        )
