"""The merge queue: merging merge-ready streams one at a time, cumulatively.

All merges of an objective happen in one merger sandbox on
``tack/<obj8>/merge``. Each entry is merged with tier 1 (``git merge``), then
tier 2 (``-X theirs``) if allowed, and otherwise recorded as a conflict for a
human. Post-merge gates run on the merged result. A failure resets the branch
to its head before the merge, so the merge branch contains only merges whose
gates passed.

Before merging, the entry's ``pre_merge_head`` is saved. A run that crashed in
the middle of a merge uses it to tell "not merged yet" from "merged but not
recorded", so resuming never creates a second merge commit.
"""

from __future__ import annotations

import logging

from .context import RunContext
from .errors import GitError, SandboxError
from .gates import GATE_TIMEOUT_S, run_gates
from .model import AttemptStatus, MergeEntry, MergeStatus, Stream, StreamStatus
from .planning import dependants
from .recovery import Action, FailureKind, record_attempt, truncate_context
from .sandbox import git
from .sandbox.base import Sandbox
from .workspace import merger_sandbox

log = logging.getLogger(__name__)


def next_entry(ctx: RunContext) -> MergeEntry | None:
    """Return the first pending entry whose dependencies are all merged."""
    objective = ctx.objective
    assert objective.plan is not None
    by_title = {s.title: s for s in objective.plan.streams}
    for entry in objective.merge_entries:
        if entry.status not in (MergeStatus.PENDING, MergeStatus.MERGING):
            continue
        stream = _stream(ctx, entry)
        deps = [by_title[title] for title in stream.dependencies]
        if all(dep.status is StreamStatus.MERGED for dep in deps):
            return entry
    return None


def _stream(ctx: RunContext, entry: MergeEntry) -> Stream:
    assert ctx.objective.plan is not None
    return ctx.objective.plan.stream(entry.stream_id)


def process_entry(ctx: RunContext, entry: MergeEntry) -> None:
    """Merge one entry, run post-merge gates, and push or revert."""
    stream = _stream(ctx, entry)
    try:
        sandbox = merger_sandbox(ctx)
        _merge(ctx, sandbox, entry, stream)
    except (SandboxError, GitError) as exc:
        with ctx.locked():
            _fail(ctx, entry, stream, FailureKind.SANDBOX_FAILURE, str(exc))


def _merge(
    ctx: RunContext, sandbox: Sandbox, entry: MergeEntry, stream: Stream
) -> None:
    objective = ctx.objective
    with ctx.locked():
        if entry.status is MergeStatus.PENDING:
            entry.transition(MergeStatus.MERGING)
            entry.pre_merge_head = git.head_sha(sandbox)
        if stream.status is StreamStatus.MERGE_READY:
            stream.transition(StreamStatus.MERGING)
    ctx.emit(f"merging {entry.branch}", stream)

    ctx.fetch(sandbox)
    incoming = git.head_sha(sandbox, f"origin/{entry.branch}")
    head = git.head_sha(sandbox)
    assert entry.pre_merge_head is not None
    already_merged = head != entry.pre_merge_head and git.is_ancestor(
        sandbox, incoming, head
    )
    if not already_merged:
        if git.merge_in_progress(sandbox):
            git.abort_merge(sandbox)
        git.reset_hard(sandbox, entry.pre_merge_head)
        # Gates leave build output behind, and an untracked file that the
        # incoming branch tracks would stop the merge.
        sandbox.exec("git clean -fdq")
        tier = _merge_tiers(ctx, sandbox, entry)
        if tier is None:
            with ctx.locked():
                _conflict(ctx, entry, stream)
            return
        with ctx.locked():
            entry.tier = tier

    gates = ctx.quality_gates()
    report = None
    if gates:
        report = run_gates(sandbox, gates, scope=None, timeout=GATE_TIMEOUT_S)
    if report is not None and not report.passed:
        git.reset_hard(sandbox, entry.pre_merge_head)
        with ctx.locked():
            _fail(
                ctx,
                entry,
                stream,
                FailureKind.POST_MERGE_GATE_FAILURE,
                "post-merge gates failed; the merge was reverted",
                report.fix_context(),
            )
        return

    ctx.push(sandbox, objective.merge_branch)
    merged_head = git.head_sha(sandbox)
    with ctx.locked():
        entry.merge_head = merged_head
        entry.transition(MergeStatus.MERGED)
        stream.transition(StreamStatus.MERGED)
        objective.merge_head = merged_head
        label = {1: "clean", 2: "auto-resolved"}.get(entry.tier or 1, "")
        ctx.emit(f"merged ✓ ({label}, {merged_head[:8]})", stream)


