"""Running an objective through its top-level blueprint.

The objective's position is saved as ``Objective.step_id``, and ``run``
continues from there. So the same call starts a new objective, continues after
approval and resumes after a crash. ``run`` returns when the objective finishes or
waits for a person (plan approval, or guidance for a blocked stream).
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

from . import prompts, scheduler
from .agents import make_runtime
from .auth import mask
from .blueprints import Step, load_blueprints, resolve_blueprint
from .config import TackConfig, agent_command, load_config, worktree_root
from .context import RunContext
from .credentials import find_daytona_api_key, load_credentials
from .errors import AgentError, ConfigError, PlanError, TackError
from .events import RelayListener, make_relay, open_channel
from .forge import Forge
from .model import (
    AttemptStatus,
    MergeStatus,
    Objective,
    ObjectiveStatus,
    Plan,
    PlanStatus,
    Stream,
    StreamStatus,
)
from .planning import dependants, parse_plan_output, validate_plan
from .sandbox import git
from .sandbox.base import SandboxProvider
from .sandbox.local import LocalProvider
from .state import StateStore
from .streams import run_role_agent, stream_blueprint
from .workspace import delete_sandbox, merger_sandbox, planner_sandbox

log = logging.getLogger(__name__)

PLANNER_ATTEMPTS = 2


def build_context(
    objective: Objective,
    store: StateStore,
    *,
    config: TackConfig | None = None,
    forge: Forge | None = None,
    git_env: dict[str, str] | None = None,
) -> RunContext:
    """Load config and blueprints for the objective's repository and wire services.

    Everything that can be wrong in a config or blueprint raises here, before
    any sandbox exists.
    """
    repo = Path(objective.config_dir or objective.repo)
    config = config or load_config(repo)
    blueprints = load_blueprints(repo)
    resolve_blueprint(blueprints, objective.blueprint)
    return RunContext(
        objective=objective,
        store=store,
        config=config,
        blueprints=blueprints,
        provider=make_provider(config, repo_label=objective.repo),
        runtime=make_runtime(config),
        relay=make_relay(config),
        forge=forge,
        git_env=git_env or {},
    )


def make_provider(
    config: TackConfig, *, repo_label: str = "", daytona_api_key: str | None = None
) -> SandboxProvider:
    """Return the configured sandbox provider.

    The Daytona key comes from ``daytona_api_key`` (an Action input), then
    ``$DAYTONA_API_KEY``, then credentials.yaml, then the config fallback.
    """
    if config.sandbox.provider == "local":
        root = worktree_root(config)
        if "$" in str(root) or not root.is_absolute():
            raise ConfigError(
                ".tack/config.yaml",
                "sandbox.worktree_dir",
                f"{str(root)!r} is not an absolute path with every variable set; "
                "give an absolute directory, or leave it empty for "
                "$TMPDIR/tack-worktrees",
            )
        return LocalProvider(root)

    from .sandbox.daytona import DaytonaProvider

    key = (
        daytona_api_key
        or os.environ.get("DAYTONA_API_KEY")
        or find_daytona_api_key(load_credentials(), config)
    )
    if key:
        mask(key)
    else:
        raise ConfigError(
            ".tack/config.yaml",
            "sandbox.provider",
            "no Daytona API key found; set DAYTONA_API_KEY, run "
            "'tack-action auth add daytona', or pass the daytona-api-key input",
        )
    settings = config.sandbox
    return DaytonaProvider(
        key,
        settings.daytona.api_url or None,
        snapshot=settings.daytona.snapshot,
        resources=settings.default_resources.model_dump(),
        auto_stop_interval=settings.auto_stop_interval,
        auto_delete_interval=settings.auto_delete_interval,
        repo_label=repo_label,
    )


def create_objective(
    description: str,
    repo: Path,
    store: StateStore,
    *,
    blueprint: str | None = None,
    plan: Plan | None = None,
    origin: str | None = None,
    objective_id: str | None = None,
) -> Objective:
    """Validate the repository's config and blueprints, then save a new objective.

    ``repo`` is the local checkout with the ``.tack/`` config. Sandboxes clone
    ``origin``, which defaults to that checkout itself.
    """
    description = description.strip()
    if not description:
        raise PlanError("the objective is empty; describe the change you want")
    repo = repo.resolve()
    if origin is None and not (repo / ".git").exists():
        raise TackError(f"{str(repo)!r} is not a git repository; pass --repo PATH")
    config = load_config(repo)
    blueprints = load_blueprints(repo)
    chosen = resolve_blueprint(blueprints, blueprint or config.blueprint or None)
    if config.sandbox.provider == "local":
        make_provider(config)  # rejects an unusable worktree_dir now
    _check_agent_commands(config, blueprints, chosen.id, planned=plan is not None)
    if origin is None:
        _check_base_branch(repo, config.daemon.base_branch)
    if plan is not None:
        validate_plan(plan, max_streams=config.planning.max_streams)
        plan.transition(PlanStatus.PENDING_APPROVAL)
    objective = Objective(
        description=description,
        repo=origin or str(repo),
        config_dir=str(repo) if origin else None,
        base_branch=config.daemon.base_branch,
        blueprint=chosen.id,
        plan=plan,
    )
    if objective_id:
        objective.id = objective_id
    store.save(objective, 0)
    return objective


def _check_agent_commands(
    config: TackConfig, blueprints: dict, top_id: str, *, planned: bool
) -> None:
    """Reject a command runtime with no command for a role the blueprints use."""
    if config.agents.runtime != "command":
        return
    top = blueprints[top_id]
    used = [top, *(blueprints[s.ref] for s in top.steps if s.ref in blueprints)]
    roles = {s.role for bp in used for s in bp.steps if s.type == "agent" and s.role}
    if planned:
        roles.discard("planner")
    missing = sorted(r for r in roles if agent_command(config, r) is None)
    if missing:
        raise AgentError(
            f"agents.command has no command for role(s) {', '.join(missing)}; set "
            "agents.command to one command for every role, or to a mapping with "
            "an entry for each of these roles (or a 'default' entry)"
        )


def _check_base_branch(repo: Path, branch: str) -> None:
    """Reject a local origin that has no ``daemon.base_branch`` branch."""
    result = subprocess.run(
        [
            "git",
            "-C",
            str(repo),
            "rev-parse",
            "--verify",
            "--quiet",
            f"refs/heads/{branch}",
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise ConfigError(
            ".tack/config.yaml",
            "daemon.base_branch",
            f"the repository {str(repo)!r} has no branch {branch!r}; set "
            "daemon.base_branch to the branch the work starts from and merges into",
        )


def _runs_streams(step: Step) -> bool:
    """Return whether a top-level step dispatches the plan's streams."""
    return step.type == "blueprint_ref" or step.action == "dispatch_streams"


