"""The ``tack-action snapshot`` commands: create, check and update."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from ..config import TackConfig, load_config
from ..credentials import load_credentials
from ..errors import TackError
from ..orchestrator import make_provider
from ..sandbox import git
from ..sandbox.daytona import DEFAULT_IMAGE, DaytonaProvider
from ..snapshot import (
    BUILD_TIMEOUT_S,
    build_snapshot,
    check_snapshot,
    fingerprint,
    origin_of,
    snapshot_name,
    snapshot_state,
    write_snapshot_name,
)

_repo_option = click.option(
    "--repo",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=".",
    show_default=True,
    help="Repository with the .tack/config.yaml and dependency files.",
)
_image_option = click.option(
    "--image",
    default=DEFAULT_IMAGE,
    show_default=True,
    help="Base image the snapshot is built on; part of the fingerprint.",
)
_origin_option = click.option(
    "--origin",
    help="URL the snapshot clones [default: the repository's origin remote].",
)
_timeout_option = click.option(
    "--timeout",
    type=float,
    default=BUILD_TIMEOUT_S,
    show_default=True,
    help="Seconds the build may take.",
)


def _provider(config: TackConfig, repo: Path) -> DaytonaProvider:
    """Return a Daytona provider that creates sandboxes from the base image."""
    provider = make_provider(config, repo_label=str(repo.resolve()))
    if not isinstance(provider, DaytonaProvider):
        raise TackError(
            "Snapshots exist only on Daytona, but sandbox.provider is "
            f"{config.sandbox.provider!r}; set sandbox.provider: daytona in "
            ".tack/config.yaml."
        )
    # The builder starts from the base image, never from the current snapshot.
    provider.snapshot = ""
    return provider


def _git_env() -> dict[str, str]:
    """Return per-invocation git credentials from $GITHUB_TOKEN or credentials."""
    token = os.environ.get("GITHUB_TOKEN") or load_credentials().git_token()
    return git.auth_env(token) if token else {}


def _build(
    provider: DaytonaProvider,
    repo: Path,
    config: TackConfig,
    name: str,
    origin: str | None,
    timeout: float,
) -> bool:
    """Build snapshot ``name`` unless an active one exists; return True if built."""
    if snapshot_state(provider, name) == "active":
        click.echo(f"Snapshot {name} already exists and is active.", err=True)
        return False
    click.echo(f"Building snapshot {name} from {provider.image} ...", err=True)
    build_snapshot(
        provider,
        repo,
        config,
        origin=origin or origin_of(repo),
        name=name,
        git_env=_git_env(),
        timeout=timeout,
    )
    return True


@click.group()
def snapshot() -> None:
    """Build and check the Daytona snapshot that new sandboxes start from."""


@snapshot.command("create")
@_repo_option
@_image_option
@_origin_option
@_timeout_option
def create_command(repo: Path, image: str, origin: str | None, timeout: float) -> None:
    """Build a snapshot named after the fingerprint of its inputs."""
    try:
        config = load_config(repo)
        provider = _provider(config, repo)
        provider.image = image
        name = snapshot_name(repo, fingerprint(repo, config, image))
        _build(provider, repo, config, name, origin, timeout)
    except TackError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(name)


@snapshot.command("check")
@_repo_option
@_image_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def check_command(repo: Path, image: str, as_json: bool) -> None:
    """Report whether the configured snapshot is missing, stale or current.

    Exits 0 only when it is current.
    """
    try:
        config = load_config(repo)
        verdict = check_snapshot(_provider(config, repo), repo, config, image)
    except TackError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(verdict.as_dict(), indent=2))
    else:
        click.echo(f"{verdict.status}: {verdict.reason}")
        if verdict.status != "current":
            click.echo(f"expected snapshot: {verdict.expected}")
    sys.exit(0 if verdict.status == "current" else 1)


@snapshot.command("update")
@_repo_option
@_image_option
@_origin_option
@_timeout_option
def update_command(repo: Path, image: str, origin: str | None, timeout: float) -> None:
    """Build a fresh snapshot when the configured one is not current, and
    write its name into .tack/config.yaml."""
    try:
        config = load_config(repo)
        provider = _provider(config, repo)
        provider.image = image
        verdict = check_snapshot(provider, repo, config, image)
        if verdict.status == "current":
            click.echo(f"current: {verdict.reason}")
            return
        click.echo(f"{verdict.status}: {verdict.reason}", err=True)
        _build(provider, repo, config, verdict.expected, origin, timeout)
        path = write_snapshot_name(repo, verdict.expected)
    except TackError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"updated: sandbox.daytona.snapshot is {verdict.expected} in {path}")