def _merge_tiers(ctx: RunContext, sandbox: Sandbox, entry: MergeEntry) -> int | None:
    """Try tier 1, then tier 2 if allowed; return the tier or None on conflict."""
    author = {
        "author_name": ctx.config.git.author_name,
        "author_email": ctx.config.git.author_email,
    }
    message = f"Merge {entry.branch} into {ctx.objective.merge_branch}"
    ref = f"origin/{entry.branch}"
    result = git.merge(sandbox, ref, message=message, **author)
    if result.exit_code == 0:
        return 1
    _abort(sandbox)
    if not ctx.config.merge.auto_resolve:
        entry.error = truncate_context(result.output, 500)
        return None

    result = git.merge(
        sandbox, ref, strategy_option="theirs", message=message, **author
    )
    if result.exit_code == 0:
        return 2
    _abort(sandbox)
    entry.error = truncate_context(result.output, 500)
    return None


def _abort(sandbox: Sandbox) -> None:
    """Abort a failed merge; a merge that never started leaves nothing to abort."""
    if git.merge_in_progress(sandbox):
        git.abort_merge(sandbox)


def _conflict(ctx: RunContext, entry: MergeEntry, stream: Stream) -> None:
    """Record a conflict for a human; the caller holds the lock."""
    entry.tier = 4
    entry.transition(MergeStatus.CONFLICT)
    record_attempt(
        ctx.objective,
        failure_kind=FailureKind.MERGE_CONFLICT,
        action=Action.ESCALATE,
        attempt_number=stream.attempts,
        max_attempts=stream.attempts,
        error_summary=f"merge conflict merging {entry.branch}",
        stream_id=stream.id,
        merge_entry_id=entry.id,
        fix_context=entry.error,
        status=AttemptStatus.EXHAUSTED,
    )
    stream.error = (
        f"merge conflict: {entry.branch} does not merge into the merge branch"
    )
    stream.transition(StreamStatus.FAILED)
    ctx.emit("merge conflict: escalated to a human", stream)
    fail_dependants(ctx, stream)


def _fail(
    ctx: RunContext,
    entry: MergeEntry,
    stream: Stream,
    kind: FailureKind,
    summary: str,
    context: str = "",
) -> None:
    """Fail the entry and its stream; the caller holds the lock."""
    if entry.status is MergeStatus.PENDING:
        entry.transition(MergeStatus.MERGING)
    entry.error = summary
    entry.transition(MergeStatus.FAILED)
    record_attempt(
        ctx.objective,
        failure_kind=kind,
        action=Action.ESCALATE,
        attempt_number=stream.attempts,
        max_attempts=stream.attempts,
        error_summary=summary,
        stream_id=stream.id,
        merge_entry_id=entry.id,
        fix_context=truncate_context(context) if context else None,
        status=AttemptStatus.FAILED,
    )
    stream.error = summary
    stream.fix_context = truncate_context(context) if context else None
    if stream.status is not StreamStatus.FAILED:
        stream.transition(StreamStatus.FAILED)
    ctx.emit(f"{kind.value}: {summary}", stream)
    fail_dependants(ctx, stream)


def fail_dependants(ctx: RunContext, stream: Stream) -> None:
    """Fail every stream that depends on ``stream``; the caller holds the lock."""
    plan = ctx.objective.plan
    assert plan is not None
    for dependant in dependants(plan, stream.title):
        if dependant.status is StreamStatus.PENDING:
            dependant.transition(StreamStatus.FAILED)
            dependant.error = f"dependency {stream.title!r} failed"
            ctx.emit(f"failed: dependency {stream.title!r} failed", dependant)
