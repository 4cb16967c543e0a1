"""Tests for scoped rules: frontmatter, glob overlap, ordering and rendering."""

from __future__ import annotations

from pathlib import Path

import pytest

from tack_action.errors import ConfigError
from tack_action.rules import (
    globs_overlap,
    load_rules,
    parse_rule,
    render_rules,
    select_rules,
)


def write_rule(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


def rule_text(scope: str, body: str, priority: str | None = None) -> str:
    lines = ["---", f"scope: {scope!r}"]
    if priority is not None:
        lines.append(f"priority: {priority}")
    return "\n".join([*lines, "---", body, ""])


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        ("**", "src/api/**", True),
        ("src/**", "src/api/**", True),
        ("src/api/**", "docs/**", False),
        ("src/**/*.py", "src/api/handlers/", True),
        ("src/**/*.py", "src/api/*.md", False),
        ("*.md", "docs/*.md", False),
        ("**/*.md", "docs/*.md", True),
        ("src/api", "src/api/models.py", True),
        ("src/api", "src/apiary/x.py", False),
        ("src/api/", "src/*/views.py", True),
        ("tests/test_[a-m]*.py", "tests/test_login.py", True),
        ("tests/test_[a-m]*.py", "tests/test_user.py", False),
        ("tests/test_[!a-m]*.py", "tests/test_user.py", True),
        ("src/?.py", "src/ab.py", False),
        ("src/**/models.py", "src/models.py", True),
        ("./src/*.py", "/src/app.py", True),
    ],
)
def test_globs_overlap_cases(first: str, second: str, expected: bool) -> None:
    assert globs_overlap(first, second) is expected
    assert globs_overlap(second, first) is expected


def test_parse_rule_reads_frontmatter(tmp_path: Path) -> None:
    text = (
        "---\nscope: [src/**, tests/**]\npriority: high\n"
        "tools:\n  exclude: ['mcp:postgres:*']\n---\n\nUse the repository layer.\n"
    )
    path = write_rule(tmp_path, "db.md", text)

    rule = parse_rule(path)

    assert rule.scope == ("src/**", "tests/**")
    assert rule.priority == "high"
    assert rule.tools == {"exclude": ["mcp:postgres:*"]}
    assert rule.body == "Use the repository layer."


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("Just text.\n", ""),
        ("---\npriority: high\n---\nBody\n", "scope"),
        ("---\nscope: src/**\npriority: urgent\n---\nBody\n", "priority"),
        ("---\nscope: src/**\ntools: [bash]\n---\nBody\n", "tools"),
        ("---\nscope: src/**\nBody\n", ""),
    ],
)
def test_parse_rule_invalid_names_key(tmp_path: Path, text: str, key: str) -> None:
    path = write_rule(tmp_path, "bad.md", text)

    with pytest.raises(ConfigError) as caught:
        parse_rule(path)

    assert caught.value.key == key
    assert caught.value.path == str(path)


def test_load_rules_project_and_user(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    user = tmp_path / "user-rules"
    write_rule(repo / ".tack" / "rules", "b.md", rule_text("src/**", "Project B"))
    write_rule(repo / ".tack" / "rules", "a.md", rule_text("src/**", "Project A"))
    write_rule(repo / ".tack" / "rules", "notes.txt", "ignored")
    write_rule(user, "mine.md", rule_text("**", "User rule"))

    rules = load_rules(repo, user)

    assert [rule.body for rule in rules] == ["Project A", "Project B", "User rule"]


def test_load_rules_default_user_dir(tmp_path: Path) -> None:
    home_rules = Path.home() / ".config" / "tack" / "rules"
    write_rule(home_rules, "home.md", rule_text("**", "From home"))

    rules = load_rules(tmp_path)

    assert [rule.body for rule in rules] == ["From home"]


def test_select_rules_high_first_then_source(tmp_path: Path) -> None:
    directory = tmp_path / "rules"
    paths = {
        "a": write_rule(directory, "a.md", rule_text("src/**", "A")),
        "b": write_rule(directory, "b.md", rule_text("src/**", "B", "high")),
        "c": write_rule(directory, "c.md", rule_text("docs/**", "C", "high")),
        "d": write_rule(directory, "d.md", rule_text("src/api/**", "D", "high")),
    }
    rules = [parse_rule(path) for path in paths.values()]

    chosen = select_rules(rules, ["src/api/**"])

    assert [rule.body for rule in chosen] == ["B", "D", "A"]


def test_select_rules_empty_scope_takes_all(tmp_path: Path) -> None:
    rule = parse_rule(write_rule(tmp_path, "a.md", rule_text("docs/**", "Docs")))

    assert select_rules([rule], []) == [rule]


def test_render_rules_prefixes_high(tmp_path: Path) -> None:
    rules_dir = tmp_path / ".tack" / "rules"
    write_rule(rules_dir, "a.md", rule_text("src/**", "Keep functions small."))
    write_rule(
        rules_dir, "b.md", rule_text("src/**", "Never touch migrations.", "high")
    )
    write_rule(rules_dir, "c.md", rule_text("web/**", "Use the design system."))

    text = render_rules(tmp_path, ["src/app.py"], user_dir=tmp_path / "none")

    assert text == (
        "## Rules\n\n"
        "IMPORTANT CONSTRAINT: Never touch migrations.\n\n"
        "Keep functions small.\n"
    )


def test_render_rules_without_rules_empty(tmp_path: Path) -> None:
    assert render_rules(tmp_path, ["src/**"], user_dir=tmp_path / "none") == ""
