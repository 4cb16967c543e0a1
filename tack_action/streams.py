"""Running one stream through its per-stream blueprint (``build-review``).

The stream's position in the blueprint is saved as ``Stream.step_id`` before
each step starts, so a restarted run continues at the step that was running.
Failures go through ``decide_recovery``, which records a ledger attempt and
moves the stream to the step its blueprint and retry budget allow.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from . import prompts
from .agents.base import AgentRequest, AgentResult
from .agents.run import kill_command, run_agent
from .blueprints import Blueprint, Step
from .config import timeout_for
from .context import RunContext
from .errors import AgentError, GitError, SandboxError, TackError
from .gates import GATE_TIMEOUT_S, in_scope, run_gates
from .model import AttemptStatus, MergeEntry, MergeStatus, Stream, StreamStatus
from .recovery import (
    DEFAULT_ACTIONS,
    EXHAUSTED_ACTIONS,
    Action,
    FailureKind,
    record_attempt,
    truncate_context,
)
from .rules import render_rules
from .sandbox import git
from .sandbox.base import Sandbox
from .scope import enforce_file_scope
from .workspace import stream_sandbox

log = logging.getLogger(__name__)


@dataclass
class StepFailure:
    """A failed step: its failure kind, summary and the context for a rerun."""

    kind: FailureKind
    summary: str
    context: str = ""


def stream_blueprint(ctx: RunContext) -> Blueprint:
    """Return the blueprint that the top level runs for each work item."""
    top = ctx.blueprints[ctx.objective.blueprint]
    for step in top.steps:
        if step.type == "blueprint_ref" and step.ref:
            return ctx.blueprints[step.ref]
    return ctx.blueprints["build-review"]


def run_stream(ctx: RunContext, stream: Stream) -> None:
    """Run the stream's steps until it is merge-ready, failed or blocked."""
    blueprint = stream_blueprint(ctx)
    try:
        sandbox = stream_sandbox(ctx, stream)
    except (SandboxError, GitError) as exc:
        _fail_stream(ctx, stream, FailureKind.SANDBOX_FAILURE, str(exc))
        return

    with ctx.locked():
        if stream.step_id is None:
            stream.step_id = blueprint.entry().id

    while (
        stream.step_id is not None
        and stream.status is StreamStatus.EXECUTING
        and not stream.blocked
    ):
        step = blueprint.step(stream.step_id)
        try:
            failure = _run_step(ctx, blueprint, step, stream, sandbox)
        except (SandboxError, GitError) as exc:
            failure = StepFailure(FailureKind.SANDBOX_FAILURE, str(exc))
        except AgentError as exc:
            # A runtime that cannot start will not start on a retry either.
            _fail_stream(ctx, stream, FailureKind.AGENT_OUTPUT_FAILURE, str(exc))
            return

        if failure is None:
            with ctx.locked():
                stream.step_id = step.next
            continue
        if not decide_recovery(ctx, blueprint, step, stream, failure):
            return
        if failure.kind is FailureKind.SANDBOX_FAILURE:
            # The retry needs a working sandbox; an agent may have broken the
            # clone, which reloading detects and repairs.
            try:
                sandbox = stream_sandbox(ctx, stream)
            except (SandboxError, GitError) as exc:
                _fail_stream(ctx, stream, FailureKind.SANDBOX_FAILURE, str(exc))
                return


def decide_recovery(
    ctx: RunContext,
    blueprint: Blueprint,
    step: Step,
    stream: Stream,
    failure: StepFailure,
) -> bool:
    """Record the failure and move the stream on; return False to stop it."""
    budget = blueprint.max_attempts(None)
    action = DEFAULT_ACTIONS[failure.kind]
    fixes = stream.fix_iterations.get(step.id, 0)
    retries = stream.step_retries.get(step.id, 0)
    step_limit = (
        step.retry.max_attempts if step.retry and step.retry.max_attempts else budget
    )

    can_fix = bool(step.on_fail) and fixes < blueprint.max_fix_iterations(step)
    if action is Action.RERUN_PREVIOUS_AGENT and not can_fix:
        exhausted = True
    elif action is Action.RETRY_SAME_STEP and retries + 1 >= step_limit:
        exhausted = True
    else:
        exhausted = stream.attempts >= budget

    with ctx.locked() as objective:
        if exhausted:
            return _exhaust(ctx, blueprint, step, stream, failure)

        stream.attempts += 1
        context = truncate_context(failure.context) if failure.context else None
        record_attempt(
            objective,
            failure_kind=failure.kind,
            action=action,
            attempt_number=stream.attempts,
            max_attempts=budget,
            error_summary=failure.summary,
            stream_id=stream.id,
            step_id=step.id,
            fix_context=context,
            sandbox_id=stream.sandbox_id,
        )
        if action is Action.RERUN_PREVIOUS_AGENT:
            stream.fix_iterations[step.id] = fixes + 1
            stream.fix_context = context
            stream.step_id = step.on_fail
        else:
            stream.step_retries[step.id] = retries + 1
        ctx.emit(
            f"{failure.kind.value} -> {action.value} ({stream.attempts}/{budget})",
            stream,
        )
        if action is Action.RERUN_PREVIOUS_AGENT:
            what = (
                "gate" if failure.kind is FailureKind.QUALITY_GATE_FAILURE else "review"
            )
            ctx.emit(f"recovery attempt: builder rerun with {what} context", stream)
    return True


