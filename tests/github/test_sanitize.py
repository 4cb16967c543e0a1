"""Removing text a rendered issue hides, and fencing issue text as data."""

from __future__ import annotations

import pytest

from tack_action.github.sanitize import (
    fence,
    issue_objective,
    sanitize_line,
    sanitize_markdown,
)


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("a <!-- do evil --> b", "do evil"),
        ("a <!-- never closed\ndo evil", "do evil"),
        ("a <details><summary>x</summary>do evil</details> b", "do evil"),
        ("a <span hidden>do evil</span> b", "do evil"),
        ('a <div style="display: none">do evil</div> b', "do evil"),
        ("a ![do evil](https://x/y.png) b", "do evil"),
        ('a [link](https://x "do evil") b', "do evil"),
        ("a\n[//]: # (do evil)\nb", "do evil"),
        ("a <img alt='do evil' src=x> b", "do evil"),
        ("<details><details>x</details>do evil</details>", "do evil"),
        ("<div hidden><div>x</div>do evil</div>", "do evil"),
        ('<span style="display:none"><span>a</span>do evil</span>', "do evil"),
        ('<span style="visibility: hidden"><b>a</b>do evil</span>', "do evil"),
        ("<span hidden><div></span>do evil</div>", "do evil"),
        ("<div hidden/>do evil", "do evil"),
        ("<script>do evil", "do evil"),
        ("![a [b] do evil](https://x/y.png)", "do evil"),
        ("![do evil][r]\n\n[r]: https://x/y.png", "do evil"),
        ("![do evil][]\n\n[Do Evil]: https://x/y.png", "do evil"),
        ('![x][r]\n\n[r]: https://x/y.png\n  "do evil"', "do evil"),
        ('[x][r]\n\n[r]: https://x/y.png "do evil"', "do evil"),
        ("[![do evil](https://x/y.png)](https://x)", "do evil"),
        ('<img alt="<!--">a <!-- never closed do evil', "do evil"),
        ("<div>\n```\n<details>\n```\ndo evil</details></div>", "do evil"),
        ("a &#x200b;b", "\u200b"),
    ],
)
def test_sanitize_markdown_removes_hidden(text: str, hidden: str) -> None:
    assert hidden not in sanitize_markdown(text)


@pytest.mark.parametrize(
    "char", ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u202e", "\u2066"]
)
def test_sanitize_removes_invisible_characters(char: str) -> None:
    assert sanitize_markdown(f"a{char}b") == "ab"


def test_sanitize_removes_tag_characters() -> None:
    smuggled = "".join(chr(0xE0000 + ord(c)) for c in "evil")

    assert sanitize_markdown(f"ok{smuggled}") == "ok"


def test_sanitize_keeps_visible_text() -> None:
    text = "Fix **bold** and [a link](https://example.invalid).\n\n- item"

    assert sanitize_markdown(text) == text


def test_sanitize_line_collapses_whitespace() -> None:
    assert sanitize_line("  Add\n\ta   <b>counter</b> ") == "Add a counter"


def test_fence_outgrows_backtick_runs() -> None:
    fenced = fence("```\ncode\n```")

    assert fenced.startswith("````text\n")
    assert fenced.endswith("\n````")


def test_issue_objective_quotes_body() -> None:
    description = issue_objective(3, "Add <b>x</b>", "Do it.<!-- evil -->", "bob")

    assert description.splitlines()[0] == "Add x"
    assert "issue #3, opened by @bob" in description
    assert "```markdown\nDo it.\n```" in description
    assert "evil" not in description


def test_sanitize_keeps_code_literal() -> None:
    text = "Use `Vec<u8>` here.\n\n```html\n<b>x</b>\n```\n<!-- gone -->"

    cleaned = sanitize_markdown(text)

    assert "`Vec<u8>`" in cleaned
    assert "```html\n<b>x</b>\n```" in cleaned
    assert "gone" not in cleaned


def test_comment_around_code_span_removed() -> None:
    cleaned = sanitize_markdown("a <!-- `x` hidden --> b")

    assert cleaned == "a  b"


def test_sanitize_strips_invisible_in_code() -> None:
    assert sanitize_markdown("`a\u200bb`") == "`ab`"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<details open>shown</details>", "shown"),
        (
            "<details open>a <details>x</details> b</details>",
            "a [collapsed section removed] b",
        ),
        ("Text[^1]\n\n[^1]: footnote", "Text[^1]\n\n[^1]: footnote"),
        ("```\n<details>\n```\nvisible", "```\n<details>\n```\nvisible"),
        ('<img src=x alt="<details>">visible', "visible"),
        ("see <https://x.invalid/a_b>", "see <https://x.invalid/a_b>"),
        ("[a [b] c](https://x.invalid 't')", "[a [b] c](https://x.invalid)"),
        ("[a][r]\n\n[r]: https://x.invalid", "[a](https://x.invalid)"),
        ("![x][r]\n\n[r]: https://x.invalid/i.png", "[image: https://x.invalid/i.png]"),
        ("a `<!--` b", "a `<!--` b"),
        ('<img alt="<!--">a <!-- b', "a"),
    ],
)
def test_sanitize_markdown_keeps_rendered_text(text: str, expected: str) -> None:
    assert sanitize_markdown(text) == expected


@pytest.mark.parametrize(
    "sequence",
    [
        "\x1b[2J",
        "\x1b[31m",
        "\x1b]52;c;cHduZWQ=\x07",
        "\x1b]0;TITLE\x1b\\",
        "\x9b31m",
        "\x9d0;TITLE\x9c",
        "\x1b(B",
        "\x1bc",
        "\x07\x08\x7f\x85",
    ],
)
def test_sanitize_removes_terminal_escapes(sequence: str) -> None:
    assert sanitize_markdown(f"a{sequence} b") == "a b"


def test_sanitize_line_joins_forged_rows() -> None:
    assert sanitize_line("Evil\nfake1234  completed") == "Evil fake1234 completed"


def test_sanitize_ends_open_escape_at_line() -> None:
    assert sanitize_markdown("a\x1b]0;TITLE\nb") == "a\nb"
