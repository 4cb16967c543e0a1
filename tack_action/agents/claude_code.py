"""The ``claude-code`` runtime: the ``claude`` CLI in print mode.

The prompt file is piped to ``claude -p``, which writes one JSON object per
line with ``--output-format stream-json --verbose``: a ``system`` init event,
``assistant`` and ``user`` messages with ``tool_use`` and ``tool_result``
blocks, and one ``result`` event with the final text and ``total_cost_usd``.
The role's instructions go in through ``--append-system-prompt``.
"""

from __future__ import annotations

import shlex

from .base import AgentRequest
from .cli import CliRuntime, role_instructions


class ClaudeCodeRuntime(CliRuntime):
    """Runtime that runs Claude Code headless in the sandbox."""

    name = "claude-code"
    executable = "claude"
    output_format = "claude-code"
    install_hint = "npm install -g @anthropic-ai/claude-code"

    def __init__(
        self,
        credential_env: dict[str, str] | None = None,
        models: dict[str, str] | None = None,
    ) -> None:
        super().__init__(credential_env)
        self._models = dict(models or {})

    def build_command(self, request: AgentRequest, prompt_path: str) -> str:
        """Return ``claude -p`` with stream-json output, reading the prompt file."""
        # The sandbox is the isolation boundary and nobody can answer a
        # permission prompt, so tool permission checks are skipped.
        parts = [
            self.executable,
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "--dangerously-skip-permissions",
            "--append-system-prompt",
            role_instructions(request.role),
        ]
        model = self._models.get(request.role) or self._models.get("default")
        if model:
            parts += ["--model", model]
        return f"{shlex.join(parts)} < {shlex.quote(prompt_path)}"
