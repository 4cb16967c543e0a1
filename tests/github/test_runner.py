"""Workflow commands and environment files."""

from __future__ import annotations

import io
from pathlib import Path

from tack_action.github import runner

from .conftest import parse_outputs


def test_write_outputs_multiline_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / "output"
    values = {"status": "completed", "body": "line one\nline two=x\nEOF"}

    runner.write_outputs(str(path), values)

    assert parse_outputs(path.read_text()) == values


def test_write_outputs_without_file() -> None:
    runner.write_outputs(None, {"status": "x"})


def test_error_escapes_newlines() -> None:
    out = io.StringIO()

    runner.error("first\nsecond 100%", title="a: b, c", out=out)

    assert out.getvalue() == "::error title=a%3A b%2C c::first%0Asecond 100%25\n"


def test_add_mask_masks_each_line() -> None:
    out = io.StringIO()

    runner.add_mask("one\ntwo", out=out)

    lines = sorted(out.getvalue().splitlines())
    assert lines == ["::add-mask::one", "::add-mask::one%0Atwo", "::add-mask::two"]


def test_stop_commands_pairs_token() -> None:
    out = io.StringIO()

    with runner.stop_commands(out=out):
        print("::error::from an agent", file=out)

    first, middle, last = out.getvalue().splitlines()
    token = first.removeprefix("::stop-commands::")
    assert middle == "::error::from an agent"
    assert last == f"::{token}::"
    assert len(token) == 32


def test_append_summary_appends(tmp_path: Path) -> None:
    path = tmp_path / "summary"

    runner.append_summary(str(path), "# one")
    runner.append_summary(str(path), "# two\n")

    assert path.read_text() == "# one\n# two\n"
