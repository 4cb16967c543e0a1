"""The ``pi`` runtime: the Pi coding agent (pi-mono) in print mode.

``pi -p --mode json --no-session`` writes every session event as one JSON
line: ``session``, ``agent_start``, ``turn_start``, ``message_start``,
``message_update``, ``message_end``, ``tool_execution_start``,
``tool_execution_end``, ``turn_end`` and ``agent_end``. Assistant messages
carry ``usage.cost.total`` in dollars, which is summed. The prompt file is
attached with Pi's ``@file`` argument and the role's instructions go in
through ``--append-system-prompt``.

With an OAuth credential, the command writes Pi's ``auth.json`` into a
private directory next to the prompt and points ``PI_CODING_AGENT_DIR`` at
it. The file is removed when the agent exits, but not when it is killed.
"""

from __future__ import annotations

import posixpath
import shlex

from .base import AgentRequest
from .cli import CliRuntime, role_instructions

# The variable that carries Pi's auth.json text from the orchestrator into the
# agent command, which writes it to a file and unsets the variable.
AUTH_VARIABLE = "TACK_PI_AUTH_JSON"

THINKING_LEVELS = ("off", "minimal", "low", "medium", "high", "xhigh")


class PiRuntime(CliRuntime):
    """Runtime that runs Pi headless in the sandbox."""

    name = "pi"
    executable = "pi"
    output_format = "pi"
    install_hint = "npm install -g @mariozechner/pi-coding-agent"

    def __init__(
        self,
        credential_env: dict[str, str] | None = None,
        models: dict[str, str] | None = None,
        *,
        provider: str = "",
        thinking_level: str | None = None,
    ) -> None:
        super().__init__(credential_env)
        self._models = dict(models or {})
        self.provider = provider
        self.thinking_level = thinking_level

    def build_command(self, request: AgentRequest, prompt_path: str) -> str:
        """Return ``pi -p --mode json`` with the prompt file attached."""
        parts = [self.executable, "-p", "--mode", "json", "--no-session"]
        if self.provider:
            parts += ["--provider", self.provider]
        model = self._models.get(request.role) or self._models.get("default")
        if model:
            parts += ["--model", model]
        if self.thinking_level:
            parts += ["--thinking", self.thinking_level]
        parts += [
            "--append-system-prompt",
            role_instructions(request.role),
            f"@{prompt_path}",
            "Carry out the task in the attached file.",
        ]
        command = shlex.join(parts)
        if AUTH_VARIABLE not in self._credential_env:
            return command

        agent_dir = posixpath.join(
            posixpath.dirname(prompt_path), f"{request.name}.pi-agent"
        )
        quoted = shlex.quote(agent_dir)
        return (
            f"umask 077 && mkdir -p {quoted} && "
            f'printf %s "${AUTH_VARIABLE}" > {quoted}/auth.json && '
            f"unset {AUTH_VARIABLE} && "
            f"{{ PI_CODING_AGENT_DIR={quoted} {command}; status=$?; "
            f"rm -f {quoted}/auth.json; exit $status; }}"
        )
