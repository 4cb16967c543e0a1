"""Entity lifecycles: Tack's allowed transitions and the rejection of others."""

from __future__ import annotations

import pytest

from tack_action.errors import TransitionError
from tack_action.model import (
    MergeEntry,
    MergeStatus,
    Objective,
    ObjectiveStatus,
    Plan,
    PlanStatus,
    Stream,
    StreamStatus,
    slugify,
)


@pytest.mark.parametrize(
    ("start", "target"),
    [
        ("pending", "executing"),
        ("executing", "merge_ready"),
        ("merge_ready", "merging"),
        ("merging", "merged"),
        ("merging", "merge_ready"),
        ("failed", "pending"),
    ],
)
def test_stream_allowed_transitions(start: str, target: str) -> None:
    stream = Stream(title="A", status=StreamStatus(start))

    stream.transition(StreamStatus(target))

    assert stream.status is StreamStatus(target)


@pytest.mark.parametrize(
    ("start", "target"),
    [
        ("pending", "merged"),
        ("executing", "merging"),
        ("merged", "failed"),
        ("failed", "executing"),
    ],
)
def test_stream_illegal_transition_raises(start: str, target: str) -> None:
    stream = Stream(title="A", status=StreamStatus(start))

    with pytest.raises(TransitionError) as error:
        stream.transition(StreamStatus(target))

    assert repr(start) in str(error.value)
    assert repr(target) in str(error.value)
    assert stream.status is StreamStatus(start)


def test_objective_outcomes_are_reachable() -> None:
    for outcome in ("completed", "partial", "failed", "blocked"):
        objective = Objective(
            description="x", repo="/r", status=ObjectiveStatus.EXECUTING
        )

        objective.transition(ObjectiveStatus(outcome))

        assert objective.status.value == outcome


def test_completed_objective_is_terminal() -> None:
    objective = Objective(description="x", repo="/r", status=ObjectiveStatus.COMPLETED)

    with pytest.raises(TransitionError, match="terminal"):
        objective.transition(ObjectiveStatus.EXECUTING)


def test_plan_reject_returns_to_draft() -> None:
    plan = Plan(status=PlanStatus.PENDING_APPROVAL)

    plan.transition(PlanStatus.DRAFT)

    assert plan.status is PlanStatus.DRAFT
    with pytest.raises(TransitionError):
        plan.transition(PlanStatus.EXECUTING)


def test_merge_entry_conflict_can_retry() -> None:
    entry = MergeEntry(stream_id="s", branch="b", status=MergeStatus.CONFLICT)

    entry.transition(MergeStatus.PENDING)

    assert entry.status is MergeStatus.PENDING
    with pytest.raises(TransitionError):
        entry.transition(MergeStatus.MERGED)


def test_slugify_limits_and_cleans() -> None:
    assert slugify("Add OAuth2 login (v2)!") == "add-oauth2-login-v2"
    assert len(slugify("x" * 80)) == 30
    assert slugify("!!!") == "stream"
    assert not slugify("a" * 29 + " b").endswith("-")


def test_objective_names_follow_tack() -> None:
    objective = Objective(id="1234567890ab-cdef", description="x", repo="/r")
    stream = Stream(title="Add login", slug="add-login")

    assert objective.merge_branch == "tack/12345678/merge"
    assert objective.stream_branch(stream) == "tack/12345678/add-login"
    assert objective.sandbox_name("add-login") == "tack-12345678-add-login"


def test_plan_stream_lookup_by_prefix() -> None:
    plan = Plan(streams=[Stream(id="abc-1", title="One", slug="one")])

    assert plan.stream("abc").title == "One"
    assert plan.stream("one").title == "One"
    with pytest.raises(KeyError, match="no stream matches"):
        plan.stream("zzz")
