"""Tests for git operations inside a sandbox, against real repositories."""

from __future__ import annotations

import base64
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tack_action.errors import GitError
from tack_action.sandbox import git
from tack_action.sandbox.local import LocalProvider, LocalSandbox

IDENTITY = {"author_name": "Tack Bot", "author_email": "bot@example.com"}


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
def origin(tmp_path: Path) -> Path:
    """Return a bare repository whose main branch has one commit."""
    seed = tmp_path / "seed"
    seed.mkdir()
    run_git(seed, "init", "-q", "-b", "main")
    (seed / "README.md").write_text("hello\n")
    (seed / "app.py").write_text("print('v1')\n")
    run_git(seed, "add", ".")
    run_git(seed, "commit", "-q", "-m", "Initial commit")
    bare = tmp_path / "origin.git"
    run_git(tmp_path, "clone", "-q", "--bare", str(seed), str(bare))
    return bare


@pytest.fixture
def sandbox(tmp_path: Path, origin: Path) -> LocalSandbox:
    box = LocalProvider(tmp_path / "sandboxes").create("tack-git-test", {})
    git.clone(box, str(origin))
    return box


def write(sandbox: LocalSandbox, path: str, text: str) -> None:
    target = Path(sandbox.workdir) / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def read(sandbox: LocalSandbox, path: str) -> str:
    return (Path(sandbox.workdir) / path).read_text()


def test_clone_checks_out_main(sandbox: LocalSandbox) -> None:
    assert read(sandbox, "README.md") == "hello\n"
    assert git.current_branch(sandbox) == "main"


def test_clone_into_non_empty_workdir_raises(tmp_path: Path, origin: Path) -> None:
    box = LocalProvider(tmp_path / "other").create("busy", {})
    write(box, "stray.txt", "x")

    with pytest.raises(GitError):
        git.clone(box, str(origin))


def test_checkout_new_branch_switches(sandbox: LocalSandbox) -> None:
    git.checkout_new_branch(sandbox, "tack/0123abcd/api", "main")

    assert git.current_branch(sandbox) == "tack/0123abcd/api"
    assert git.head_sha(sandbox) == git.head_sha(sandbox, "main")


def test_checkout_returns_to_existing_branch(sandbox: LocalSandbox) -> None:
    git.checkout_new_branch(sandbox, "feature", "main")

    git.checkout(sandbox, "main")

    assert git.current_branch(sandbox) == "main"


def test_head_sha_unknown_ref_raises(sandbox: LocalSandbox) -> None:
    with pytest.raises(GitError):
        git.head_sha(sandbox, "no-such-branch")


def test_option_like_branch_raises(sandbox: LocalSandbox) -> None:
    with pytest.raises(GitError, match="must not start with '-'"):
        git.checkout_new_branch(sandbox, "--orphan", "main")


def test_commit_all_without_changes_returns_none(sandbox: LocalSandbox) -> None:
    assert git.commit_all(sandbox, "Nothing", **IDENTITY) is None


def test_commit_all_commits_untracked_files(sandbox: LocalSandbox) -> None:
    write(sandbox, "new/file.txt", "content\n")
    dirty = git.has_uncommitted_changes(sandbox)

    sha = git.commit_all(sandbox, "Add a file", **IDENTITY)

    people = run_git(Path(sandbox.workdir), "log", "-1", "--format=%an|%ae|%cn|%ce|%s")
    assert dirty is True
    assert sha == git.head_sha(sandbox)
    assert (
        people.strip() == "Tack Bot|bot@example.com|Tack Bot|bot@example.com|Add a file"
    )
    assert git.has_uncommitted_changes(sandbox) is False


