"""The ``tack-action`` command.

Each command parses its options, calls one orchestrator function and turns
our errors into a one-line message with exit status 1. Live watch lines go
to stderr; results go to stdout.

Exit status: 0 when the objective completed or waits for approval, 1 on an
error or a failed objective, 2 when it is blocked on a human, 3 when it ended
partial.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import click

from . import __version__
from .commands.auth import auth
from .commands.cleanup import cleanup
from .commands.doctor import doctor
from .commands.snapshot import snapshot
from .config import load_config
from .credentials import load_credentials
from .demo import OBJECTIVE, create_sample_repo
from .errors import TackError
from .github.command import run
from .model import Objective, ObjectiveStatus
from .orchestrator import Orchestrator, build_context, create_objective
from .planning import load_plan_file
from .report import format_status, printable, status_dict
from .sandbox import git
from .state import FileStateStore

EXIT_CODES = {
    ObjectiveStatus.FAILED: 1,
    ObjectiveStatus.CANCELLED: 1,
    ObjectiveStatus.BLOCKED: 2,
    ObjectiveStatus.PARTIAL: 3,
}


def _store(ctx: click.Context) -> FileStateStore:
    return ctx.obj["store"]


def _finish(objective: Objective) -> None:
    click.echo(format_status(objective))
    sys.exit(EXIT_CODES.get(objective.status, 0))


def _orchestrator(store: FileStateStore, objective_id: str) -> Orchestrator:
    objective = store.load(objective_id)
    return Orchestrator(
        build_context(objective, store, git_env=_git_env(objective.repo))
    )


def _git_env(origin: str) -> dict[str, str]:
    """Return per-invocation git credentials for an HTTPS origin, if any exist."""
    if not origin.startswith(("https://", "http://")):
        return {}
    token = os.environ.get("GITHUB_TOKEN") or load_credentials().git_token()
    return git.auth_env(token) if token else {}


def _run_locked(store: FileStateStore, objective_id: str, action) -> Objective:
    """Run ``action(orchestrator)`` while holding the objective's run lock."""
    full_id = store.resolve(objective_id)
    with store.run_lock(full_id):
        try:
            return action(_orchestrator(store, full_id))
        except KeyboardInterrupt:
            # Worker threads would finish their current step first; stop now.
            # Every change is already saved, and resume stops leftover agents.
            click.echo(
                f"\nInterrupted. Continue with: tack-action resume {full_id[:8]}",
                err=True,
            )
            os._exit(130)


@click.group()
@click.version_option(__version__, prog_name="tack-action")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="TACK_STATE_DIR",
    help="Directory for saved objectives [default: $XDG_STATE_HOME/tack-action].",
)
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail to stderr.")
@click.pass_context
def main(ctx: click.Context, state_dir: Path | None, verbose: bool) -> None:
    """Turn an objective into a reviewed, tested, merged branch."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    ctx.obj = {"store": FileStateStore(state_dir)}


@main.command()
@click.argument("objective")
@click.option(
    "--repo",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=".",
    show_default=True,
    help="Git repository the objective changes.",
)
@click.option(
    "--plan-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Use this plan (YAML, or text with a fenced YAML block) and skip the planner.",
)
@click.option("--approve", is_flag=True, help="Approve the plan and run it at once.")
@click.option(
    "--blueprint", help="Top-level blueprint id [default: resolved as Tack does]."
)
@click.pass_context
def plan(
    ctx: click.Context,
    objective: str,
    repo: Path,
    plan_file: Path | None,
    approve: bool,
    blueprint: str | None,
) -> None:
    """Create an objective and plan it."""
    store = _store(ctx)
    try:
        supplied = None
        if plan_file is not None:
            limit = load_config(repo).planning.max_streams
            supplied = load_plan_file(plan_file, max_streams=limit)
        created = create_objective(
            objective, repo, store, blueprint=blueprint, plan=supplied
        )
        click.echo(
            f"Created objective {created.short_id}: {printable(created.description)}",
            err=True,
        )

        def action(orchestrator: Orchestrator) -> Objective:
            result = orchestrator.run()
            if approve and result.status is ObjectiveStatus.PLANNING and result.plan:
                result = orchestrator.approve()
            return result

        result = _run_locked(store, created.id, action)
    except TackError as exc:
        raise click.ClickException(str(exc)) from None
    _finish(result)


@main.command()
@click.argument("objective_id")
@click.pass_context
def approve(ctx: click.Context, objective_id: str) -> None:
    """Approve an objective's plan and run it."""
    _act(ctx, objective_id, lambda o: o.approve())


