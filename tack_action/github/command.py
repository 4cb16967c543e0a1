"""``tack-action run``: the command ``action.yml`` runs inside the job.

One run handles one event. It reads the inputs and the event, checks who sent
it, finds or creates the issue's tracking comment, runs the orchestrator
until the objective finishes or waits for a person, and writes the outputs
and the job summary.

The orchestrator runs in a worker thread so the main thread can react to the
runner's cancellation (SIGINT, then SIGTERM) and to ``max-minutes``: it then
writes the final comment and summary and ends the process, leaving the saved
state for ``/tack resume``.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import FrameType
from typing import TextIO

import click
from github import Github, GithubException
from github.Issue import Issue
from github.Repository import Repository
from requests.exceptions import RequestException

from ..config import load_config
from ..context import RunContext
from ..errors import StaleStateError, TackError
from ..model import Objective, ObjectiveStatus
from ..orchestrator import Orchestrator, build_context, create_objective
from ..report import format_status
from ..sandbox.git import auth_env
from . import runner
from .client import connect, forge_errors
from .comment import MARKER_PREFIX, RunInfo
from .events import Trigger, read_event
from .forge import GitHubForge, sync_labels
from .sanitize import issue_objective, sanitize_markdown
from .settings import INPUT_PREFIX, SECRET_INPUTS, Settings, read_settings
from .store import CommentStateStore
from .summary import render_error, render_summary
from .trust import ACTIONS_BOT, check_actor

log = logging.getLogger(__name__)

# Objective statuses after which the issue may start a new objective.
FINISHED = (
    ObjectiveStatus.COMPLETED,
    ObjectiveStatus.CANCELLED,
    ObjectiveStatus.FAILED,
)

# Seconds the main thread waits for a worker to release the state lock before
# it writes the final comment anyway.
FINAL_LOCK_WAIT_S = 5.0

# Exit status per objective status at the end of a run that was not stopped.
EXIT_CODES = {ObjectiveStatus.FAILED: 1, ObjectiveStatus.CANCELLED: 0}


@dataclass
class Outcome:
    """The exit status of a run, and whether it must end the process at once."""

    exit_code: int
    interrupted: bool = False


class Stopped(Exception):
    """The runner cancelled the job, or max-minutes ran out."""

    def __init__(self, outcome: str, detail: str) -> None:
        super().__init__(detail)
        self.outcome = outcome
        self.detail = detail


def own_login(gh: Github) -> str:
    """Return the login of the token's account; GITHUB_TOKEN cannot read it."""
    try:
        return gh.get_user().login
    except GithubException as exc:
        log.debug("GET /user failed with HTTP %s; assuming %s", exc.status, ACTIONS_BOT)
        return ACTIONS_BOT


def pull_request_number(url: str | None) -> str:
    match = re.search(r"/pull/(\d+)$", url or "")
    return match.group(1) if match else ""