def test_commit_all_skips_repository_hooks(sandbox: LocalSandbox) -> None:
    marker = Path(sandbox.tmpdir) / "hook-ran"
    hook = Path(sandbox.workdir) / ".git" / "hooks" / "pre-commit"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    hook.chmod(0o755)
    run_git(Path(sandbox.workdir), "config", "core.hooksPath", ".git/hooks")
    write(sandbox, "app.py", "print('v2')\n")

    sha = git.commit_all(sandbox, "Change app", **IDENTITY)

    assert sha is not None
    assert not marker.exists()


def test_push_then_remote_branch_sha(sandbox: LocalSandbox) -> None:
    git.checkout_new_branch(sandbox, "tack/0123abcd/api", "main")
    write(sandbox, "api.py", "x = 1\n")
    sha = git.commit_all(sandbox, "Add api", **IDENTITY)

    git.push(sandbox, "HEAD", "tack/0123abcd/api")

    assert git.remote_branch_sha(sandbox, "tack/0123abcd/api") == sha


def test_remote_branch_sha_missing_is_none(sandbox: LocalSandbox) -> None:
    assert git.remote_branch_sha(sandbox, "no/such/branch") is None


def test_push_non_fast_forward_needs_force(sandbox: LocalSandbox) -> None:
    git.checkout_new_branch(sandbox, "topic", "main")
    write(sandbox, "a.txt", "1\n")
    git.commit_all(sandbox, "One", **IDENTITY)
    git.push(sandbox, "HEAD", "topic")
    git.reset_hard(sandbox, "main")
    write(sandbox, "b.txt", "2\n")
    rewritten = git.commit_all(sandbox, "Two", **IDENTITY)

    with pytest.raises(GitError):
        git.push(sandbox, "HEAD", "topic")
    git.push(sandbox, "HEAD", "topic", force=True)

    assert git.remote_branch_sha(sandbox, "topic") == rewritten


def test_delete_remote_branch_twice(sandbox: LocalSandbox) -> None:
    git.push(sandbox, "HEAD", "doomed")

    git.delete_remote_branch(sandbox, "doomed")
    git.delete_remote_branch(sandbox, "doomed")

    assert git.remote_branch_sha(sandbox, "doomed") is None


def test_fetch_brings_other_pushes(
    tmp_path: Path, origin: Path, sandbox: LocalSandbox
) -> None:
    other = LocalProvider(tmp_path / "other").create("other", {})
    git.clone(other, str(origin))
    git.checkout_new_branch(other, "theirs", "main")
    write(other, "theirs.txt", "t\n")
    sha = git.commit_all(other, "Theirs", **IDENTITY)
    git.push(other, "HEAD", "theirs")

    git.fetch(sandbox)

    assert git.head_sha(sandbox, "origin/theirs") == sha


def test_fetch_explicit_refspec(tmp_path: Path, origin: Path, sandbox) -> None:
    git.push(sandbox, "HEAD", "extra")

    git.fetch(sandbox, ["+refs/heads/extra:refs/tack/extra"])

    assert git.head_sha(sandbox, "refs/tack/extra") == git.head_sha(sandbox)


def make_branches(sandbox: LocalSandbox, ours: str, theirs: str) -> None:
    """Create branch "theirs" and branch "ours" from main, each editing app.py."""
    git.checkout_new_branch(sandbox, "theirs", "main")
    write(sandbox, "app.py", theirs)
    git.commit_all(sandbox, "Theirs", **IDENTITY)
    git.checkout_new_branch(sandbox, "ours", "main")
    write(sandbox, "app.py", ours)
    git.commit_all(sandbox, "Ours", **IDENTITY)


def test_merge_clean_creates_merge_commit(sandbox: LocalSandbox) -> None:
    git.checkout_new_branch(sandbox, "theirs", "main")
    write(sandbox, "theirs.txt", "t\n")
    git.commit_all(sandbox, "Theirs", **IDENTITY)
    git.checkout(sandbox, "main")

    result = git.merge(sandbox, "theirs", message="Merge theirs", **IDENTITY)

    parents = run_git(Path(sandbox.workdir), "log", "-1", "--format=%P %s")
    assert result.exit_code == 0
    assert len(parents.split()) == 4
    assert parents.strip().endswith("Merge theirs")
    assert read(sandbox, "theirs.txt") == "t\n"


