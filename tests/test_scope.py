"""Tests for file-scope reporting and enforcement in real git repositories."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tack_action.sandbox import git
from tack_action.sandbox.local import LocalProvider, LocalSandbox
from tack_action.scope import changed_paths, enforce_file_scope, out_of_scope


def run_git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-c", "user.name=Seed", "-c", "user.email=seed@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout


@pytest.fixture
def sandbox(tmp_path: Path) -> LocalSandbox:
    seed = tmp_path / "seed"
    for name, text in {
        "src/api/app.py": "v1\n",
        "src/web/page.py": "v1\n",
        "README.md": "hello\n",
    }.items():
        (seed / name).parent.mkdir(parents=True, exist_ok=True)
        (seed / name).write_text(text)
    run_git(seed, "init", "-q", "-b", "main")
    run_git(seed, "add", ".")
    run_git(seed, "commit", "-q", "-m", "Initial commit")
    box = LocalProvider(tmp_path / "sandboxes").create("tack-scope-test", {})
    git.clone(box, str(seed))
    return box


def write(sandbox: LocalSandbox, path: str, text: str) -> None:
    target = Path(sandbox.workdir) / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def read(sandbox: LocalSandbox, path: str) -> str:
    return (Path(sandbox.workdir) / path).read_text()


def commit(sandbox: LocalSandbox, message: str) -> None:
    git.commit_all(sandbox, message, author_name="T", author_email="t@example.com")


def test_changed_paths_committed_and_pending(sandbox: LocalSandbox) -> None:
    base = git.head_sha(sandbox)
    write(sandbox, "src/api/app.py", "v2\n")
    commit(sandbox, "Change the API")
    write(sandbox, "README.md", "edited\n")
    write(sandbox, "notes/new.txt", "new\n")

    paths = changed_paths(sandbox, base)

    assert paths == ["README.md", "notes/new.txt", "src/api/app.py"]


def test_out_of_scope_lists_outside(sandbox: LocalSandbox) -> None:
    base = git.head_sha(sandbox)
    write(sandbox, "src/api/app.py", "v2\n")
    write(sandbox, "src/web/page.py", "v2\n")

    outside = out_of_scope(sandbox, base, ["src/api/**"])

    assert outside == ["src/web/page.py"]


def test_out_of_scope_empty_scope_is_everything(sandbox: LocalSandbox) -> None:
    base = git.head_sha(sandbox)
    write(sandbox, "README.md", "edited\n")

    assert out_of_scope(sandbox, base, []) == []


def test_enforce_reverts_outside_changes(sandbox: LocalSandbox) -> None:
    base = git.head_sha(sandbox)
    write(sandbox, "src/api/app.py", "v2\n")
    write(sandbox, "src/web/page.py", "v2\n")
    commit(sandbox, "Change both")
    write(sandbox, "README.md", "edited\n")
    write(sandbox, "scratch/tmp.txt", "new\n")

    reverted = enforce_file_scope(sandbox, base, ["src/api/"])

    assert reverted == ["README.md", "scratch/tmp.txt", "src/web/page.py"]
    assert read(sandbox, "src/api/app.py") == "v2\n"
    assert read(sandbox, "src/web/page.py") == "v1\n"
    assert read(sandbox, "README.md") == "hello\n"
    assert not (Path(sandbox.workdir) / "scratch" / "tmp.txt").exists()


def test_enforce_leaves_inside_changes(sandbox: LocalSandbox) -> None:
    base = git.head_sha(sandbox)
    write(sandbox, "src/api/app.py", "v2\n")

    reverted = enforce_file_scope(sandbox, base, ["src/api/**"])

    assert reverted == []
    assert read(sandbox, "src/api/app.py") == "v2\n"


def test_enforce_then_commit_keeps_scope(sandbox: LocalSandbox) -> None:
    base = git.head_sha(sandbox)
    write(sandbox, "src/api/app.py", "v2\n")
    write(sandbox, "src/web/page.py", "v2\n")

    enforce_file_scope(sandbox, base, ["src/api/**"])
    commit(sandbox, "Change the API")

    assert git.changed_files(sandbox, base) == ["src/api/app.py"]