@main.command()
@click.argument("objective_id")
@click.option("--feedback", help="What the planner should change.")
@click.pass_context
def reject(ctx: click.Context, objective_id: str, feedback: str | None) -> None:
    """Reject an objective's plan and plan again."""
    _act(ctx, objective_id, lambda o: o.reject(feedback))


@main.command()
@click.argument("objective_id")
@click.pass_context
def resume(ctx: click.Context, objective_id: str) -> None:
    """Continue an objective from its saved state, after a crash or a stop."""
    _act(ctx, objective_id, lambda o: o.run())


@main.command()
@click.argument("objective_id")
@click.argument("stream")
@click.option("--guidance", help="Guidance for the stream's next builder run.")
@click.pass_context
def retry(
    ctx: click.Context, objective_id: str, stream: str, guidance: str | None
) -> None:
    """Retry a blocked or failed STREAM (id prefix, slug or title)."""
    _act(ctx, objective_id, lambda o: o.retry(stream, guidance))


def _act(ctx: click.Context, objective_id: str, action) -> None:
    try:
        result = _run_locked(_store(ctx), objective_id, action)
    except TackError as exc:
        raise click.ClickException(str(exc)) from None
    _finish(result)


@main.command()
@click.argument("objective_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def status(ctx: click.Context, objective_id: str | None, as_json: bool) -> None:
    """Show one objective, or list them all."""
    store = _store(ctx)
    try:
        if objective_id:
            objective = store.load(objective_id)
            text = json.dumps(status_dict(objective), indent=2) if as_json else None
            click.echo(text or format_status(objective))
            return
        objectives = store.list() if store.objectives.exists() else []
    except TackError as exc:
        raise click.ClickException(str(exc)) from None

    if as_json:
        click.echo(json.dumps([status_dict(o) for o in objectives], indent=2))
        return
    if not objectives:
        click.echo("no objectives yet; start one with tack-action plan OBJECTIVE")
    for objective in objectives:
        click.echo(
            f"{objective.short_id}  {objective.status.value:<10} "
            f"{printable(objective.description)[:70]}"
        )


@main.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to create the sample repository [default: a new temporary directory].",
)
@click.pass_context
def demo(ctx: click.Context, directory: Path | None) -> None:
    """Run a three-stream objective on a sample repository with a scripted agent."""
    root = directory or Path(tempfile.mkdtemp(prefix="tack-demo-"))
    store = _store(ctx)
    try:
        repo = create_sample_repo(root)
        click.echo(f"Sample repository: {repo}", err=True)
        created = create_objective(OBJECTIVE, repo, store)

        def action(orchestrator: Orchestrator) -> Objective:
            orchestrator.run()
            return orchestrator.approve()

        result = _run_locked(store, created.id, action)
    except TackError as exc:
        raise click.ClickException(str(exc)) from None

    click.echo(format_status(result))
    if result.status is ObjectiveStatus.COMPLETED:
        click.echo("")
        click.echo(f"The merged result is branch {result.merge_branch} in {repo}.")
        click.echo("Inspect it with:")
        click.echo(f"  git -C {repo} log --oneline --graph {result.merge_branch}")
        click.echo(f"  git -C {repo} diff main...{result.merge_branch}")
        click.echo(f"  tack-action status {result.short_id}")
        _check_demo_tests(repo, result.merge_branch)
    sys.exit(EXIT_CODES.get(result.status, 0))


def _check_demo_tests(repo: Path, branch: str) -> None:
    """Run the sample project's tests on a fresh clone of the merge branch."""
    from .demo import gate_command

    with tempfile.TemporaryDirectory(prefix="tack-demo-check-") as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(
            ["git", "clone", "-q", "-b", branch, str(repo), str(clone)], check=True
        )
        result = subprocess.run(
            gate_command(), shell=True, cwd=clone, capture_output=True, text=True
        )
    verdict = "pass" if result.returncode == 0 else "FAIL"
    click.echo(f"Sample project tests on a fresh clone of {branch}: {verdict}")
    if result.returncode != 0:
        click.echo(result.stderr[-2000:], err=True)
        sys.exit(1)


# Command groups defined in their own modules.
main.add_command(auth)
main.add_command(cleanup)
main.add_command(doctor)
main.add_command(run)
main.add_command(snapshot)
