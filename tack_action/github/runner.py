"""Talking to the Actions runner: workflow commands and environment files.

Workflow commands are lines on stdout (``::error::``, ``::add-mask::``,
``::group::``). Outputs and the job summary are appended to the files named by
``GITHUB_OUTPUT`` and ``GITHUB_STEP_SUMMARY``.
"""

from __future__ import annotations

import contextlib
import secrets
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TextIO


def escape_data(text: str) -> str:
    """Percent-encode a workflow command's message as the runner expects."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Percent-encode a workflow command property such as ``title``."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(
    name: str,
    message: str,
    *,
    title: str | None = None,
    out: TextIO | None = None,
) -> None:
    """Print one workflow command line, for example ``::error title=X::text``."""
    stream = out or sys.stdout
    props = f" title={escape_property(title)}" if title else ""
    print(f"::{name}{props}::{escape_data(message)}", file=stream, flush=True)


def add_mask(value: str | None, *, out: TextIO | None = None) -> None:
    """Mask ``value`` and each of its lines in the rest of the job's log."""
    if not value:
        return
    for line in {value, *value.splitlines()}:
        if line.strip():
            command("add-mask", line, out=out)


def error(message: str, *, title: str | None = None, out: TextIO | None = None) -> None:
    """Print an ``::error::`` annotation."""
    command("error", message, title=title, out=out)


def notice(
    message: str, *, title: str | None = None, out: TextIO | None = None
) -> None:
    """Print a ``::notice::`` annotation."""
    command("notice", message, title=title, out=out)


def warning(
    message: str, *, title: str | None = None, out: TextIO | None = None
) -> None:
    """Print a ``::warning::`` annotation."""
    command("warning", message, title=title, out=out)


@contextlib.contextmanager
def group(title: str, *, out: TextIO | None = None) -> Iterator[None]:
    """Fold the lines printed inside the block under ``title`` in the log."""
    stream = out or sys.stdout
    print(f"::group::{escape_data(title)}", file=stream, flush=True)
    try:
        yield
    finally:
        print("::endgroup::", file=stream, flush=True)


@contextlib.contextmanager
def stop_commands(*, out: TextIO | None = None) -> Iterator[None]:
    """Stop the runner from reading workflow commands in untrusted text."""
    stream = out or sys.stdout
    token = secrets.token_hex(16)
    print(f"::stop-commands::{token}", file=stream, flush=True)
    try:
        yield
    finally:
        print(f"::{token}::", file=stream, flush=True)


def write_outputs(path: str | None, outputs: Mapping[str, str]) -> None:
    """Append ``outputs`` to the ``GITHUB_OUTPUT`` file, if the runner gave one.

    Every value uses the ``name<<DELIMITER`` form with a random delimiter, so
    a value can hold newlines and can never end its own block early.
    """
    if not path:
        return
    lines = []
    for name, value in outputs.items():
        delimiter = f"ghadelimiter_{secrets.token_hex(12)}"
        lines += [f"{name}<<{delimiter}", value, delimiter]
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def append_summary(path: str | None, markdown: str) -> None:
    """Append Markdown to the ``GITHUB_STEP_SUMMARY`` file, if the runner gave one."""
    if not path:
        return
    with Path(path).open("a", encoding="utf-8") as handle:
        handle.write(markdown.rstrip("\n") + "\n")
