"""The interface every agent runtime implements.

A runtime builds the command that starts one coding agent for a role and a
prompt, and parses that agent's output. Running, timing out and collecting
the result are the same for every runtime and live in ``agents.run``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass
class AgentRequest:
    """Everything needed to start one agent session."""

    role: str  # planner, builder, reviewer, pr-writer
    name: str  # <role>-<obj8>-<session8>
    prompt: str
    env: dict[str, str] = field(default_factory=dict)  # the TACK_* variables
    max_duration_s: float = 30 * 60
    idle_s: float = 10 * 60


@dataclass
class AgentOutput:
    """The activity, final message, messages and cost in an agent's output."""

    activity: list[str] = field(default_factory=list)  # "edit src/x.py", "$ pytest"
    final_message: str = ""
    messages: dict[str, str] = field(default_factory=dict)  # from TACK_MESSAGES
    cost_usd: float | None = None


@dataclass
class AgentResult:
    """The outcome of one agent session."""

    exit_code: int | None  # None when the session was stopped by a timeout
    output: str
    parsed: AgentOutput
    failure: str | None = None  # a failure kind, or None on success
    error: str = ""


class AgentRuntime(Protocol):
    """Builds the command for an agent and parses what it writes."""

    name: str

    def command(
        self, request: AgentRequest, prompt_path: str
    ) -> tuple[str, dict[str, str]]:
        """Return the shell command and extra environment that start the agent."""

    def parse(self, output: str) -> AgentOutput:
        """Read activity lines, the final message, messages and cost from output."""
