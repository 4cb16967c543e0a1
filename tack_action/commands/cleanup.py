"""The ``tack-action cleanup`` command: remove orphan sandboxes by label."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..cleanup import Candidate, parse_duration, plan_cleanup, remove_sandboxes
from ..config import load_config
from ..errors import TackError
from ..orchestrator import make_provider
from ..state import FileStateStore


def _format_age(candidate: Candidate) -> str:
    if candidate.age is None:
        return "?"
    minutes = int(candidate.age.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes}m"
    return f"{minutes // 60}h"


@click.command()
@click.option(
    "--objective", "objective", metavar="ID", help="Only this objective (id prefix)."
)
@click.option(
    "--older-than",
    metavar="DURATION",
    help="Only sandboxes created longer ago than this, such as 30m, 6h or 2d.",
)
@click.option(
    "--repo",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=".",
    show_default=True,
    help="Repository whose .tack/config.yaml selects the provider.",
)
@click.option(
    "--repo-label",
    metavar="LABEL",
    help="Value of the tack.repo label to match [default: the objective's origin, "
    "the repository path].",
)
@click.option(
    "--dry-run", is_flag=True, help="List what would be deleted; delete none."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def cleanup(
    ctx: click.Context,
    objective: str | None,
    older_than: str | None,
    repo: Path,
    repo_label: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Delete orphan sandboxes: those whose objective is not active here.

    Sandboxes of objectives that are still active in the local state (planning,
    executing or blocked) are kept unless --objective names them.
    """
    store = (ctx.obj or {}).get("store") or FileStateStore()
    try:
        limit = parse_duration(older_than) if older_than else None
        config = load_config(repo)
        label = repo_label or str(repo.resolve())
        provider = make_provider(config, repo_label=label)
        candidates = plan_cleanup(
            provider, store, objective=objective, older_than=limit
        )
        if not dry_run:
            remove_sandboxes(candidates)
    except TackError as exc:
        raise click.ClickException(str(exc)) from None

    if as_json:
        rows = [c.as_dict() for c in candidates]
        click.echo(json.dumps({"dry_run": dry_run, "sandboxes": rows}, indent=2))
    else:
        _print(candidates, dry_run)
    if any(c.action == "failed" for c in candidates):
        ctx.exit(1)


def _print(candidates: list[Candidate], dry_run: bool) -> None:
    if not candidates:
        click.echo("no tack sandboxes found")
        return
    for c in candidates:
        action = "would delete" if dry_run and c.action == "delete" else c.action
        click.echo(
            f"{action:<12} {c.name}  objective {c.objective_id[:8]}  "
            f"{c.role or '-'}  age {_format_age(c)}  ({c.reason})"
        )
    deleted = sum(1 for c in candidates if c.action in ("delete", "deleted"))
    verb = "would be deleted" if dry_run else "deleted"
    click.echo(f"{deleted} of {len(candidates)} sandboxes {verb}")