def _exhaust(
    ctx: RunContext,
    blueprint: Blueprint,
    step: Step,
    stream: Stream,
    failure: StepFailure,
) -> bool:
    """Apply ``retry.on_exhausted``; the caller holds the lock."""
    objective = ctx.objective
    mode = blueprint.on_exhausted(step)
    action = EXHAUSTED_ACTIONS[mode]
    budget = blueprint.max_attempts(None)
    status = AttemptStatus.BLOCKED if mode == "ask_human" else AttemptStatus.EXHAUSTED
    record_attempt(
        objective,
        failure_kind=failure.kind,
        action=action,
        attempt_number=stream.attempts,
        max_attempts=budget,
        error_summary=failure.summary,
        stream_id=stream.id,
        step_id=step.id,
        fix_context=truncate_context(failure.context) if failure.context else None,
        sandbox_id=stream.sandbox_id,
        status=status,
    )
    stream.fix_context = truncate_context(failure.context) if failure.context else None
    stream.error = failure.summary
    if mode == "ask_human":
        stream.blocked = True
        ctx.emit(
            "recovery blocked: retry budget exhausted; awaiting human guidance", stream
        )
    else:
        stream.transition(StreamStatus.FAILED)
        ctx.emit(f"recovery exhausted: {action.value}: {failure.summary}", stream)
    return False


def _fail_stream(
    ctx: RunContext, stream: Stream, kind: FailureKind, summary: str
) -> None:
    with ctx.locked() as objective:
        record_attempt(
            objective,
            failure_kind=kind,
            action=Action.FAIL_TERMINAL,
            attempt_number=stream.attempts,
            max_attempts=stream.attempts,
            error_summary=summary,
            stream_id=stream.id,
            status=AttemptStatus.FAILED,
        )
        stream.error = summary
        stream.transition(StreamStatus.FAILED)
        ctx.emit(
            f"failed: {summary.splitlines()[0] if summary else kind.value}", stream
        )


def _run_step(
    ctx: RunContext, blueprint: Blueprint, step: Step, stream: Stream, sandbox: Sandbox
) -> StepFailure | None:
    if step.type == "agent":
        if step.role == "reviewer":
            return _review(ctx, step, stream, sandbox)
        return _build(ctx, step, stream, sandbox)
    if step.type == "deterministic":
        if step.action == "run_quality_gates":
            return _gates(ctx, stream, sandbox)
        if step.action == "signal_merge_ready":
            _signal_merge_ready(ctx, stream, sandbox)
            return None
        if step.action == "mark_stream_merged":
            with ctx.locked():
                stream.transition(StreamStatus.MERGE_READY)
            return None
    if step.type == "human":
        with ctx.locked():
            stream.blocked = True
        ctx.emit(f"waiting for a human at step {step.id!r}", stream)
        return None
    raise SandboxError(f"step {step.id!r} ({step.type}) cannot run inside a stream")


def agent_env(
    ctx: RunContext, role: str, name: str, stream: Stream | None
) -> dict[str, str]:
    """Return the TACK_* environment of an agent, which contains no credential."""
    objective = ctx.objective
    env = {
        "TACK_AGENT_NAME": name,
        "TACK_AGENT_ROLE": role,
        "TACK_OBJECTIVE_ID": objective.id,
        "GIT_AUTHOR_NAME": ctx.config.git.author_name,
        "GIT_AUTHOR_EMAIL": ctx.config.git.author_email,
        "GIT_COMMITTER_NAME": ctx.config.git.author_name,
        "GIT_COMMITTER_EMAIL": ctx.config.git.author_email,
    }
    env.update(_callback_env(ctx, name))
    if stream is not None:
        env["TACK_STREAM_ID"] = stream.id
        env["TACK_STREAM_SLUG"] = stream.slug
        env["TACK_FILE_SCOPE"] = json.dumps(stream.file_scope)
    return env


