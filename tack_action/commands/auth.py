"""The ``tack-action auth`` commands: add, list, test and remove credentials."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from .. import auth as credentials_store
from ..auth_checks import check_credential
from ..config import load_config
from ..credentials import credentials_path
from ..errors import TackError

PROVIDER_CHOICES = click.Choice(
    [*credentials_store.PROVIDERS, *credentials_store.ALIASES], case_sensitive=False
)


@click.group()
def auth() -> None:
    """Add, list, test and remove credentials in Tack's credentials.yaml.

    The file is $TACK_CREDENTIALS_PATH, or ~/.config/tack/credentials.yaml.
    """


@auth.command("add")
@click.argument("provider", type=PROVIDER_CHOICES)
@click.option(
    "--env",
    "env_name",
    metavar="NAME",
    help="Store a reference to environment variable NAME instead of the secret.",
)
@click.option(
    "--command",
    "command",
    metavar="COMMAND",
    help="Store a lookup command whose output is the secret, "
    "such as 'op read op://vault/item'.",
)
@click.option(
    "--host",
    default="github.com",
    show_default=True,
    help="Git host the token is for (github only).",
)
def add_command(
    provider: str, env_name: str | None, command: str | None, host: str
) -> None:
    """Store the secret of PROVIDER.

    Without --env or --command the secret is read from a prompt that does not
    echo, or from standard input when it is not a terminal.
    """
    provider = credentials_store.canonical_provider(provider)
    if env_name is not None and command is not None:
        raise click.UsageError("Pass either --env or --command, not both.")

    try:
        if env_name is not None:
            raw = credentials_store.env_reference(env_name)
            source = f"environment variable {env_name}"
        elif command is not None:
            raw = credentials_store.command_reference(command)
            source = "command"
        else:
            raw = credentials_store.literal_value(_read_secret(provider))
            source = "literal"
        result = credentials_store.add_credential(provider, raw, host=host)
    except TackError as exc:
        raise click.ClickException(str(exc)) from None

    _report_fixed_mode(result)
    click.echo(f"Stored {result.key} ({source}) in {result.path}.")
    if env_name is not None and env_name not in os.environ:
        click.echo(
            f"Note: {env_name} is not set in this shell. Until it is, Tack "
            "reads the stored name as a literal value.",
            err=True,
        )


def _read_secret(provider: str) -> str:
    label = "token" if provider == "github" else "API key"
    if sys.stdin.isatty():
        return click.prompt(f"{provider} {label}", hide_input=True)

    lines = [line for line in sys.stdin.read().splitlines() if line.strip()]
    if len(lines) != 1:
        raise click.UsageError(
            f"Standard input must contain the {label} on one line; "
            f"it contains {len(lines)} non-empty lines."
        )
    return lines[0]


@auth.command("list")
def list_command() -> None:
    """Show each stored provider, its type and its source, with secrets masked."""
    try:
        entries = credentials_store.list_credentials()
    except TackError as exc:
        raise click.ClickException(str(exc)) from None

    if not entries:
        click.echo(f"No credentials in {credentials_path()}.")
        return

    rows = [("PROVIDER", "TYPE", "SOURCE", "SECRET")]
    for entry in entries:
        kind = f"{entry.type} ({entry.host})" if entry.host else entry.type
        rows.append((entry.provider, kind, entry.source, entry.masked))

    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)]
        click.echo("  ".join([*cells, row[3]]))


@auth.command("test")
@click.argument("provider", type=PROVIDER_CHOICES)
def test_command(provider: str) -> None:
    """Make one lightweight authenticated call with PROVIDER's credential.

    Exits with status 1 and the reason when the call fails.
    """
    provider = credentials_store.canonical_provider(provider)
    try:
        api_url = _daytona_api_url() if provider == "daytona" else None
        result = check_credential(provider, daytona_api_url=api_url)
    except TackError as exc:
        raise click.ClickException(str(exc)) from None

    if not result.ok:
        assert result.failure is not None
        click.echo(f"{provider}: {result.failure.value}: {result.message}", err=True)
        for line in result.details:
            click.echo(f"  {line}", err=True)
        sys.exit(1)

    click.echo(f"{provider}: OK, {result.message}")
    for line in result.details:
        click.echo(f"  {line}")


def _daytona_api_url() -> str | None:
    """Return ``sandbox.daytona.api_url`` of the working directory's config."""
    config = load_config(Path.cwd())
    return config.sandbox.daytona.api_url or None


@auth.command("remove")
@click.argument("provider")
def remove_command(provider: str) -> None:
    """Delete PROVIDER's entry from the credentials file."""
    try:
        result = credentials_store.remove_credential(provider)
    except TackError as exc:
        raise click.ClickException(str(exc)) from None

    _report_fixed_mode(result)
    click.echo(f"Removed {result.key} from {result.path}.")


def _report_fixed_mode(result: credentials_store.WriteResult) -> None:
    if result.fixed_mode is None:
        return

    click.echo(
        f"{result.path} had mode {result.fixed_mode:04o}, so other users could "
        "read it. It now has mode 0600.",
        err=True,
    )
