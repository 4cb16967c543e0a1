"""The ``tack-action doctor`` command: preflight checks with fix hints."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..doctor import FAIL, run_checks


@click.command()
@click.option(
    "--repo",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=".",
    show_default=True,
    help="Repository whose .tack/config.yaml is checked.",
)
@click.option(
    "--github-repo",
    metavar="OWNER/NAME",
    help="Repository for the token check [default: $GITHUB_REPOSITORY or origin].",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def doctor(repo: Path, github_repo: str | None, as_json: bool) -> None:
    """Check config, credentials, Daytona, the callback URL and the GitHub token.

    Exits 1 when any check fails.
    """
    checks, _ = run_checks(repo, github_repo=github_repo)
    if as_json:
        click.echo(json.dumps([check.as_dict() for check in checks], indent=2))
    else:
        for check in checks:
            click.echo(f"{check.status.upper():<5} {check.name:<13} {check.detail}")
            if check.fix and check.status != "pass":
                click.echo(f"{'':<19} fix: {check.fix}")
    sys.exit(1 if any(check.status == FAIL for check in checks) else 0)
