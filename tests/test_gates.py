"""Tests for quality gates and file-scope attribution."""

from __future__ import annotations

from pathlib import Path

import pytest

from tack_action.errors import SandboxError
from tack_action.gates import (
    GateReport,
    GateResult,
    extract_paths,
    in_scope,
    list_files,
    run_gates,
)
from tests.fakes.dir_sandbox import DirSandbox, make_repo

WORKDIR = "/home/daytona/repo"
KNOWN = {
    "src/api/items.py",
    "src/api/__init__.py",
    "src/models.py",
    "pkg/mod.go",
    "pkg/mod_test.go",
    "tests/test_a.py",
    "web/src/app.ts",
    "README.md",
}

REPO_FILES = {
    "src/api/items.py": "print('items')\n",
    "src/models.py": "print('models')\n",
    "docs/guide.md": "# Guide\n",
    "README.md": "# Demo\n",
}


@pytest.fixture
def repo(tmp_path: Path) -> DirSandbox:
    return make_repo(tmp_path / "repo", REPO_FILES)


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("src/models.py:12:3: E501 line too long", ["src/models.py"]),
        ("src/models.py:12: error: Incompatible types", ["src/models.py"]),
        (
            f'  File "{WORKDIR}/src/api/items.py", line 4, in <module>',
            ["src/api/items.py"],
        ),
        ("./pkg/mod.go:7:2: undefined: x", ["pkg/mod.go"]),
        ("FAILED tests/test_a.py::test_b - AssertionError", ["tests/test_a.py"]),
        ("tests/test_a.py::test_b[param-1] FAILED", ["tests/test_a.py"]),
        ("web/src/app.ts(12,3): error TS2322: Type 'x'", ["web/src/app.ts"]),
        ("  --> src/models.py:3:5", ["src/models.py"]),
        ("::error file=src/models.py,line=3::bad", ["src/models.py"]),
        (f"{WORKDIR}/README.md", ["README.md"]),
        ("    mod_test.go:12: expected 3, got 4", ["pkg/mod_test.go"]),
        ("see src/models.py.", ["src/models.py"]),
    ],
)
def test_extract_paths_formats(output: str, expected: list[str]) -> None:
    paths = extract_paths(output, KNOWN, WORKDIR)

    assert paths == expected


def test_extract_paths_ignores_non_files() -> None:
    output = (
        "pytest 8.1.2 on python 3.12.0, see https://docs.pytest.org/src/models.py\n"
        "error: main failed in /usr/lib/python3/src/models.py\n"
        "1.2.3 ../src/models.py main\n"
    )

    paths = extract_paths(output, KNOWN, WORKDIR)

    assert paths == []


def test_extract_paths_deduplicates_in_order() -> None:
    output = "src/models.py:1\ntests/test_a.py:2\nsrc/models.py:3\n"

    paths = extract_paths(output, KNOWN, WORKDIR)

    assert paths == ["src/models.py", "tests/test_a.py"]


def test_extract_paths_handles_workdir_trailing_slash() -> None:
    output = f"{WORKDIR}/src/models.py:3"

    paths = extract_paths(output, KNOWN, WORKDIR + "/")

    assert paths == ["src/models.py"]


@pytest.mark.parametrize(
    ("path", "globs", "expected"),
    [
        ("src/api/items.py", ["src/api/**"], True),
        ("src/api/v1/deep/items.py", ["src/api/**"], True),
        ("src/apis/items.py", ["src/api/**"], False),
        ("src/api/items.py", ["src/**/*.py"], True),
        ("src/items.py", ["src/**/*.py"], True),
        ("src/items.js", ["src/**/*.py"], False),
        ("src/items.py", ["src/*.py"], True),
        ("src/api/items.py", ["src/*.py"], False),
        ("src/api/items.py", ["src/*"], False),
        ("tests/test_x.py", ["**/test_*.py"], True),
        ("test_x.py", ["**/test_*.py"], True),
        ("src/api/items.py", ["src/api"], True),
        ("src/api/items.py", ["src/api/"], True),
        ("src/apiary.py", ["src/api"], False),
        ("README.md", ["README.md"], True),
        ("./src/a.py", ["./src/"], True),
        ("src/a.py", ["/src/**"], True),
        ("src/b1.py", ["src/[ab][0-9].py"], True),
        ("src/c1.py", ["src/[ab][0-9].py"], False),
        ("src/c1.py", ["src/[!ab]1.py"], True),
        ("src/a1.py", ["docs/**", "src/a?.py"], True),
        ("src/a1.py", [], False),
    ],
)
def test_in_scope_globs(path: str, globs: list[str], expected: bool) -> None:
    result = in_scope(path, globs)

    assert result is expected


def test_run_gates_all_pass(repo: DirSandbox) -> None:
    report = run_gates(repo, ["true", "echo ok"])

    assert report.passed is True
    assert report.failed is None
    assert [r.exit_code for r in report.results] == [0, 0]
    assert report.results[1].output == "ok\n"
    assert report.fix_context() == ""


