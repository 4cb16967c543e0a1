"""Agent runtimes and the loop that runs an agent inside a sandbox."""

from __future__ import annotations

from ..config import TackConfig, agent_command
from ..credentials import Credentials
from .auth import credential_env
from .base import AgentRuntime
from .claude_code import ClaudeCodeRuntime
from .codex import CodexRuntime
from .command import CommandRuntime
from .pi import PiRuntime

__all__ = [
    "ClaudeCodeRuntime",
    "CodexRuntime",
    "CommandRuntime",
    "PiRuntime",
    "make_runtime",
    "role_models",
]


def make_runtime(
    config: TackConfig, credentials: Credentials | None = None
) -> AgentRuntime:
    """Return the runtime ``agents.runtime`` selects, with its credential.

    ``credentials`` defaults to the credentials file, read only when
    ``runtime_auth.mode`` is ``tack``. Raises ConfigError for an unusable
    ``runtime_auth``.
    """
    runtime = config.agents.runtime
    if runtime == "command":
        return CommandRuntime(lambda role: agent_command(config, role))

    env = credential_env(config, credentials)
    models = role_models(config)
    if runtime == "claude-code":
        return ClaudeCodeRuntime(env, models)
    if runtime == "codex":
        return CodexRuntime(env, models)
    pi = config.agents.pi
    if pi.model:
        # agents.pi.model is the Pi model for every role, unless models.planner
        # or models.small_tasks names one for the planner or the PR writer.
        models = {
            "default": pi.model,
            "builder": pi.model,
            "reviewer": pi.model,
            "planner": config.models.planner or pi.model,
            "pr-writer": config.models.small_tasks or pi.model,
        }
    return PiRuntime(
        env,
        models,
        provider=pi.provider or config.runtime_auth.provider,
        thinking_level=pi.thinking_level,
    )


def role_models(config: TackConfig) -> dict[str, str]:
    """Return the model name per role from ``models``; missing roles are omitted.

    The planner uses ``models.planner``, the pull-request writer
    ``models.small_tasks``, and the other roles ``models.agent``; each falls
    back to ``models.default``.
    """
    models = config.models
    default = models.default
    chosen = {
        "default": models.agent or default,
        "planner": models.planner or default,
        "builder": models.agent or default,
        "reviewer": models.agent or default,
        "pr-writer": models.small_tasks or default,
    }
    return {role: name for role, name in chosen.items() if name}
