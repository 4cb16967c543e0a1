"""Report output: what reaches the terminal from agent output and issue text."""

from __future__ import annotations

import pytest

from tack_action.report import printable


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("edit src/a.py", "edit src/a.py"),
        ("title\x1b]0;owned\x07 done", "title  done"),
        ("copy\x1b]52;c;ZXZpbA==\x07", "copy "),
        ("\x1b[31mred\x1b[0m", " red "),
        ("one\ntwo\rthree", "one two three"),
        ("bell\x07 and \x9bc1", "bell  and  c1"),
    ],
)
def test_printable_strips_control_sequences(raw: str, expected: str) -> None:
    assert printable(raw) == expected