class ActionRun:
    """One run of the Action for one event."""

    def __init__(self, settings: Settings, out: TextIO) -> None:
        self.settings = settings
        self.out = out
        self.gh = connect(
            settings.github_token,
            settings.api_url,
            seconds_between_writes=settings.write_interval_s,
            backoff_s=settings.retry_backoff_s,
        )
        self.repo: Repository = self.gh.get_repo(settings.repository)
        self.run_info = RunInfo(url=settings.run_url)
        self.store: CommentStateStore | None = None
        self.issue: Issue | None = None
        self.ctx: RunContext | None = None
        self.forge: GitHubForge | None = None
        self.own_login = ACTIONS_BOT

    # Entry

    def handle(self, trigger: Trigger) -> Outcome:
        """Check the trigger, then run the command it carries."""
        assert trigger.command is not None
        if MARKER_PREFIX in trigger.comment_body:
            return self._ignore("the comment is a tack-action tracking comment")
        login = own_login(self.gh)
        decision = check_actor(
            self.repo,
            trigger.actor,
            own_login=login,
            allowed_bots=self.settings.allowed_bots,
        )
        if not decision.allowed:
            return self._ignore(decision.reason)
        log.info("trigger accepted: %s", decision.reason)
        if trigger.is_pull_request:
            return self._ignore(
                "commands on pull requests start nothing; use the issue"
            )

        self.issue = self._issue(trigger)
        self.run_info.issue_number = self.issue.number
        self.own_login = login
        self.store = self._new_store()
        name = trigger.command.name
        if name == "unknown":
            return self._ignore(
                f"unknown command /tack {trigger.command.text}; use plan, approve, "
                "reject, retry, resume, cancel or status"
            )
        if name == "plan":
            return self._plan(trigger)
        objective = self.store.latest()
        if objective is None:
            return self._ignore(
                f"issue #{self.issue.number} has no objective yet; add the "
                f"{self.settings.trigger_label!r} label or comment /tack plan"
            )
        if name == "status":
            return self._status(objective)
        return self._act(objective, _action_for(name, trigger.command.args))

    def _new_store(self) -> CommentStateStore:
        assert self.issue is not None
        return CommentStateStore(
            self.issue,
            own_login=self.own_login,
            interval_s=self.settings.comment_interval_s,
            run=self.run_info,
        )

    def _issue(self, trigger: Trigger) -> Issue:
        with forge_errors("reading the issue"):
            if trigger.issue_number is not None:
                issue = self.repo.get_issue(trigger.issue_number)
                if not trigger.issue_title:
                    trigger.issue_title = issue.title
                    trigger.issue_body = issue.body or ""
                    trigger.issue_author = issue.user.login
                return issue
            # A dispatch without an issue gets one, so its state has a home.
            title = trigger.objective_text.splitlines()[0][:120]
            issue = self.repo.create_issue(
                title=title,
                body=trigger.objective_text,
                labels=[self.settings.trigger_label],
            )
            trigger.issue_number = issue.number
            trigger.issue_title = title
            trigger.issue_body = trigger.objective_text
            trigger.issue_author = trigger.actor.login if trigger.actor else ""
            return issue

    # Commands

    def _plan(self, trigger: Trigger) -> Outcome:
        assert self.store is not None and self.issue is not None
        current = self.store.latest()
        if current is not None and current.status not in FINISHED:
            return self._status(
                current,
                note=f"issue #{self.issue.number} already has objective "
                f"{current.short_id}; it continues there",
            )
        # A finished objective keeps its comment; the new one gets its own.
        self.store = self._new_store()
        if trigger.event == "workflow_dispatch" and trigger.objective_text:
            description = issue_objective(
                self.issue.number,
                trigger.objective_text.splitlines()[0],
                trigger.objective_text,
                trigger.actor.login if trigger.actor else "",
            )
        else:
            description = issue_objective(
                self.issue.number,
                trigger.issue_title,
                trigger.issue_body,
                trigger.issue_author,
            )
        objective = create_objective(
            description,
            self.settings.config_dir,
            self.store,
            origin=self.repo.clone_url,
        )
        if self.settings.base_branch:
            objective.base_branch = self.settings.base_branch
        log.info(
            "created objective %s on issue #%d", objective.short_id, self.issue.number
        )

        def action(orchestrator: Orchestrator) -> Objective:
            result = orchestrator.run()
            waiting = (
                result.plan is not None and result.status is ObjectiveStatus.PLANNING
            )
            if self.settings.approval == "auto" and waiting:
                result = orchestrator.approve()
            return result

        return self._act(objective, action)

    def _status(self, objective: Objective, note: str = "") -> Outcome:
        assert self.store is not None
        print(format_status(objective), file=self.out)
        self.store.finish(_outcome_of(objective), note)
        if note:
            runner.notice(note, out=self.out)
        self._report(objective)
        return Outcome(0)

    def _act(
        self, objective: Objective, action: Callable[[Orchestrator], Objective]
    ) -> Outcome:
        """Run ``action`` on the objective in a worker thread and finish the run."""
        assert self.store is not None
        ctx = self._prepare(objective)
        orchestrator = Orchestrator(ctx)
        self.run_info.outcome = "running"
        self.store.flush(force=True)

        result: dict[str, object] = {}

        def work() -> None:
            try:
                result["objective"] = action(orchestrator)
            except BaseException as exc:  # handled in the main thread below
                result["error"] = exc

        worker = threading.Thread(target=work, name="orchestrator", daemon=True)
        try:
            with runner.stop_commands(out=self.out):
                worker.start()
                self._wait(worker)
        except Stopped as stop:
            return self._stop(objective, stop)

        error = result.get("error")
        if isinstance(error, StaleStateError):
            self.store.close()
            runner.error(str(error), title="tack: stale state", out=self.out)
            return Outcome(1)
        if isinstance(error, TackError):
            return self._fail(objective, str(error))
        if isinstance(error, BaseException):
            log.error("the orchestrator crashed", exc_info=error)
            return self._fail(objective, f"unexpected error: {error!r}")

        self.store.finish(_outcome_of(objective), objective.error or "")
        self._report(objective)
        if objective.status is ObjectiveStatus.FAILED:
            runner.error(objective.error or "the objective failed", out=self.out)
        if objective.status is ObjectiveStatus.PARTIAL:
            runner.warning(
                "some streams failed; see the tracking comment", out=self.out
            )
        return Outcome(EXIT_CODES.get(objective.status, 0))

    def _wait(self, worker: threading.Thread) -> None:
        """Wait for the worker, raising ``Stopped`` on a signal or at max-minutes."""
        stop = threading.Event()
        received: list[str] = []

        def on_signal(signum: int, frame: FrameType | None) -> None:
            received.append(signal.Signals(signum).name)
            stop.set()

        previous = {
            sig: signal.signal(sig, on_signal)
            for sig in (signal.SIGINT, signal.SIGTERM)
        }
        deadline = time.monotonic() + self.settings.max_minutes * 60
        try:
            while worker.is_alive():
                if stop.wait(0.1):
                    raise Stopped(
                        "cancelled",
                        f"the runner sent {received[0]}; the job was cancelled",
                    )
                if time.monotonic() >= deadline:
                    raise Stopped(
                        "timed-out",
                        f"the run reached max-minutes ({self.settings.max_minutes:g})",
                    )
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    # Ending a run

    def _stop(self, objective: Objective, stop: Stopped) -> Outcome:
        """Write the final state while the worker may still run, then end."""
        assert self.store is not None and self.ctx is not None
        locked = self.ctx.changed.acquire(timeout=FINAL_LOCK_WAIT_S)
        try:
            self.store.finish(stop.outcome, stop.detail + "; /tack resume continues")
        except StaleStateError as exc:
            runner.error(str(exc), title="tack: stale state", out=self.out)
        finally:
            if locked:
                self.ctx.changed.release()
        runner.error(stop.detail, title="tack: run stopped", out=self.out)
        self._report(objective)
        return Outcome(1, interrupted=True)

    def _fail(self, objective: Objective, message: str) -> Outcome:
        assert self.store is not None
        try:
            self.store.finish("error", message)
        except TackError as exc:
            log.error("writing the final comment failed: %s", exc)
        runner.error(message, title="tack: run failed", out=self.out)
        runner.append_summary(self.settings.summary_path, render_error(message))
        self._report(objective, summary=False)
        return Outcome(1)

    def _report(self, objective: Objective, *, summary: bool = True) -> None:
        """Write outputs, the job summary, labels and per-stream log groups."""
        assert self.issue is not None
        url = objective.pull_request_url or ""
        self.run_info.pull_request_url = url or None
        runner.write_outputs(
            self.settings.output_path,
            {
                "objective-id": objective.id,
                "status": objective.status.value,
                "pull-request-url": url,
                "pull-request-number": pull_request_number(url),
                "branch": objective.merge_branch,
            },
        )
        if summary:
            runner.append_summary(
                self.settings.summary_path, render_summary(objective, self.run_info)
            )
        try:
            sync_labels(self.issue, objective)
        except TackError as exc:
            runner.warning(f"updating the issue's labels failed: {exc}", out=self.out)
        self._print_groups(objective)

    def _print_groups(self, objective: Objective) -> None:
        plan = objective.plan
        streams = plan.streams if plan else []
        for stream in streams:
            events = [e for e in objective.events if e.stream_id == stream.id]
            with runner.group(
                f"stream {stream.slug}: {stream.status.value}", out=self.out
            ):
                with runner.stop_commands(out=self.out):
                    for event in events:
                        print(f"{event.at} {event.text}", file=self.out)

    def _ignore(self, reason: str) -> Outcome:
        runner.notice(f"tack-action: nothing to do: {reason}", out=self.out)
        runner.write_outputs(self.settings.output_path, {"status": "ignored"})
        return Outcome(0)

    # Wiring the orchestrator

    def _prepare(self, objective: Objective) -> RunContext:
        """Point the objective at this run's origin and checkout, and build a context.

        The origin and config directory always come from this run, never from
        the saved state, so an edited state block cannot redirect the token.
        """
        assert self.store is not None and self.issue is not None
        objective.repo = self.repo.clone_url
        objective.config_dir = str(self.settings.config_dir)
        config = load_config(self.settings.config_dir)
        if self.settings.relay_url:
            config.daemon.external_url = self.settings.relay_url
        self.forge = GitHubForge(
            self.repo,
            objective,
            issue_number=self.issue.number,
            draft=self.settings.draft_pr,
            gates=list(config.quality_gates),
        )
        self.ctx = build_context(
            objective,
            self.store,
            config=config,
            forge=self.forge,
            git_env=auth_env(self.settings.github_token),
        )
        return self.ctx


