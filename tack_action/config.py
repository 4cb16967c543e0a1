"""Models for ``.tack/config.yaml`` and the layered loading of it.

Layers, later ones winning: built-in defaults, the user layer
(``~/.config/tack/config.yaml`` or ``$TACK_USER_CONFIG_PATH``), then the
project layer ``<repo>/.tack/config.yaml``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Resources(_Strict):
    cpu: int = 2
    memory: int = 2048  # MB
    disk: int = 10  # GB


class DaytonaSettings(_Strict):
    api_url: str = ""
    snapshot: str = ""
    api_key: str = ""


class SandboxSettings(_Strict):
    provider: Literal["local", "daytona"] = "local"
    worktree_dir: str = ""  # empty means $TMPDIR/tack-worktrees
    default_resources: Resources = Field(default_factory=Resources)
    auto_stop_interval: int = 30  # minutes
    auto_delete_interval: int = 1440  # minutes
    daytona: DaytonaSettings = Field(default_factory=DaytonaSettings)


class ProjectSetup(_Strict):
    commands: list[str] = Field(default_factory=list)
    verify: list[str] = Field(default_factory=list)


class DaemonSettings(_Strict):
    external_url: str = ""
    base_branch: str = "main"


class RoleTimeout(_Strict):
    max_duration_minutes: float | None = None
    idle_minutes: float | None = None


class AgentSettings(_Strict):
    runtime: Literal["command", "claude-code", "codex", "pi"] = "command"
    # The shell command the command runtime runs: one for every role, or one
    # per role name (planner, builder, reviewer, pr-writer).
    command: str | dict[str, str] | None = None
    max_concurrent: int = 8
    stagger_delay_ms: int = 500
    timeouts: dict[str, RoleTimeout] = Field(default_factory=dict)


class GitSettings(_Strict):
    author_name: str = "Tack"
    author_email: str = "tack@local"


class PlanningSettings(_Strict):
    max_streams: int = 8


class MergeSettings(_Strict):
    # Tier 2 retries a conflicting merge with -X theirs. Off, a conflict is
    # recorded for a human at once.
    auto_resolve: bool = True


class TackConfig(_Strict):
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    project_setup: ProjectSetup = Field(default_factory=ProjectSetup)
    daemon: DaemonSettings = Field(default_factory=DaemonSettings)
    agents: AgentSettings = Field(default_factory=AgentSettings)
    quality_gates: list[str] = Field(default_factory=list)
    git: GitSettings = Field(default_factory=GitSettings)
    blueprint: str = ""
    planning: PlanningSettings = Field(default_factory=PlanningSettings)
    merge: MergeSettings = Field(default_factory=MergeSettings)
