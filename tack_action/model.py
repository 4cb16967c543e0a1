"""Objectives, plans, streams, merge entries and recovery attempts.

Each entity carries a status whose allowed changes follow Tack's lifecycles.
Change a status only through ``transition``, so that an illegal change raises
``TransitionError`` instead of corrupting saved state.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from pydantic import BaseModel, Field

from .errors import TransitionError


class ObjectiveStatus(str, Enum):
    PLANNING = "planning"
    APPROVED = "approved"
    EXECUTING = "executing"
    COMPLETED = "completed"
    PARTIAL = "partial"
    FAILED = "failed"
    BLOCKED = "blocked"
    CANCELLED = "cancelled"


class PlanStatus(str, Enum):
    DRAFT = "draft"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    EXECUTING = "executing"
    COMPLETED = "completed"
    FAILED = "failed"


class StreamStatus(str, Enum):
    PENDING = "pending"
    EXECUTING = "executing"
    COMPLETED = "completed"
    MERGE_READY = "merge_ready"
    MERGING = "merging"
    MERGED = "merged"
    FAILED = "failed"


class MergeStatus(str, Enum):
    PENDING = "pending"
    MERGING = "merging"
    MERGED = "merged"
    FAILED = "failed"
    CONFLICT = "conflict"


class AttemptStatus(str, Enum):
    RECORDED = "recorded"
    RUNNING = "running"
    BLOCKED = "blocked"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXHAUSTED = "exhausted"


_O, _P, _S, _M = ObjectiveStatus, PlanStatus, StreamStatus, MergeStatus

# Objective statuses follow Tack's planning -> approved -> executing -> outcome
# lifecycle. Blocked, partial and failed objectives can run again after a
# retry or guidance, which is how Tack resumes blocked recovery.
OBJECTIVE_TRANSITIONS: dict[ObjectiveStatus, set[ObjectiveStatus]] = {
    _O.PLANNING: {_O.PLANNING, _O.APPROVED, _O.FAILED, _O.CANCELLED},
    _O.APPROVED: {_O.EXECUTING, _O.FAILED, _O.CANCELLED},
    _O.EXECUTING: {_O.COMPLETED, _O.PARTIAL, _O.FAILED, _O.BLOCKED, _O.CANCELLED},
    _O.BLOCKED: {_O.EXECUTING, _O.FAILED, _O.CANCELLED},
    _O.PARTIAL: {_O.EXECUTING},
    _O.FAILED: {_O.EXECUTING, _O.PLANNING},
    _O.COMPLETED: set(),
    _O.CANCELLED: set(),
}

PLAN_TRANSITIONS: dict[PlanStatus, set[PlanStatus]] = {
    _P.DRAFT: {_P.PENDING_APPROVAL, _P.FAILED},
    _P.PENDING_APPROVAL: {_P.APPROVED, _P.DRAFT, _P.FAILED},
    _P.APPROVED: {_P.EXECUTING, _P.FAILED},
    _P.EXECUTING: {_P.COMPLETED, _P.FAILED},
    _P.COMPLETED: set(),
    _P.FAILED: {_P.EXECUTING},
}

# Tack's stream transitions, exactly as its code defines them.
STREAM_TRANSITIONS: dict[StreamStatus, set[StreamStatus]] = {
    _S.PENDING: {_S.EXECUTING, _S.FAILED},
    _S.EXECUTING: {_S.COMPLETED, _S.FAILED, _S.MERGE_READY},
    _S.COMPLETED: {_S.MERGE_READY, _S.FAILED},
    _S.MERGE_READY: {_S.MERGING, _S.FAILED},
    _S.MERGING: {_S.MERGED, _S.FAILED, _S.MERGE_READY},
    _S.FAILED: {_S.PENDING},
    _S.MERGED: set(),
}

# A merge that was interrupted goes back to pending, and a failed or
# conflicting merge can be retried.
MERGE_TRANSITIONS: dict[MergeStatus, set[MergeStatus]] = {
    _M.PENDING: {_M.MERGING, _M.FAILED},
    _M.MERGING: {_M.MERGED, _M.FAILED, _M.CONFLICT, _M.PENDING},
    _M.FAILED: {_M.PENDING},
    _M.CONFLICT: {_M.PENDING},
    _M.MERGED: set(),
}

_TABLES: dict[type[Enum], dict[Any, set[Any]]] = {
    ObjectiveStatus: OBJECTIVE_TRANSITIONS,
    PlanStatus: PLAN_TRANSITIONS,
    StreamStatus: STREAM_TRANSITIONS,
    MergeStatus: MERGE_TRANSITIONS,
}


def check_transition(current: Enum, target: Enum, what: str) -> None:
    """Raise ``TransitionError`` unless ``current -> target`` is allowed."""
    allowed = _TABLES[type(current)][current]
    if target not in allowed:
        names = ", ".join(sorted(s.value for s in allowed)) or "none (terminal)"
        raise TransitionError(
            f"{what} cannot change from {current.value!r} to {target.value!r}; "
            f"allowed next states: {names}"
        )


def new_id() -> str:
    return str(uuid.uuid4())


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def slugify(text: str, max_length: int = 30) -> str:
    """Return Tack's branch slug: lower-case alphanumerics and hyphens."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    slug = slug[:max_length].rstrip("-")
    return slug or "stream"