def _outcome_of(objective: Objective) -> str:
    if objective.status in (ObjectiveStatus.PLANNING, ObjectiveStatus.BLOCKED):
        return "waiting"
    return "finished"


def _action_for(name: str, args: list[str]) -> Callable[[Orchestrator], Objective]:
    """Return the orchestrator call for a ``/tack`` command."""
    text = sanitize_markdown(" ".join(args)) or None
    if name == "approve":
        return lambda o: o.approve()
    if name == "reject":
        return lambda o: o.reject(text)
    if name == "retry":
        if not args:
            raise TackError("/tack retry needs a stream: /tack retry STREAM [guidance]")
        guidance = sanitize_markdown(" ".join(args[1:])) or None
        return lambda o: o.retry(args[0], guidance)
    if name == "resume":
        return lambda o: o.run()
    if name == "cancel":
        return lambda o: o.cancel()
    raise TackError(f"unknown command /tack {name}")


def run_action(env: Mapping[str, str], out: TextIO | None = None) -> Outcome:
    """Run the Action for the event described by ``env``; return how it ended."""
    out = out or sys.stdout
    try:
        settings = read_settings(env)
    except TackError as exc:
        runner.error(str(exc), title="tack: invalid input", out=out)
        runner.append_summary(env.get("GITHUB_STEP_SUMMARY"), render_error(str(exc)))
        return Outcome(1)
    for secret in settings.secrets():
        runner.add_mask(secret, out=out)
    _export_credentials(settings)

    try:
        trigger = read_event(
            settings.event_name, settings.event_path, settings.trigger_label
        )
        if trigger.command is None:
            runner.notice(f"tack-action: nothing to do: {trigger.reason}", out=out)
            runner.write_outputs(settings.output_path, {"status": "ignored"})
            return Outcome(0)
        return ActionRun(settings, out).handle(trigger)
    except StaleStateError as exc:
        runner.error(str(exc), title="tack: stale state", out=out)
        return Outcome(1)
    except (GithubException, RequestException) as exc:
        # Calls outside a forge_errors block still fail with one clear line.
        message = (
            f"a GitHub API request failed ({type(exc).__name__}: {exc}); check "
            "the token's permissions and GitHub's status, then re-run the job"
        )
        runner.error(message, title="tack: run failed", out=out)
        runner.append_summary(settings.summary_path, render_error(message))
        return Outcome(1)
    except TackError as exc:
        runner.error(str(exc), title="tack: run failed", out=out)
        runner.append_summary(settings.summary_path, render_error(str(exc)))
        return Outcome(1)