def _callback_env(ctx: RunContext, name: str) -> dict[str, str]:
    """Mint this session's relay credentials, scoped to one sandbox callback URL."""
    channel = ctx.objective.relay_channel
    if ctx.relay is None or not channel:
        return {}
    try:
        creds = ctx.relay.create_sandbox(channel, name)
    except TackError as exc:
        log.warning("relay credentials for %s failed; polling only: %s", name, exc)
        return {}
    return {
        "TACK_DAEMON_URL": creds.callback_url,
        "TACK_DAEMON_TOKEN": creds.token,
        "TACK_CALLBACK_SECRET": creds.secret,
    }


def run_role_agent(
    ctx: RunContext,
    sandbox: Sandbox,
    role: str,
    prompt: str,
    stream: Stream | None = None,
) -> AgentResult:
    """Start one agent session for ``role`` and wait for it to finish."""
    objective = ctx.objective
    if stream is not None and stream.agent_command_id:
        # A crashed run left this step's agent session behind. A session that
        # finished cleanly is used as it is; one still running is stopped.
        finished = _finished_session(ctx, sandbox, stream.agent_command_id, role)
        if finished is not None:
            ctx.emit(
                f"{role}: reusing the session that finished before a restart", stream
            )
            with ctx.locked():
                stream.agent_command_id = None
            return finished
        kill_command(sandbox, stream.agent_command_id)

    session = f"{len(objective.ledger):02d}{stream.attempts if stream else 0:02d}"
    name = (
        f"{role}-{objective.short_id}-{(stream.id[:4] if stream else 'obj0')}{session}"
    )
    max_s, idle_s = timeout_for(ctx.config, role)
    request = AgentRequest(
        role=role,
        name=name,
        prompt=prompt,
        env=agent_env(ctx, role, name, stream),
        max_duration_s=max_s,
        idle_s=idle_s,
    )

    def on_started(command_id: str) -> None:
        if stream is not None:
            with ctx.locked():
                stream.agent_command_id = command_id

    def on_activity(line: str) -> None:
        ctx.emit(f"{role}: {line}", stream)

    result = run_agent(
        sandbox, ctx.runtime, request, on_activity=on_activity, on_started=on_started
    )
    cost = result.parsed.cost_usd
    with ctx.locked() as objective:
        if cost is not None:
            objective.cost_usd = (objective.cost_usd or 0.0) + cost
        if stream is not None:
            stream.agent_command_id = None
            if cost is not None:
                stream.cost_usd = (stream.cost_usd or 0.0) + cost
    return result


def _finished_session(
    ctx: RunContext, sandbox: Sandbox, command_id: str, role: str
) -> AgentResult | None:
    """Return the result of a session that exited 0, or None to run it again."""
    try:
        handle = sandbox.get_command(command_id)
        exit_code = handle.poll()
        output = handle.logs() if exit_code == 0 else ""
    except SandboxError as exc:
        log.info("previous %s session %s is gone: %s", role, command_id, exc)
        return None
    if exit_code != 0:
        return None
    return AgentResult(exit_code, output, ctx.runtime.parse(output))


def _build(
    ctx: RunContext, step: Step, stream: Stream, sandbox: Sandbox
) -> StepFailure | None:
    role = step.role or "builder"
    prompt = prompts.render_builder(
        ctx.objective.description,
        stream,
        fix_context=stream.fix_context,
        guidance=stream.guidance,
    ) + _rules(ctx, stream)
    ctx.emit(f"{role}: started in sandbox {sandbox.id}", stream)
    result = run_role_agent(ctx, sandbox, role, prompt, stream)
    if result.failure is not None:
        kind = FailureKind(result.failure)
        return StepFailure(
            kind, result.error or f"{role} failed", result.output[-2000:]
        )

    if step.commit == "none":
        return None
    if ctx.config.agents.enforce_file_scope:
        base = stream.base_sha or git.head_sha(sandbox)
        reverted = enforce_file_scope(sandbox, base, stream.file_scope)
        if reverted:
            ctx.emit(
                f"reverted changes outside file scope: {', '.join(reverted[:10])}",
                stream,
            )
    message = result.parsed.messages.get("commit_message") or stream.title
    sha = git.commit_all(
        sandbox,
        message,
        author_name=ctx.config.git.author_name,
        author_email=ctx.config.git.author_email,
    )
    head = git.head_sha(sandbox)
    if sha is None and head == stream.base_sha:
        return StepFailure(
            FailureKind.NO_WORK_DONE,
            f"{role} exited 0 but made no commit and left no change",
            "The previous attempt changed nothing. Make the change the stream needs.",
        )

    changed = git.changed_files(sandbox, stream.base_sha or head, head)
    outside = [path for path in changed if not in_scope(path, stream.file_scope)]
    with ctx.locked():
        stream.head_sha = head
        stream.messages.update(result.parsed.messages)
        if stream.guidance:
            ctx.emit("recovery resumed: guidance applied", stream)
        stream.fix_context = None
        stream.guidance = None
        stream.error = None
    if outside:
        ctx.emit(f"changes outside file scope: {', '.join(outside[:10])}", stream)
    # Pushing every commit lets a lost sandbox be recreated from the branch.
    ctx.push(sandbox, stream.branch)
    ctx.emit(f"{role}: committed {head[:8]}", stream)
    return None