class Stream(BaseModel):
    """One parallel unit of work with its file scope and dependencies."""

    id: str = Field(default_factory=new_id)
    title: str
    slug: str = ""
    description: str = ""
    file_scope: list[str] = Field(default_factory=list)
    dependencies: list[str] = Field(default_factory=list)  # stream titles
    status: StreamStatus = StreamStatus.PENDING
    step_id: str | None = None  # the blueprint step to run next
    fix_iterations: dict[str, int] = Field(default_factory=dict)
    step_retries: dict[str, int] = Field(default_factory=dict)
    attempts: int = 0  # recovery attempts counted against the profile budget
    fix_context: str | None = None
    guidance: str | None = None
    blocked: bool = False
    error: str | None = None
    branch: str = ""
    base_sha: str | None = None
    head_sha: str | None = None
    sandbox_id: str | None = None
    agent_command_id: str | None = None  # the agent session left to clean up
    messages: dict[str, str] = Field(default_factory=dict)
    cost_usd: float | None = None

    def transition(self, target: StreamStatus) -> None:
        check_transition(self.status, target, f"stream {self.title!r}")
        self.status = target


class Plan(BaseModel):
    """The planner's decomposition of an objective into streams."""

    id: str = Field(default_factory=new_id)
    status: PlanStatus = PlanStatus.DRAFT
    streams: list[Stream] = Field(default_factory=list)
    quality_gates: list[str] = Field(default_factory=list)
    raw_output: str | None = None

    def transition(self, target: PlanStatus) -> None:
        check_transition(self.status, target, "plan")
        self.status = target

    def stream(self, key: str) -> Stream:
        """Find a stream by id, id prefix, slug or title."""
        for stream in self.streams:
            if key in (stream.id, stream.slug, stream.title):
                return stream
        matches = [s for s in self.streams if s.id.startswith(key)]
        if len(matches) == 1:
            return matches[0]
        names = ", ".join(s.slug for s in self.streams)
        raise KeyError(f"no stream matches {key!r}; streams: {names}")


class MergeEntry(BaseModel):
    """A stream's place in the merge queue and the result of merging it."""

    id: str = Field(default_factory=new_id)
    stream_id: str
    branch: str
    status: MergeStatus = MergeStatus.PENDING
    tier: int | None = None  # 1 clean, 2 auto-resolved with -X theirs, 4 human
    pre_merge_head: str | None = None
    merge_head: str | None = None
    error: str | None = None
    created_at: str = Field(default_factory=utc_now)

    def transition(self, target: MergeStatus) -> None:
        check_transition(self.status, target, f"merge entry for {self.branch!r}")
        self.status = target


class Attempt(BaseModel):
    """One record in the durable recovery ledger."""

    id: str = Field(default_factory=new_id)
    objective_id: str
    stream_id: str | None = None
    step_id: str | None = None
    merge_entry_id: str | None = None
    attempt_number: int
    max_attempts: int
    failure_kind: str
    action: str
    status: AttemptStatus = AttemptStatus.RECORDED
    error_summary: str = ""
    fix_context: str | None = None
    human_guidance: str | None = None
    sandbox_id: str | None = None
    triggered_by_attempt_id: str | None = None
    created_at: str = Field(default_factory=utc_now)


class Event(BaseModel):
    """One watch line, kept so that ``status`` can show recent activity."""

    at: str = Field(default_factory=utc_now)
    stream_id: str | None = None
    text: str


class Objective(BaseModel):
    """The top-level unit of work and everything needed to resume it."""

    id: str = Field(default_factory=new_id)
    description: str
    repo: str  # the origin that sandboxes clone and push to
    # The local checkout holding .tack/ config, when it is not ``repo`` itself
    # (in CI the origin is a URL and the config comes from the workspace).
    config_dir: str | None = None
    base_branch: str = "main"
    blueprint: str = "standard"
    status: ObjectiveStatus = ObjectiveStatus.PLANNING
    step_id: str | None = None  # the top-level blueprint step to run next
    plan: Plan | None = None
    merge_entries: list[MergeEntry] = Field(default_factory=list)
    ledger: list[Attempt] = Field(default_factory=list)
    events: list[Event] = Field(default_factory=list)
    merger_sandbox_id: str | None = None
    planner_sandbox_id: str | None = None
    merge_head: str | None = None
    relay_channel: str | None = None
    relay_cursor: int = 0  # the last relay event sequence number processed
    feedback: str | None = None
    pull_request_url: str | None = None
    cost_usd: float | None = None  # every agent's reported cost, planner included
    error: str | None = None
    created_at: str = Field(default_factory=utc_now)
    updated_at: str = Field(default_factory=utc_now)
    version: int = 0

    @property
    def short_id(self) -> str:
        return self.id[:8]

    @property
    def merge_branch(self) -> str:
        return f"tack/{self.short_id}/merge"

    def stream_branch(self, stream: Stream) -> str:
        return f"tack/{self.short_id}/{stream.slug}"

    def sandbox_name(self, slug: str) -> str:
        return f"tack-{self.short_id}-{slug}"

    def transition(self, target: ObjectiveStatus) -> None:
        check_transition(self.status, target, f"objective {self.short_id}")
        self.status = target

    def merge_entry_for(self, stream_id: str) -> MergeEntry | None:
        for entry in self.merge_entries:
            if entry.stream_id == stream_id:
                return entry
        return None