def _export_credentials(settings: Settings) -> None:
    """Hand agent and sandbox keys to the orchestrator, and drop input copies.

    Local sandboxes start from an empty environment, so nothing here reaches
    an agent unless its runtime passes it on deliberately.
    """
    if settings.daytona_api_key:
        os.environ["DAYTONA_API_KEY"] = settings.daytona_api_key
    if settings.anthropic_api_key:
        os.environ["ANTHROPIC_API_KEY"] = settings.anthropic_api_key
    for name in SECRET_INPUTS:
        os.environ.pop(INPUT_PREFIX + name, None)


@click.command("run")
def run() -> None:
    """Handle this workflow run's event (the command action.yml runs)."""
    # The runner sets RUNNER_DEBUG when a re-run asks for debug logging.
    debug = os.environ.get("ACTIONS_STEP_DEBUG", "").lower() == "true" or (
        os.environ.get("RUNNER_DEBUG") == "1"
    )
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("tack_action").setLevel(logging.DEBUG if debug else logging.INFO)
    # PyGithub logs every retried request at INFO, including the expected 403
    # from GET /user with GITHUB_TOKEN.
    logging.getLogger("github").setLevel(logging.DEBUG if debug else logging.WARNING)
    outcome = run_action(dict(os.environ))
    sys.stdout.flush()
    sys.stderr.flush()
    if outcome.interrupted:
        # Stream workers may still be inside agent calls; the saved state
        # lets /tack resume pick them up, so end without joining them.
        os._exit(outcome.exit_code)
    sys.exit(outcome.exit_code)
