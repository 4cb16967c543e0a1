"""The ``codex`` runtime: OpenAI's Codex CLI in ``exec`` mode.

``codex exec --json -`` reads the prompt from stdin and writes JSONL events:
``thread.started``, ``turn.started``, ``item.started`` and ``item.completed``
for items such as ``command_execution``, ``file_change`` and
``agent_message``, then ``turn.completed`` with token usage. Codex reports
tokens, not dollars, so the cost stays unknown. Codex has no system-prompt
flag, so the role's instructions are put in front of the prompt.
"""

from __future__ import annotations

import shlex

from .base import AgentRequest
from .cli import CliRuntime, role_instructions


class CodexRuntime(CliRuntime):
    """Runtime that runs ``codex exec`` in the sandbox."""

    name = "codex"
    executable = "codex"
    output_format = "codex"
    install_hint = "npm install -g @openai/codex"

    def __init__(
        self,
        credential_env: dict[str, str] | None = None,
        models: dict[str, str] | None = None,
    ) -> None:
        super().__init__(credential_env)
        self._models = dict(models or {})

    def build_command(self, request: AgentRequest, prompt_path: str) -> str:
        """Return ``codex exec --json -`` fed the role text and the prompt file."""
        # Codex's own sandbox needs kernel features that container sandboxes
        # often lack, and the sandbox already isolates the agent.
        parts = [
            self.executable,
            "exec",
            "--json",
            "--skip-git-repo-check",
            "--dangerously-bypass-approvals-and-sandbox",
        ]
        model = self._models.get(request.role) or self._models.get("default")
        if model:
            parts += ["--model", model]
        parts.append("-")
        preamble = shlex.quote(role_instructions(request.role))
        return (
            f"{{ printf '%s\\n\\n' {preamble}; cat {shlex.quote(prompt_path)}; }}"
            f" | {shlex.join(parts)}"
        )