class Orchestrator:
    """Runs one objective's top-level blueprint."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.objective = ctx.objective
        self.top = ctx.blueprints[self.objective.blueprint]

    def run(self) -> Objective:
        """Run from the saved step until the objective finishes or waits."""
        objective = self.objective
        fresh = (ObjectiveStatus.PLANNING, ObjectiveStatus.APPROVED)
        if objective.step_id is None and objective.status in fresh:
            with self.ctx.locked():
                objective.step_id = self.top.entry().id

        open_channel(self.ctx)
        with RelayListener(self.ctx):
            while objective.step_id is not None:
                step = self.top.step(objective.step_id)
                if not self._run_step(step):
                    return objective
                with self.ctx.locked():
                    objective.step_id = step.next

            if objective.status is ObjectiveStatus.EXECUTING:
                self._complete()
        return objective

    def _run_step(self, step: Step) -> bool:
        if step.type == "agent" and step.role == "planner":
            return self._plan()
        if step.type == "human":
            return self._await_approval()
        if _runs_streams(step):
            return self._execute(step)
        if step.action == "merge_queue":
            scheduler.execute(self.ctx)
            return True
        if step.action == "create_pr":
            self._create_pr()
            return True
        if step.action == "mark_complete":
            self._complete()
            return True
        raise TackError(
            f"step {step.id!r} ({step.type}, {step.action or step.role}) cannot run at "
            f"the top level of blueprint {self.top.id!r}"
        )

    # Planning and approval

    def _plan(self) -> bool:
        objective = self.objective
        if objective.plan is not None and objective.plan.status is not PlanStatus.DRAFT:
            return True

        ctx = self.ctx
        if objective.status is ObjectiveStatus.FAILED:
            # A resumed objective whose planning failed plans again.
            with ctx.locked():
                objective.transition(ObjectiveStatus.PLANNING)
                objective.error = None
        max_streams = ctx.config.planning.max_streams
        sandbox = planner_sandbox(ctx)
        prompt = prompts.render_planner(
            objective.description, feedback=objective.feedback, max_streams=max_streams
        )
        error = ""
        for attempt in range(1, PLANNER_ATTEMPTS + 1):
            ctx.emit(f"planner: started (attempt {attempt}/{PLANNER_ATTEMPTS})")
            result = run_role_agent(ctx, sandbox, "planner", prompt)
            if result.failure is not None:
                error = result.error or "the planner failed"
                continue
            try:
                plan = parse_plan_output(result.output, max_streams=max_streams)
                validate_plan(plan, max_streams=max_streams)
            except PlanError as exc:
                error = str(exc)
                prompt += f"\n\nYour previous plan was rejected: {error}\n"
                continue
            with ctx.locked():
                plan.transition(PlanStatus.PENDING_APPROVAL)
                objective.plan = plan
            ctx.emit(f"plan ready: {len(plan.streams)} streams")
            delete_sandbox(ctx, objective.planner_sandbox_id)
            return True

        with ctx.locked():
            objective.error = f"planning failed: {error}"
            objective.transition(ObjectiveStatus.FAILED)
        ctx.emit(objective.error)
        return False

    def _await_approval(self) -> bool:
        plan = self.objective.plan
        if plan is not None and plan.status is not PlanStatus.PENDING_APPROVAL:
            return True
        self.ctx.emit(
            f"awaiting approval: tack-action approve {self.objective.short_id} "
            f"(or reject {self.objective.short_id} --feedback TEXT)"
        )
        return False

    def approve(self) -> Objective:
        """Approve the pending plan and run the objective."""
        objective = self.objective
        plan = objective.plan
        if plan is None or plan.status is not PlanStatus.PENDING_APPROVAL:
            state = plan.status.value if plan else "no plan"
            raise TackError(
                f"objective {objective.short_id} has no plan awaiting approval "
                f"(plan: {state}); see tack-action status {objective.short_id}"
            )
        with self.ctx.locked():
            plan.transition(PlanStatus.APPROVED)
            objective.transition(ObjectiveStatus.APPROVED)
        self.ctx.emit("plan approved")
        return self.run()

    def reject(self, feedback: str | None) -> Objective:
        """Discard the pending plan and plan again with the feedback."""
        objective = self.objective
        plan = objective.plan
        if plan is None or plan.status is not PlanStatus.PENDING_APPROVAL:
            raise TackError(
                f"objective {objective.short_id} has no plan awaiting approval; "
                "nothing to reject"
            )
        with self.ctx.locked():
            plan.transition(PlanStatus.DRAFT)
            objective.feedback = feedback
            objective.plan = None
            objective.step_id = self.top.entry().id
        self.ctx.emit("plan rejected; planning again")
        return self.run()

    # Execution

    def _execute(self, step: Step) -> bool:
        objective = self.objective
        plan = objective.plan
        assert plan is not None
        with self.ctx.locked():
            if objective.status is not ObjectiveStatus.EXECUTING:
                objective.transition(ObjectiveStatus.EXECUTING)
            if plan.status in (PlanStatus.APPROVED, PlanStatus.FAILED):
                plan.transition(PlanStatus.EXECUTING)

        stop_on_failure = step.on_work_item_failure == "fail"
        scheduler.execute(self.ctx, stop_on_failure=stop_on_failure)

        blocked = [s for s in plan.streams if s.blocked]
        failed = [s for s in plan.streams if s.status is StreamStatus.FAILED]
        if blocked:
            with self.ctx.locked():
                objective.transition(ObjectiveStatus.BLOCKED)
            names = ", ".join(s.slug for s in blocked)
            self.ctx.emit(
                f"objective blocked on {names}: tack-action retry "
                f"{objective.short_id} {blocked[0].slug} --guidance TEXT"
            )
            return False
        if stop_on_failure and failed:
            with self.ctx.locked():
                objective.error = f"stream {failed[0].title!r} failed"
                objective.transition(ObjectiveStatus.FAILED)
                objective.step_id = None
                plan.transition(PlanStatus.FAILED)
            return False
        return True

    def retry(self, stream_key: str, guidance: str | None) -> Objective:
        """Give a blocked or failed stream a fresh budget and run again."""
        objective = self.objective
        plan = objective.plan
        if plan is None:
            raise TackError(f"objective {objective.short_id} has no plan to retry")
        try:
            stream = plan.stream(stream_key)
        except KeyError as exc:
            raise TackError(str(exc.args[0])) from None
        if not stream.blocked and stream.status is not StreamStatus.FAILED:
            raise TackError(
                f"stream {stream.slug!r} is {stream.status.value}; only blocked or "
                "failed streams can be retried"
            )

        per_stream = stream_blueprint(self.ctx)
        with self.ctx.locked():
            for attempt in objective.ledger:
                if (
                    attempt.stream_id == stream.id
                    and attempt.status is AttemptStatus.BLOCKED
                ):
                    attempt.status = AttemptStatus.RUNNING
                    attempt.human_guidance = guidance
            stream.guidance = guidance
            stream.attempts = 0
            stream.fix_iterations = {}
            stream.step_retries = {}
            stream.error = None
            if stream.blocked:
                stream.blocked = False
                step = per_stream.step(stream.step_id) if stream.step_id else None
                if step is not None and step.on_fail:
                    stream.step_id = step.on_fail
            else:
                stream.transition(StreamStatus.PENDING)
                stream.step_id = per_stream.entry().id
                self._reset_dependants(stream.title)
            if objective.status is not ObjectiveStatus.EXECUTING:
                objective.transition(ObjectiveStatus.EXECUTING)
            objective.error = None
            objective.step_id = self._execute_step_id()
        self.ctx.emit(f"retry requested{' with guidance' if guidance else ''}", stream)
        return self.run()

    def _reset_dependants(self, title: str) -> None:
        plan = self.objective.plan
        assert plan is not None
        for dependant in dependants(plan, title):
            if dependant.status is StreamStatus.FAILED and (
                dependant.error or ""
            ).startswith("dependency"):
                dependant.transition(StreamStatus.PENDING)
                dependant.error = None

    def _execute_step_id(self) -> str:
        for step in self.top.steps:
            if _runs_streams(step):
                return step.id
        raise TackError(f"blueprint {self.top.id!r} has no step that runs streams")

    def cancel(self) -> Objective:
        """Stop the objective for good and delete its sandboxes."""
        with self.ctx.locked() as objective:
            objective.transition(ObjectiveStatus.CANCELLED)
            objective.step_id = None
        self.ctx.emit("objective cancelled")
        self._cleanup()
        return self.objective

    # Finishing

    def _create_pr(self) -> None:
        objective = self.objective
        ctx = self.ctx
        if objective.merge_head is None:
            ctx.emit("pull request skipped: no stream merged")
            return

        if ctx.forge is None:
            ctx.emit(
                "pull request skipped: no forge configured; the result is branch "
                f"{objective.merge_branch} at {objective.merge_head[:8]} "
                f"in {objective.repo}"
            )
            return

        plan = objective.plan
        assert plan is not None
        succeeded = [s for s in plan.streams if s.status is StreamStatus.MERGED]
        failed = [s for s in plan.streams if s.status is not StreamStatus.MERGED]
        title, body = self._draft_pr(succeeded)
        lines = [
            body,
            "",
            "### Streams (succeeded)",
            *[f"- {s.title}" for s in succeeded],
        ]
        if failed:
            lines += ["", "### Streams (failed)", *[f"- {s.title}" for s in failed]]

        url = ctx.forge.find_or_create_pull_request(
            head=objective.merge_branch,
            base=objective.base_branch,
            title=title,
            body="\n".join(lines),
        )
        with ctx.locked():
            objective.pull_request_url = url
        ctx.emit(f"pull request {url}")

    def _draft_pr(self, merged: list[Stream]) -> tuple[str, str]:
        """Ask the pr-writer agent for a title and body, with Tack's fallbacks."""
        objective = self.objective
        title = objective.description.splitlines()[0][:120]
        body = "\n".join(
            [
                "Automated PR created by tack-action.",
                f"Objective: {objective.description}",
                f"Objective ID: {objective.id}",
            ]
        )
        ctx = self.ctx
        if (
            agent_command(ctx.config, "pr-writer") is None
            and ctx.config.agents.runtime == "command"
        ):
            return title, body

        base = f"origin/{objective.base_branch}"
        try:
            sandbox = merger_sandbox(ctx)
            prompt = prompts.render_pr_writer(
                objective.description,
                streams_summary="\n".join(
                    f"- {s.title}: {s.description}" for s in merged
                ),
                diffstat=git.diffstat(sandbox, base),
                diff_excerpt=git.diff(sandbox, base),
            )
            result = run_role_agent(ctx, sandbox, "pr-writer", prompt)
        except (TackError, OSError) as exc:
            log.warning("pr-writer failed, using the fallback text: %s", exc)
            return title, body
        messages = result.parsed.messages or prompts.parse_messages(result.output)
        if result.failure is None and messages.get("pr_title"):
            title = messages["pr_title"][:200]
            body = messages.get("pr_body") or body
        return title, body

    def _complete(self) -> None:
        objective = self.objective
        plan = objective.plan
        assert plan is not None
        merged = [s for s in plan.streams if s.status is StreamStatus.MERGED]
        if len(merged) == len(plan.streams):
            outcome = ObjectiveStatus.COMPLETED
        elif merged:
            outcome = ObjectiveStatus.PARTIAL
        else:
            outcome = ObjectiveStatus.FAILED
        with self.ctx.locked():
            objective.transition(outcome)
            plan.transition(PlanStatus.COMPLETED if merged else PlanStatus.FAILED)
            objective.step_id = None
        conflicts = sum(
            1 for e in objective.merge_entries if e.status is MergeStatus.CONFLICT
        )
        note = f", {conflicts} conflict(s)" if conflicts else ""
        self.ctx.emit(
            f"objective {outcome.value}: {len(merged)}/{len(plan.streams)} streams "
            f"merged{note}; branch {objective.merge_branch}"
        )
        if outcome is ObjectiveStatus.COMPLETED:
            self._cleanup()

    def _cleanup(self) -> None:
        """Delete the objective's sandboxes once nothing can resume them."""
        objective = self.objective
        plan = objective.plan
        for stream in plan.streams if plan else []:
            delete_sandbox(self.ctx, stream.sandbox_id)
        delete_sandbox(self.ctx, objective.merger_sandbox_id)
        delete_sandbox(self.ctx, objective.planner_sandbox_id)