def test_merge_conflict_leaves_merge_open(sandbox: LocalSandbox) -> None:
    make_branches(sandbox, "print('ours')\n", "print('theirs')\n")

    result = git.merge(sandbox, "theirs", **IDENTITY)

    assert result.exit_code != 0
    assert "CONFLICT" in result.output
    assert git.merge_in_progress(sandbox) is True


def test_abort_merge_restores_head(sandbox: LocalSandbox) -> None:
    make_branches(sandbox, "print('ours')\n", "print('theirs')\n")
    before = git.head_sha(sandbox)
    git.merge(sandbox, "theirs", **IDENTITY)

    git.abort_merge(sandbox)

    assert git.merge_in_progress(sandbox) is False
    assert git.head_sha(sandbox) == before
    assert read(sandbox, "app.py") == "print('ours')\n"


def test_merge_strategy_option_theirs(sandbox: LocalSandbox) -> None:
    make_branches(sandbox, "print('ours')\n", "print('theirs')\n")

    result = git.merge(sandbox, "theirs", strategy_option="theirs", **IDENTITY)

    assert result.exit_code == 0
    assert read(sandbox, "app.py") == "print('theirs')\n"


def test_is_ancestor_both_directions(sandbox: LocalSandbox) -> None:
    git.checkout_new_branch(sandbox, "later", "main")
    write(sandbox, "x.txt", "x\n")
    git.commit_all(sandbox, "Later", **IDENTITY)

    assert git.is_ancestor(sandbox, "main", "later") is True
    assert git.is_ancestor(sandbox, "later", "main") is False


def test_changed_files_lists_paths(sandbox: LocalSandbox) -> None:
    base = git.head_sha(sandbox)
    write(sandbox, "app.py", "print('v2')\n")
    write(sandbox, "docs/new file.md", "new\n")
    (Path(sandbox.workdir) / "README.md").unlink()
    git.commit_all(sandbox, "Change", **IDENTITY)

    changed = git.changed_files(sandbox, base)

    assert sorted(changed) == ["README.md", "app.py", "docs/new file.md"]


def test_tracked_files_returns_index(sandbox: LocalSandbox) -> None:
    write(sandbox, "untracked.txt", "u\n")

    assert git.tracked_files(sandbox) == {"README.md", "app.py"}


def test_diff_cuts_at_max_chars(sandbox: LocalSandbox) -> None:
    base = git.head_sha(sandbox)
    write(sandbox, "big.txt", "line\n" * 500)
    git.commit_all(sandbox, "Big", **IDENTITY)

    full = git.diff(sandbox, base)
    cut = git.diff(sandbox, base, max_chars=100)

    assert "+line" in full
    assert cut.startswith(full[:100])
    assert f"[diff cut at 100 of {len(full)} characters]" in cut


def test_diffstat_names_files(sandbox: LocalSandbox) -> None:
    base = git.head_sha(sandbox)
    write(sandbox, "app.py", "print('v2')\n")
    git.commit_all(sandbox, "Change", **IDENTITY)

    stat = git.diffstat(sandbox, base)

    assert "app.py" in stat
    assert "1 file changed" in stat


def test_revert_paths_restores_and_deletes(sandbox: LocalSandbox) -> None:
    base = git.head_sha(sandbox)
    write(sandbox, "app.py", "print('v2')\n")
    write(sandbox, "out/of/scope.py", "x\n")
    write(sandbox, "kept.py", "k\n")
    git.commit_all(sandbox, "Stray edits", **IDENTITY)

    git.revert_paths(sandbox, base, ["app.py", "out/of/scope.py"])
    git.commit_all(sandbox, "Revert out-of-scope files", **IDENTITY)

    assert read(sandbox, "app.py") == "print('v1')\n"
    assert not (Path(sandbox.workdir) / "out").exists()
    assert git.changed_files(sandbox, base) == ["kept.py"]


