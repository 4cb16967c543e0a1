"""Failure kinds, recovery actions, retry profiles and the recovery ledger.

Every failed step becomes an ``Attempt`` in the objective's ledger, which is
saved with the objective, so the record survives crashes and restarts.
"""

from __future__ import annotations

from enum import Enum

from .model import Attempt, AttemptStatus, Objective


class FailureKind(str, Enum):
    QUALITY_GATE_FAILURE = "quality_gate_failure"
    REVIEW_REJECTION = "review_rejection"
    AGENT_RUNTIME_TRANSIENT = "agent_runtime_transient"
    SANDBOX_FAILURE = "sandbox_failure"
    PROVIDER_RATE_LIMIT = "provider_rate_limit"
    MERGE_CONFLICT = "merge_conflict"
    POST_MERGE_GATE_FAILURE = "post_merge_gate_failure"
    AGENT_OUTPUT_FAILURE = "agent_output_failure"
    NO_WORK_DONE = "no_work_done"
    DETERMINISTIC_STEP_FAILURE = "deterministic_step_failure"


class Action(str, Enum):
    RERUN_PREVIOUS_AGENT = "rerun_previous_agent"
    RETRY_SAME_STEP = "retry_same_step"
    RETRY_MERGE = "retry_merge"
    RESTART_STREAM = "restart_stream"
    ASK_HUMAN_THEN_RESUME = "ask_human_then_resume"
    ESCALATE = "escalate"
    FAIL_TERMINAL = "fail_terminal"


# The action Tack applies to each failure kind while budget remains.
DEFAULT_ACTIONS: dict[FailureKind, Action] = {
    FailureKind.QUALITY_GATE_FAILURE: Action.RERUN_PREVIOUS_AGENT,
    FailureKind.REVIEW_REJECTION: Action.RERUN_PREVIOUS_AGENT,
    FailureKind.AGENT_RUNTIME_TRANSIENT: Action.RETRY_SAME_STEP,
    FailureKind.SANDBOX_FAILURE: Action.RETRY_SAME_STEP,
    FailureKind.PROVIDER_RATE_LIMIT: Action.RETRY_SAME_STEP,
    FailureKind.MERGE_CONFLICT: Action.RETRY_MERGE,
    FailureKind.POST_MERGE_GATE_FAILURE: Action.RESTART_STREAM,
    FailureKind.AGENT_OUTPUT_FAILURE: Action.RETRY_SAME_STEP,
    FailureKind.NO_WORK_DONE: Action.RETRY_SAME_STEP,
    FailureKind.DETERMINISTIC_STEP_FAILURE: Action.RETRY_SAME_STEP,
}

# Maximum recovery attempts per work item for each named retry profile.
RETRY_PROFILES: dict[str, int] = {"strict": 2, "balanced": 4, "self_healing": 6}

# What happens when the budget is used up: the run blocks for guidance, the
# item fails while other streams continue, or the item fails terminally.
EXHAUSTED_ACTIONS: dict[str, Action] = {
    "ask_human": Action.ASK_HUMAN_THEN_RESUME,
    "escalate": Action.ESCALATE,
    "fail": Action.FAIL_TERMINAL,
}

# Gate output and review feedback handed back to a builder are cut to this
# many characters, the size Tack uses for fix context.
FIX_CONTEXT_LIMIT = 2000


def truncate_context(text: str, limit: int = FIX_CONTEXT_LIMIT) -> str:
    """Keep the end of ``text``, where test runners print their failures."""
    text = text.strip()
    if len(text) <= limit:
        return text
    return "[... earlier output cut ...]\n" + text[-limit:]


def record_attempt(
    objective: Objective,
    *,
    failure_kind: FailureKind,
    action: Action,
    attempt_number: int,
    max_attempts: int,
    error_summary: str,
    stream_id: str | None = None,
    step_id: str | None = None,
    merge_entry_id: str | None = None,
    fix_context: str | None = None,
    sandbox_id: str | None = None,
    status: AttemptStatus = AttemptStatus.RECORDED,
) -> Attempt:
    """Append one attempt to the objective's ledger and return it."""
    previous = [a for a in objective.ledger if a.stream_id == stream_id]
    attempt = Attempt(
        objective_id=objective.id,
        stream_id=stream_id,
        step_id=step_id,
        merge_entry_id=merge_entry_id,
        attempt_number=attempt_number,
        max_attempts=max_attempts,
        failure_kind=failure_kind.value,
        action=action.value,
        status=status,
        error_summary=error_summary[:500],
        fix_context=fix_context,
        sandbox_id=sandbox_id,
        triggered_by_attempt_id=previous[-1].id if previous else None,
    )
    objective.ledger.append(attempt)
    return attempt