def _rules(ctx: RunContext, stream: Stream) -> str:
    """Return the scoped rules for the stream's files, as a prompt section."""
    section = render_rules(
        ctx.objective.config_dir or ctx.objective.repo, stream.file_scope
    )
    return f"\n\n{section}" if section else ""


def _gates(ctx: RunContext, stream: Stream, sandbox: Sandbox) -> StepFailure | None:
    commands = ctx.quality_gates()
    if not commands:
        return None
    report = run_gates(
        sandbox, commands, scope=stream.file_scope, timeout=GATE_TIMEOUT_S
    )
    if report.passed:
        note = (
            " (failure attributed outside scope)" if report.attributed_elsewhere else ""
        )
        ctx.emit(f"quality gates passed{note}", stream)
        return None
    failed = report.failed
    summary = (
        f"gate {failed.command!r} exited {failed.exit_code}"
        if failed
        else "gates failed"
    )
    ctx.emit(f"quality gate failed: {summary}", stream)
    return StepFailure(FailureKind.QUALITY_GATE_FAILURE, summary, report.fix_context())


def _review(
    ctx: RunContext, step: Step, stream: Stream, sandbox: Sandbox
) -> StepFailure | None:
    base = stream.base_sha or "HEAD"
    changed = git.changed_files(sandbox, base)
    outside = [path for path in changed if not in_scope(path, stream.file_scope)]
    prompt = prompts.render_reviewer(
        ctx.objective.description,
        stream,
        diff=git.diff(sandbox, base),
        out_of_scope=outside,
    ) + _rules(ctx, stream)
    result = run_role_agent(ctx, sandbox, step.role or "reviewer", prompt, stream)
    if result.failure is not None:
        kind = FailureKind(result.failure)
        return StepFailure(
            kind, result.error or "reviewer failed", result.output[-2000:]
        )

    # JSON-streaming runtimes wrap raw lines, so prefer the parsed final message.
    verdict, reasons = prompts.parse_review(result.parsed.final_message)
    if verdict is None:
        verdict, reasons = prompts.parse_review(result.output)
    if verdict is None:
        return StepFailure(
            FailureKind.AGENT_OUTPUT_FAILURE,
            f"reviewer gave no valid TACK_REVIEW verdict: {reasons}",
        )
    if verdict != "approve":
        ctx.emit(f"reviewer: changes requested: {reasons[:100]}", stream)
        return StepFailure(FailureKind.REVIEW_REJECTION, "changes requested", reasons)
    ctx.emit("reviewer: approved", stream)
    return None


def _signal_merge_ready(ctx: RunContext, stream: Stream, sandbox: Sandbox) -> None:
    ctx.push(sandbox, stream.branch)
    head = git.head_sha(sandbox)
    with ctx.locked() as objective:
        stream.head_sha = head
        stream.transition(StreamStatus.MERGE_READY)
        entry = objective.merge_entry_for(stream.id)
        if entry is None:
            objective.merge_entries.append(
                MergeEntry(stream_id=stream.id, branch=stream.branch)
            )
        elif entry.status in (MergeStatus.FAILED, MergeStatus.CONFLICT):
            entry.transition(MergeStatus.PENDING)
            entry.error = None
        for attempt in objective.ledger:
            if attempt.stream_id == stream.id and attempt.status in (
                AttemptStatus.RECORDED,
                AttemptStatus.RUNNING,
            ):
                attempt.status = AttemptStatus.SUCCEEDED
        ctx.emit("merge ready", stream)
