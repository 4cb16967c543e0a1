"""Tests for parsing, validating and ordering plans."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tack_action.errors import PlanError
from tack_action.model import Plan, PlanStatus, Stream
from tack_action.planning import (
    MAX_PLAN_BYTES,
    dependants,
    dependency_order,
    load_plan_file,
    parse_plan_output,
    validate_plan,
)

PLAN_YAML = """\
streams:
  - title: API endpoints
    description: Add the /items endpoints.
    file_scope: ["src/api/**"]
    dependencies: []
  - title: Docs
    description: Document the endpoints.
    file_scope: ["docs/"]
    dependencies: ["API endpoints"]
quality_gates:
  - pytest -q
  - ruff check .
"""


def fenced(body: str, info: str = "yaml") -> str:
    return f"```{info}\n{body}```\n"


def make_plan(*streams: Stream, gates: list[str] | None = None) -> Plan:
    return Plan(streams=list(streams), quality_gates=gates or [])


def stream(title: str, *deps: str, scope: list[str] | None = None) -> Stream:
    return Stream(
        title=title,
        file_scope=scope if scope is not None else ["src/**"],
        dependencies=list(deps),
    )


def test_parse_plan_output_happy_path() -> None:
    text = "I explored the repository.\n\n" + fenced(PLAN_YAML) + "\nDone."

    plan = parse_plan_output(text)

    assert [s.title for s in plan.streams] == ["API endpoints", "Docs"]
    assert plan.streams[0].description == "Add the /items endpoints."
    assert plan.streams[0].file_scope == ["src/api/**"]
    assert plan.streams[1].dependencies == ["API endpoints"]
    assert plan.quality_gates == ["pytest -q", "ruff check ."]
    assert plan.raw_output == text
    assert plan.status is PlanStatus.DRAFT


def test_parse_plan_output_sets_slugs() -> None:
    plan = parse_plan_output(fenced(PLAN_YAML))

    assert [s.slug for s in plan.streams] == ["api-endpoints", "docs"]


def test_parse_plan_output_uses_last_streams_block() -> None:
    draft = "streams:\n  - title: Draft\n    file_scope: [a]\n"
    config = "agents:\n  max_concurrent: 2\n"
    text = fenced(draft) + "Revised:\n" + fenced(PLAN_YAML) + fenced(config, "yml")

    plan = parse_plan_output(text)

    assert [s.title for s in plan.streams] == ["API endpoints", "Docs"]


def test_parse_plan_output_accepts_bare_and_yml_fences() -> None:
    for info in ("", "yml", "YAML"):
        plan = parse_plan_output("Plan:\n" + fenced(PLAN_YAML, info))

        assert len(plan.streams) == 2, info


def test_parse_plan_output_skips_other_languages() -> None:
    text = fenced(PLAN_YAML) + fenced("streams = []\n", "python")

    plan = parse_plan_output(text)

    assert len(plan.streams) == 2


def test_parse_plan_output_skips_broken_bare_fence() -> None:
    text = fenced(PLAN_YAML) + fenced("$ make: *** [all] Error 2\n\t{oops", "")

    plan = parse_plan_output(text)

    assert len(plan.streams) == 2


def test_parse_plan_output_accepts_unclosed_final_fence() -> None:
    text = "Final answer:\n```yaml\n" + PLAN_YAML

    plan = parse_plan_output(text)

    assert len(plan.streams) == 2


def test_parse_plan_output_accepts_windows_line_endings() -> None:
    text = ("Plan:\n" + fenced(PLAN_YAML) + "Done.\n").replace("\n", "\r\n")

    plan = parse_plan_output(text)

    assert plan.quality_gates == ["pytest -q", "ruff check ."]


def test_parse_plan_output_without_block_fails() -> None:
    with pytest.raises(PlanError, match="no fenced YAML block"):
        parse_plan_output("streams:\n  - title: A\n    file_scope: [a]\n")


def test_parse_plan_output_invalid_yaml_fails() -> None:
    broken = "streams:\n  - title: [unclosed\n"

    with pytest.raises(PlanError, match="Invalid YAML"):
        parse_plan_output(fenced(PLAN_YAML) + fenced(broken))


def test_parse_plan_output_rejects_python_tags() -> None:
    hostile = (
        "streams: !!python/object/apply:os.system ['touch /tmp/tack-pwned']\n"
        "quality_gates: []\n"
    )

    with pytest.raises(PlanError, match="Invalid YAML"):
        parse_plan_output(fenced(hostile))


def test_parse_plan_output_rejects_alias_bomb() -> None:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for level in range(1, 9):
        refs = ", ".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    bomb = "\n".join(lines) + "\nstreams: *a8\n"
    started = time.monotonic()

    with pytest.raises(PlanError, match="anchors and aliases"):
        parse_plan_output(fenced(bomb))

    assert time.monotonic() - started < 5


def test_parse_plan_output_rejects_oversized_text() -> None:
    text = fenced(PLAN_YAML) + "x" * MAX_PLAN_BYTES

    with pytest.raises(PlanError, match="bytes allowed"):
        parse_plan_output(text)


def test_parse_plan_output_keeps_text_as_data() -> None:
    body = (
        "streams:\n"
        "  - title: '$(rm -rf /) ${HOME}'\n"
        "    description: '{objective} $objective'\n"
        "    file_scope: ['src/**']\n"
    )

    plan = parse_plan_output(fenced(body))

    assert plan.streams[0].title == "$(rm -rf /) ${HOME}"
    assert plan.streams[0].description == "{objective} $objective"


def test_parse_plan_output_resolves_dependency_case() -> None:
    body = PLAN_YAML.replace('["API endpoints"]', '["api endpoints"]')

    plan = parse_plan_output(fenced(body))

    assert plan.streams[1].dependencies == ["API endpoints"]


def test_parse_plan_output_makes_slugs_unique() -> None:
    long_title = "Refactor the authentication middleware layer"
    body = (
        "streams:\n"
        "  - {title: 'Add API', file_scope: [a]}\n"
        "  - {title: 'add-api', file_scope: [b]}\n"
        "  - {title: 'ADD  API!', file_scope: [c]}\n"
        f"  - {{title: '{long_title}', file_scope: [d]}}\n"
        f"  - {{title: '{long_title} again', file_scope: [e]}}\n"
    )

    plan = parse_plan_output(fenced(body))

    slugs = [s.slug for s in plan.streams]
    assert slugs[:3] == ["add-api", "add-api-2", "add-api-3"]
    assert slugs[3] == "refactor-the-authentication-mi"
    assert slugs[4] == "refactor-the-authentication-2"
    assert all(len(s) <= 30 for s in slugs)


@pytest.mark.parametrize(
    ("titles", "expected"),
    [
        (["Merge", "Other"], ["merge-stream", "other"]),
        (["Planner", "merge"], ["planner-stream", "merge-stream"]),
        (["Merge stream", "MERGE"], ["merge-stream", "merge-stream-2"]),
    ],
)
def test_parse_plan_output_avoids_reserved_slugs(
    titles: list[str], expected: list[str]
) -> None:
    lines = [
        f"  - {{title: '{title}', file_scope: [f{i}]}}\n"
        for i, title in enumerate(titles)
    ]
    body = "streams:\n" + "".join(lines)

    plan = parse_plan_output(fenced(body))

    assert [s.slug for s in plan.streams] == expected


def test_parse_plan_output_rejects_unknown_stream_key() -> None:
    body = (
        "streams:\n"
        "  - {title: A, file_scope: [a], depends_on: [B]}\n"
        "  - {title: B, file_scope: [b]}\n"
    )

    with pytest.raises(PlanError) as caught:
        parse_plan_output(fenced(body))

    message = str(caught.value)
    assert "'depends_on'" in message
    assert "Stream 'A'" in message
    assert "title, description, file_scope, dependencies" in message


def test_parse_plan_output_unknown_key_untitled_stream() -> None:
    body = "streams:\n  - {titel: A, file_scope: [a]}\n"

    with pytest.raises(PlanError, match="Stream 1 has the unknown key 'titel'"):
        parse_plan_output(fenced(body))


def test_parse_plan_output_rejects_unknown_top_key() -> None:
    body = "streams:\n  - {title: A, file_scope: [a]}\nquality_gate: [pytest]\n"

    with pytest.raises(PlanError) as caught:
        parse_plan_output(fenced(body))

    message = str(caught.value)
    assert "'quality_gate'" in message
    assert "Allowed keys: streams, quality_gates." in message


def test_load_plan_file_rejects_duplicate_key(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(
        "streams:\n  - {title: A, file_scope: [a]}\n"
        "streams:\n  - {title: B, file_scope: [b]}\n",
        encoding="utf-8",
    )

    with pytest.raises(PlanError, match="found duplicate key 'streams'"):
        load_plan_file(path)


def test_parse_plan_output_rejects_duplicate_stream_key() -> None:
    body = "streams:\n  - {title: A, title: B, file_scope: [a]}\n"

    with pytest.raises(PlanError, match="found duplicate key 'title'"):
        parse_plan_output(fenced(body))


def test_parse_plan_output_quality_gates_optional() -> None:
    body = "streams:\n  - {title: A, file_scope: [a]}\n"

    plan = parse_plan_output(fenced(body))

    assert plan.quality_gates == []


@pytest.mark.parametrize(
    ("stream_yaml", "message"),
    [
        ("{title: A, file_scope: src/**}", r"Stream 'A': 'file_scope' must be a list"),
        ("{title: A, file_scope: [a], dependencies: 3}", r"'A': 'dependencies'"),
        ("{title: A, file_scope: [a], dependencies: [3]}", r"'A': every entry"),
        ("{title: A, file_scope: [a], description: [x]}", r"'A': 'description'"),
        ("{title: 7, file_scope: [a]}", r"Stream 1: 'title' must be a string"),
        ("{title: '  ', file_scope: [a]}", r"Stream 1 has an empty title"),
        ("just a string", r"Stream 1 must be a mapping"),
    ],
)
def test_parse_plan_output_wrong_types_name_field(
    stream_yaml: str, message: str
) -> None:
    body = f"streams:\n  - {stream_yaml}\n"

    with pytest.raises(PlanError, match=message):
        parse_plan_output(fenced(body))


def test_parse_plan_output_streams_not_list_fails() -> None:
    with pytest.raises(PlanError, match="'streams' must be a list"):
        parse_plan_output(fenced("streams: {title: A}\n"))


def test_parse_plan_output_gates_not_list_fails() -> None:
    body = "streams:\n  - {title: A, file_scope: [a]}\nquality_gates: pytest\n"

    with pytest.raises(PlanError, match="'quality_gates' must be a list"):
        parse_plan_output(fenced(body))


def test_validate_plan_requires_a_stream() -> None:
    with pytest.raises(PlanError, match="at least one stream"):
        validate_plan(make_plan(), max_streams=8)


def test_validate_plan_limits_stream_count() -> None:
    plan = make_plan(*(stream(f"S{i}") for i in range(4)))

    with pytest.raises(PlanError, match="at most 3.*planning.max_streams"):
        validate_plan(plan, max_streams=3)


def test_validate_plan_accepts_stream_count_at_limit() -> None:
    plan = make_plan(*(stream(f"S{i}") for i in range(3)))

    validate_plan(plan, max_streams=3)

    assert len(plan.streams) == 3


def test_validate_plan_rejects_duplicate_titles() -> None:
    plan = make_plan(stream("A"), stream("A"))

    with pytest.raises(PlanError, match="'A' is used more than once"):
        validate_plan(plan, max_streams=8)


def test_validate_plan_rejects_unknown_dependency() -> None:
    plan = make_plan(stream("A", "Missing"))

    with pytest.raises(PlanError, match="'A' depends on 'Missing'"):
        validate_plan(plan, max_streams=8)


def test_validate_plan_rejects_self_dependency() -> None:
    plan = make_plan(stream("A", "A"))

    with pytest.raises(PlanError, match="'A' depends on itself"):
        validate_plan(plan, max_streams=8)


def test_validate_plan_names_cycle_in_order() -> None:
    plan = make_plan(
        stream("Base"), stream("A", "B"), stream("B", "C"), stream("C", "A")
    )

    with pytest.raises(PlanError, match="'A' -> 'B' -> 'C' -> 'A'"):
        validate_plan(plan, max_streams=8)


@pytest.mark.parametrize(
    ("scope", "message"),
    [
        ([], "non-empty list"),
        ([""], "non-empty string"),
        (["  "], "non-empty string"),
        (["/etc/passwd"], "is absolute"),
        (["C:/repo/src"], "is absolute"),
        (["~/src"], "is absolute"),
        (["src/../../etc"], r"'\.\.' segment"),
        (["..\\secrets"], r"'\.\.' segment"),
    ],
)
def test_validate_plan_rejects_bad_file_scope(scope: list[str], message: str) -> None:
    plan = make_plan(stream("A", scope=scope))

    with pytest.raises(PlanError, match=message):
        validate_plan(plan, max_streams=8)


def test_validate_plan_allows_dots_inside_names() -> None:
    plan = make_plan(stream("A", scope=["src/..hidden/**", ".github/workflows/"]))

    validate_plan(plan, max_streams=8)

    assert plan.streams[0].file_scope[0] == "src/..hidden/**"


def test_validate_plan_rejects_empty_gate() -> None:
    plan = make_plan(stream("A"), gates=["pytest", " "])

    with pytest.raises(PlanError, match="non-empty command"):
        validate_plan(plan, max_streams=8)


def test_load_plan_file_reads_yaml_mapping(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN_YAML, encoding="utf-8")

    plan = load_plan_file(path)

    assert [s.slug for s in plan.streams] == ["api-endpoints", "docs"]


def test_load_plan_file_reads_fenced_text(tmp_path: Path) -> None:
    path = tmp_path / "answer.md"
    path.write_text("Plan below.\n" + fenced(PLAN_YAML), encoding="utf-8")

    plan = load_plan_file(path)

    assert plan.quality_gates == ["pytest -q", "ruff check ."]


def test_load_plan_file_yaml_without_streams_fails(tmp_path: Path) -> None:
    path = tmp_path / "plan.yml"
    path.write_text("- a\n- b\n", encoding="utf-8")

    with pytest.raises(PlanError, match="'streams' key"):
        load_plan_file(path)


def test_load_plan_file_missing_file_fails(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="Cannot read plan file"):
        load_plan_file(tmp_path / "absent.yaml")


def test_load_plan_file_oversized_fails(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN_YAML + "#" * MAX_PLAN_BYTES, encoding="utf-8")

    with pytest.raises(PlanError, match="bytes allowed"):
        load_plan_file(path)


@pytest.mark.timeout(10)
def test_load_plan_file_rejects_fifo(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    os.mkfifo(path)

    with pytest.raises(PlanError, match="is not a regular file"):
        load_plan_file(path)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("name", ["z.yaml", "z.txt"])
def test_load_plan_file_rejects_device_symlink(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.symlink_to("/dev/zero")

    with pytest.raises(PlanError, match="is not a regular file"):
        load_plan_file(path)


def test_load_plan_file_rejects_directory(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="is not a regular file"):
        load_plan_file(tmp_path)


def test_load_plan_file_accepts_size_at_limit(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    padding = MAX_PLAN_BYTES - len(PLAN_YAML.encode("utf-8")) - 1
    path.write_text(PLAN_YAML + "#" * padding + "\n", encoding="utf-8")

    plan = load_plan_file(path)

    assert path.stat().st_size == MAX_PLAN_BYTES
    assert len(plan.streams) == 2


def test_load_plan_file_not_utf8_fails(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_bytes(b"streams: []\n# \xff\n")

    with pytest.raises(PlanError, match="not valid UTF-8"):
        load_plan_file(path)


def test_dependency_order_puts_dependencies_first() -> None:
    plan = make_plan(
        stream("Docs", "API"), stream("API", "Models"), stream("Models"), stream("CLI")
    )

    ordered = dependency_order(plan)

    assert [s.title for s in ordered] == ["Models", "API", "Docs", "CLI"]


def test_dependency_order_keeps_plan_order_for_ties() -> None:
    plan = make_plan(stream("C"), stream("A"), stream("B"))

    ordered = dependency_order(plan)

    assert [s.title for s in ordered] == ["C", "A", "B"]


def test_dependency_order_rejects_cycle() -> None:
    plan = make_plan(stream("A", "B"), stream("B", "A"))

    with pytest.raises(PlanError, match="cycle"):
        dependency_order(plan)


def test_dependants_are_transitive() -> None:
    plan = make_plan(
        stream("Models"),
        stream("Docs", "API"),
        stream("API", "Models"),
        stream("CLI"),
        stream("Tests", "Docs", "CLI"),
    )

    affected = dependants(plan, "Models")

    assert [s.title for s in affected] == ["Docs", "API", "Tests"]


def test_dependants_of_leaf_is_empty() -> None:
    plan = make_plan(stream("A"), stream("B", "A"))

    affected = dependants(plan, "B")

    assert affected == []


def test_dependants_unknown_title_fails() -> None:
    plan = make_plan(stream("A"))

    with pytest.raises(PlanError, match="No stream has the title 'Z'"):
        dependants(plan, "Z")