def test_revert_paths_takes_names_literally(sandbox: LocalSandbox) -> None:
    base = git.head_sha(sandbox)
    write(sandbox, "*", "star\n")
    write(sandbox, "app.py", "print('v2')\n")
    git.commit_all(sandbox, "Odd name", **IDENTITY)

    git.revert_paths(sandbox, base, ["*"])

    assert not (Path(sandbox.workdir) / "*").exists()
    assert read(sandbox, "app.py") == "print('v2')\n"


def test_revert_paths_rejects_parent_components(sandbox: LocalSandbox) -> None:
    with pytest.raises(GitError, match="Invalid repository path"):
        git.revert_paths(sandbox, "HEAD", ["../outside"])


def test_auth_env_builds_basic_header() -> None:
    env = git.auth_env("ghs_secret")

    expected = base64.b64encode(b"x-access-token:ghs_secret").decode()
    assert env == {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "http.extraHeader",
        "GIT_CONFIG_VALUE_0": f"AUTHORIZATION: basic {expected}",
    }


def test_auth_env_rejects_line_break() -> None:
    with pytest.raises(ValueError, match="line break"):
        git.auth_env("abc\nX-Evil: 1")


def test_auth_env_leaves_no_token_on_disk(tmp_path: Path, origin: Path) -> None:
    token = "ghs_canary_token_value"
    encoded = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    box = LocalProvider(tmp_path / "auth").create("auth", {})
    env = git.auth_env(token)

    git.clone(box, str(origin), env=env)
    git.fetch(box, env=env)
    git.push(box, "HEAD", "authed", env=env)

    config = (Path(box.workdir) / ".git" / "config").read_text()
    url = run_git(Path(box.workdir), "remote", "get-url", "origin").strip()
    assert url == str(origin)
    for secret in (token, encoded):
        assert secret not in config
        assert not any(
            secret in path.read_text(errors="replace")
            for path in Path(box.directory).rglob("*")
            if path.is_file() and path.stat().st_size < 1_000_000
        )


class HeaderRecorder(BaseHTTPRequestHandler):
    """Record each request's Authorization header and respond with 404."""

    seen: list[str | None] = []

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization"))
        self.send_response(404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_remote() -> Iterator[str]:
    HeaderRecorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), HeaderRecorder)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/owner/repo.git"
    server.shutdown()
    server.server_close()
    thread.join()


def test_auth_env_sends_header_over_http(
    sandbox: LocalSandbox, http_remote: str
) -> None:
    env = git.auth_env("ghs_over_http")

    with pytest.raises(GitError):
        git.remote_branch_sha(sandbox, "main", env=env, remote=http_remote)

    expected = base64.b64encode(b"x-access-token:ghs_over_http").decode()
    assert HeaderRecorder.seen
    assert HeaderRecorder.seen[0] == f"basic {expected}"


def test_url_rewrite_blocks_credentialed_push(sandbox: LocalSandbox) -> None:
    run_git(
        Path(sandbox.workdir),
        "config",
        "url.http://127.0.0.1:9/.insteadOf",
        "https://github.com/",
    )

    with pytest.raises(GitError, match="url.http://127.0.0.1:9/.insteadof"):
        git.push(sandbox, "HEAD", "x", env=git.auth_env("ghs_x"))


def test_credentialed_fetch_rejects_repo_proxy(
    sandbox: LocalSandbox, origin: Path
) -> None:
    sandbox.exec("git config http.proxy http://127.0.0.1:9")
    sandbox.exec("git config http.sslVerify false")

    with pytest.raises(GitError) as error:
        git.fetch(sandbox, env=git.auth_env("canary-token"), remote=str(origin))

    assert "http.proxy" in str(error.value)
    assert "http.sslverify" in str(error.value)
    assert "canary-token" not in str(error.value)
