"""The ``command`` runtime: any shell command that reads a prompt file.

The command finds its prompt through ``TACK_PROMPT_FILE`` and reports through
plain output lines:

    read <path>, edit <path>, write <path>, $ <command>, done: <summary>
        activity lines, shown in the watch output
    TACK_MESSAGES:{"commit_message": "...", "pr_title": "...", "pr_body": "..."}
        structured messages; the last valid line wins
    TACK_DONE:<summary>
        completion, shown as the activity line ``done: <summary>``
    TACK_COST_USD:<dollars>
        the session's cost; the last valid line wins
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import AgentError
from .base import AgentOutput, AgentRequest
from .transcript import parse_cost, parse_messages

ACTIVITY_PREFIXES = ("read ", "edit ", "write ", "$ ", "done: ")

# Characters kept of one activity line.
ACTIVITY_MAX_CHARS = 200

# Lines of output, markers excluded, kept as the final message.
FINAL_MESSAGE_LINES = 20

MESSAGES_MARKER = "TACK_MESSAGES:"
DONE_MARKER = "TACK_DONE:"
COST_MARKER = "TACK_COST_USD:"
_MARKERS = (MESSAGES_MARKER, DONE_MARKER, COST_MARKER)


class CommandRuntime:
    """Runtime that runs the shell command ``agents.command`` sets for a role."""

    name = "command"

    def __init__(self, command_for_role: Callable[[str], str | None]) -> None:
        self._command_for_role = command_for_role

    def command(
        self, request: AgentRequest, prompt_path: str
    ) -> tuple[str, dict[str, str]]:
        """Return the role's configured command and the prompt file variable."""
        command = self._command_for_role(request.role)
        if not command or not command.strip():
            raise AgentError(
                f"No agent command is configured for role {request.role!r}; set "
                "agents.command in .tack/config.yaml, either as one command or "
                f"as a mapping with a {request.role!r} or 'default' entry."
            )
        return command, {"TACK_PROMPT_FILE": prompt_path}

    def parse(self, output: str) -> AgentOutput:
        """Read activity lines, messages, cost and the final message from output."""
        parsed = AgentOutput()
        plain_lines = []
        for line in output.splitlines():
            stripped = line.strip()
            if stripped.startswith(_MARKERS):
                _read_marker(stripped, parsed)
                continue

            plain_lines.append(line.rstrip())
            if line.startswith(ACTIVITY_PREFIXES):
                parsed.activity.append(line.rstrip()[:ACTIVITY_MAX_CHARS])

        while plain_lines and not plain_lines[-1].strip():
            plain_lines.pop()
        parsed.final_message = "\n".join(plain_lines[-FINAL_MESSAGE_LINES:])
        return parsed


def _read_marker(line: str, parsed: AgentOutput) -> None:
    if line.startswith(DONE_MARKER):
        summary = line[len(DONE_MARKER) :].strip()
        parsed.activity.append(f"done: {summary}"[:ACTIVITY_MAX_CHARS])
    elif line.startswith(MESSAGES_MARKER):
        messages = parse_messages(line[len(MESSAGES_MARKER) :])
        if messages is not None:
            parsed.messages = messages
    else:
        cost = parse_cost(line[len(COST_MARKER) :])
        if cost is not None:
            parsed.cost_usd = cost