def test_run_gates_runs_in_order_in_workdir(repo: DirSandbox) -> None:
    report = run_gates(repo, ["pwd > first.txt", "cat first.txt"])

    assert report.results[1].output.strip() == repo.workdir


def test_run_gates_first_failure_stops_chain(repo: DirSandbox) -> None:
    report = run_gates(repo, ["echo one", "echo broken; exit 3", "touch ran.txt"])

    assert report.passed is False
    assert report.failed is report.results[1]
    assert report.failed.exit_code == 3
    assert len(report.results) == 2
    assert not (Path(repo.workdir) / "ran.txt").exists()


def test_run_gates_without_scope_fails_on_any_file(repo: DirSandbox) -> None:
    report = run_gates(repo, ["echo 'docs/guide.md:1: bad heading'; exit 1"])

    assert report.passed is False
    assert report.attributed_elsewhere is False


def test_run_gates_without_scope_skips_file_listing(repo: DirSandbox) -> None:
    run_gates(repo, ["exit 1"])

    assert repo.commands == ["exit 1"]


def test_run_gates_in_scope_failure_fails(repo: DirSandbox) -> None:
    command = "echo 'src/api/items.py:1:1: F401 unused'; echo 'docs/guide.md:2'; exit 1"

    report = run_gates(repo, [command, "touch ran.txt"], scope=["src/api/**"])

    assert report.passed is False
    assert report.failed is report.results[0]
    assert report.in_scope_paths == ["src/api/items.py"]
    assert report.out_of_scope_paths == ["docs/guide.md"]
    assert not (Path(repo.workdir) / "ran.txt").exists()


def test_run_gates_out_of_scope_failure_passes(repo: DirSandbox) -> None:
    command = f"echo '{repo.workdir}/src/models.py:3: error'; exit 1"

    report = run_gates(repo, [command, "echo next"], scope=["src/api/**"])

    assert report.passed is True
    assert report.failed is None
    assert report.attributed_elsewhere is True
    assert report.out_of_scope_paths == ["src/models.py"]
    assert len(report.results) == 2


def test_run_gates_elsewhere_then_in_scope_fails(repo: DirSandbox) -> None:
    commands = [
        "echo 'src/models.py:3: error'; exit 1",
        "echo 'src/api/items.py:9: error'; exit 2",
    ]

    report = run_gates(repo, commands, scope=["src/api/**"])

    assert report.passed is False
    assert report.failed is report.results[1]
    assert report.attributed_elsewhere is True
    assert report.in_scope_paths == ["src/api/items.py"]
    assert report.out_of_scope_paths == ["src/models.py"]


def test_run_gates_output_without_files_fails(repo: DirSandbox) -> None:
    report = run_gates(repo, ["echo 'Segmentation fault'; exit 139"], scope=["src/**"])

    assert report.passed is False
    assert report.attributed_elsewhere is False
    assert report.in_scope_paths == []


def test_run_gates_sees_untracked_files(repo: DirSandbox) -> None:
    (Path(repo.workdir) / "src" / "api" / "new.py").write_text("x = (\n")
    command = "echo 'src/api/new.py:1: SyntaxError'; exit 1"

    report = run_gates(repo, [command], scope=["src/api/**"])

    assert report.passed is False
    assert report.in_scope_paths == ["src/api/new.py"]


def test_run_gates_passes_environment(repo: DirSandbox) -> None:
    report = run_gates(
        repo, ['test "$GATE_MODE" = strict'], env={"GATE_MODE": "strict"}
    )

    assert report.passed is True


def test_run_gates_timeout_raises(repo: DirSandbox) -> None:
    with pytest.raises(SandboxError, match="timed out"):
        run_gates(repo, ["sleep 5"], timeout=0.2)


def test_list_files_outside_repository_is_empty(tmp_path: Path) -> None:
    sandbox = DirSandbox(tmp_path / "plain")
    (tmp_path / "plain").mkdir()

    files = list_files(sandbox)

    assert files == set()


def test_run_gates_without_repository_blames_stream(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    sandbox = DirSandbox(tmp_path / "plain")

    report = run_gates(sandbox, ["echo 'src/x.py:1: bad'; exit 1"], scope=["lib/**"])

    assert report.passed is False


def test_fix_context_keeps_output_end() -> None:
    output = "".join(f"line {i}\n" for i in range(1000)) + "FINAL ERROR"
    failed = GateResult(command="pytest -q", exit_code=1, output=output, duration_s=1)
    report = GateReport(
        results=[failed], passed=False, failed=failed, in_scope_paths=["src/a.py"]
    )

    context = report.fix_context(limit=200)

    assert context.startswith("Quality gate failed: pytest -q\nExit code: 1\n")
    assert "src/a.py" in context
    assert context.endswith("FINAL ERROR")
    assert "line 0\n" not in context
    assert len(context) < 400
