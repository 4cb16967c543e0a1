"""Finding, creating and preparing the sandboxes of an objective.

Each stream has one sandbox for its whole life, the objective has one merger
sandbox, and planning uses one planner sandbox. A sandbox is looked up first by
its saved id, then by its labels, and created only when neither finds it, so a
restarted run reuses every sandbox that still exists.
"""

from __future__ import annotations

import logging
import shlex

from .context import RunContext
from .errors import SandboxError, SandboxNotFound
from .model import Stream
from .sandbox import git
from .sandbox.base import Sandbox

log = logging.getLogger(__name__)

# Written into a sandbox's tmpdir once clone, branch and project setup are done.
SETUP_MARKER = "setup-done"


def labels_for(
    ctx: RunContext, role: str, stream: Stream | None = None
) -> dict[str, str]:
    labels = {"tack.objective": ctx.objective.id, "tack.role": role}
    if stream is not None:
        labels["tack.stream"] = stream.id
    return labels


def _reload(
    ctx: RunContext, sandbox_id: str | None, labels: dict[str, str]
) -> Sandbox | None:
    """Return the saved or labelled sandbox, started, or None if it is gone."""
    sandbox: Sandbox | None = None
    if sandbox_id:
        try:
            sandbox = ctx.provider.get(sandbox_id)
        except SandboxNotFound:
            sandbox = None
    if sandbox is None:
        found = ctx.provider.find(labels)
        sandbox = found[0] if found else None
    if sandbox is None:
        return None

    if sandbox.state() != "started":
        log.info("starting stopped sandbox %s", sandbox.id)
        sandbox.start()
    return sandbox


def _is_ready(sandbox: Sandbox) -> bool:
    """Return whether setup finished and the sandbox's clone is still intact."""
    try:
        sandbox.download(f"{sandbox.tmpdir}/{SETUP_MARKER}")
    except (SandboxError, OSError):
        return False
    if _has_own_clone(sandbox):
        return True
    log.warning("sandbox %s lost its git clone; preparing it again", sandbox.id)
    return False


def _has_own_clone(sandbox: Sandbox) -> bool:
    """Return whether the workdir is the top of its own git clone.

    Asking ``git rev-parse`` alone is not enough, because git also finds a
    repository that merely contains the workdir.
    """
    result = sandbox.exec("git rev-parse --show-toplevel")
    if result.exit_code != 0:
        return False
    top = result.output.strip()
    check = sandbox.exec(f"test {shlex.quote(top)} -ef .")
    return check.exit_code == 0


def _prepare(ctx: RunContext, sandbox: Sandbox, branch: str, start_point: str) -> str:
    """Clone, check out ``branch`` and run project setup; return the start sha.

    Every step is safe to repeat, because a crash can interrupt this at any
    point and the next run prepares the same sandbox again.
    """
    if not _has_own_clone(sandbox):
        workdir = shlex.quote(sandbox.workdir)
        sandbox.exec(f"rm -rf {workdir} && mkdir -p {workdir}")
        git.clone(sandbox, ctx.objective.repo, env=ctx.git_env)
    ctx.fetch(sandbox)

    remote = ctx.remote_sha(sandbox, branch)
    if git.current_branch(sandbox) != branch:
        # A branch already pushed to origin contains earlier work, so continue it.
        origin_ref = f"origin/{branch}" if remote else start_point
        git.checkout_new_branch(sandbox, branch, origin_ref)
    base_sha = git.head_sha(sandbox, start_point)

    _run_setup(ctx, sandbox)
    sandbox.upload(base_sha.encode(), f"{sandbox.tmpdir}/{SETUP_MARKER}")
    return base_sha


def _run_setup(ctx: RunContext, sandbox: Sandbox) -> None:
    setup = ctx.config.project_setup
    for attempt in (1, 2):
        for command in setup.commands:
            result = sandbox.exec(command, timeout=30 * 60)
            if result.exit_code != 0:
                raise SandboxError(
                    f"project setup command {command!r} failed with exit code "
                    f"{result.exit_code} in sandbox {sandbox.id}:\n"
                    f"{result.output.strip()[-1500:]}"
                )
        failed = [c for c in setup.verify if sandbox.exec(c).exit_code != 0]
        if not failed:
            return
        log.warning("project_setup.verify failed (%s), attempt %d", failed, attempt)
    raise SandboxError(
        f"project_setup.verify still fails after running setup twice: {failed}; "
        "check project_setup.commands in .tack/config.yaml"
    )


def stream_sandbox(ctx: RunContext, stream: Stream) -> Sandbox:
    """Return the stream's sandbox, reloading it or creating it as needed."""
    objective = ctx.objective
    labels = labels_for(ctx, "builder", stream)
    sandbox = _reload(ctx, stream.sandbox_id, labels)
    if sandbox is None:
        if stream.sandbox_id:
            ctx.emit(
                f"sandbox {stream.sandbox_id} is gone; recreating it from "
                f"{stream.branch or 'the start point'}",
                stream,
            )
        name = objective.sandbox_name(stream.slug)
        sandbox = ctx.provider.create(name, labels)
        ctx.emit(f"sandbox {sandbox.id} created", stream)
    with ctx.locked():
        stream.sandbox_id = sandbox.id
        stream.branch = objective.stream_branch(stream)

    if not _is_ready(sandbox):
        start_point = _start_point(ctx, stream)
        base_sha = _prepare(ctx, sandbox, stream.branch, start_point)
        with ctx.locked():
            # A sandbox prepared again keeps the base its branch started from,
            # even if the start point has moved since.
            stream.base_sha = stream.base_sha or base_sha
    return sandbox


def _start_point(ctx: RunContext, stream: Stream) -> str:
    """Branch dependent streams from the merge branch, others from the base."""
    objective = ctx.objective
    if stream.dependencies:
        return f"origin/{objective.merge_branch}"
    return f"origin/{objective.base_branch}"


def merger_sandbox(ctx: RunContext) -> Sandbox:
    """Return the objective's merger sandbox on the merge branch."""
    objective = ctx.objective
    labels = labels_for(ctx, "merger")
    sandbox = _reload(ctx, objective.merger_sandbox_id, labels)
    if sandbox is None:
        sandbox = ctx.provider.create(objective.sandbox_name("merge"), labels)
        ctx.emit(f"merger sandbox {sandbox.id} created")
    with ctx.locked():
        objective.merger_sandbox_id = sandbox.id
    if not _is_ready(sandbox):
        base = f"origin/{objective.base_branch}"
        _prepare(ctx, sandbox, objective.merge_branch, base)
    return sandbox


def planner_sandbox(ctx: RunContext) -> Sandbox:
    """Return a sandbox on the base branch for the planner to explore."""
    objective = ctx.objective
    labels = labels_for(ctx, "planner")
    sandbox = _reload(ctx, objective.planner_sandbox_id, labels)
    if sandbox is None:
        sandbox = ctx.provider.create(objective.sandbox_name("planner"), labels)
    with ctx.locked():
        objective.planner_sandbox_id = sandbox.id
    if not _is_ready(sandbox):
        branch = f"tack/{objective.short_id}/planner"
        _prepare(ctx, sandbox, branch, f"origin/{objective.base_branch}")
    return sandbox


def delete_sandbox(ctx: RunContext, sandbox_id: str | None) -> None:
    """Delete a sandbox if it still exists, logging instead of raising."""
    if not sandbox_id:
        return
    try:
        ctx.provider.get(sandbox_id).delete()
    except SandboxNotFound:
        return
    except SandboxError as exc:
        log.warning("could not delete sandbox %s: %s", sandbox_id, exc)
