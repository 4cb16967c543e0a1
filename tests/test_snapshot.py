"""Tests for snapshot fingerprints, config edits and the snapshot commands."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tack_action.commands.snapshot import snapshot
from tack_action.config import TackConfig, load_config
from tack_action.errors import ConfigError
from tack_action.snapshot import (
    find_manifests,
    fingerprint,
    set_snapshot_in_yaml,
)
from tests.fakes.daytona_server import FakeDaytonaServer

from .helpers import git, make_repo

IMAGE = "python:3.12-slim"

CONFIG_TEXT = """\
# Project settings for tack-action.
sandbox:
  provider: daytona   # remote sandboxes
  daytona:
    api_url: {api_url}
  auto_stop_interval: 30
project_setup:
  # Installs the dependencies into the image.
  commands:
    - echo installed > setup-ran.txt
agents:
  max_concurrent: 2
"""


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    files = {
        "README.md": "# demo\n",
        "pyproject.toml": "[project]\nname = 'demo'\n",
        "poetry.lock": "# lock v1\n",
        "web/package.json": "{}\n",
        "requirements-dev.txt": "pytest\n",
    }
    return make_repo(tmp_path / "work", {}, files=files)


def config_with(*commands: str) -> TackConfig:
    return TackConfig.model_validate({"project_setup": {"commands": list(commands)}})


def test_find_manifests_at_any_depth(repo: Path) -> None:
    found = find_manifests(repo)

    assert found == [
        "poetry.lock",
        "pyproject.toml",
        "requirements-dev.txt",
        "web/package.json",
    ]


def test_fingerprint_changes_with_lock_file(repo: Path) -> None:
    before = fingerprint(repo, config_with("make"), IMAGE)

    (repo / "poetry.lock").write_text("# lock v2\n")

    assert fingerprint(repo, config_with("make"), IMAGE).digest != before.digest


def test_fingerprint_changes_with_setup_and_image(repo: Path) -> None:
    base = fingerprint(repo, config_with("make"), IMAGE).digest

    other_setup = fingerprint(repo, config_with("make all"), IMAGE).digest
    other_image = fingerprint(repo, config_with("make"), "python:3.13-slim").digest

    assert other_setup != base
    assert other_image != base


def test_fingerprint_ignores_other_files(repo: Path) -> None:
    before = fingerprint(repo, config_with("make"), IMAGE).digest

    (repo / "README.md").write_text("# changed\n")

    assert fingerprint(repo, config_with("make"), IMAGE).digest == before


def test_set_snapshot_keeps_comments_and_order() -> None:
    text = CONFIG_TEXT.format(api_url="http://x/api")

    updated = set_snapshot_in_yaml(text, "tack-demo-0123456789ab")

    expected = text.replace(
        "    api_url: http://x/api\n",
        "    snapshot: tack-demo-0123456789ab\n    api_url: http://x/api\n",
    )
    assert updated == expected


def test_set_snapshot_replaces_value_keeps_comment() -> None:
    text = "sandbox:\n  daytona:\n    snapshot: old  # built by CI\n"

    updated = set_snapshot_in_yaml(text, "new-1")

    assert updated == "sandbox:\n  daytona:\n    snapshot: new-1  # built by CI\n"


def test_set_snapshot_appends_missing_section() -> None:
    updated = set_snapshot_in_yaml("# c\nagents:\n  max_concurrent: 2\n", "n1")

    assert updated == (
        "# c\nagents:\n  max_concurrent: 2\nsandbox:\n  daytona:\n    snapshot: n1\n"
    )


def test_set_snapshot_refuses_inline_mapping() -> None:
    with pytest.raises(ConfigError, match="by hand"):
        set_snapshot_in_yaml("sandbox: {provider: daytona}\n", "n1")


# Commands against the fake Daytona server.


@pytest.fixture
def fake(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeDaytonaServer]:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with FakeDaytonaServer(tmp_path / "sbx") as server:
        monkeypatch.setenv("DAYTONA_API_KEY", server.api_key)
        yield server


@pytest.fixture
def daytona_repo(repo: Path, fake: FakeDaytonaServer) -> Path:
    config = repo / ".tack" / "config.yaml"
    config.write_text(CONFIG_TEXT.format(api_url=fake.api_url))
    commit_all(repo, "Use Daytona")
    return repo


def run(*args: str) -> Result:
    return CliRunner().invoke(snapshot, list(args))


def test_snapshot_check_reports_missing(daytona_repo: Path) -> None:
    result = run("check", "--repo", str(daytona_repo), "--json")

    assert result.exit_code == 1
    assert json.loads(result.output)["status"] == "missing"


def test_snapshot_update_builds_and_writes_config(
    daytona_repo: Path, fake: FakeDaytonaServer
) -> None:
    before = (daytona_repo / ".tack" / "config.yaml").read_text()

    result = run("update", "--repo", str(daytona_repo), "--image", IMAGE)

    assert result.exit_code == 0, result.output
    name = load_config(daytona_repo).sandbox.daytona.snapshot
    assert name.startswith("tack-textkit-")
    assert fake.snapshots[name]["state"] == "active"
    assert fake.requests_matching("POST", r"^/api/sandbox/[^/]+/snapshot$")
    assert (fake.snapshot_dir(name) / "repo" / "setup-ran.txt").is_file()
    assert fake.sandboxes == {}
    after = (daytona_repo / ".tack" / "config.yaml").read_text()
    assert after.replace(f"    snapshot: {name}\n", "") == before


def test_snapshot_check_current_after_update(daytona_repo: Path) -> None:
    run("update", "--repo", str(daytona_repo), "--image", IMAGE)

    result = run("check", "--repo", str(daytona_repo), "--image", IMAGE)

    assert result.exit_code == 0, result.output
    assert result.output.startswith("current:")


def test_snapshot_check_stale_after_lock_change(daytona_repo: Path) -> None:
    run("update", "--repo", str(daytona_repo), "--image", IMAGE)
    (daytona_repo / "poetry.lock").write_text("# lock v2\n")

    result = run("check", "--repo", str(daytona_repo), "--image", IMAGE, "--json")

    assert result.exit_code == 1
    verdict = json.loads(result.output)
    assert verdict["status"] == "stale"
    assert "poetry.lock" in verdict["reason"]


def test_snapshot_update_rebuilds_when_stale(
    daytona_repo: Path, fake: FakeDaytonaServer
) -> None:
    run("update", "--repo", str(daytona_repo), "--image", IMAGE)
    first = load_config(daytona_repo).sandbox.daytona.snapshot
    (daytona_repo / "poetry.lock").write_text("# lock v2\n")

    result = run("update", "--repo", str(daytona_repo), "--image", IMAGE)

    assert result.exit_code == 0, result.output
    second = load_config(daytona_repo).sandbox.daytona.snapshot
    assert second != first
    assert set(fake.snapshots) == {first, second}


def test_snapshot_create_is_idempotent(
    daytona_repo: Path, fake: FakeDaytonaServer
) -> None:
    run("create", "--repo", str(daytona_repo), "--image", IMAGE)

    result = run("create", "--repo", str(daytona_repo), "--image", IMAGE)

    assert result.exit_code == 0, result.output
    assert "already exists" in result.output
    assert len(fake.requests_matching("POST", r"/snapshot$")) == 1


def test_snapshot_commands_need_daytona(repo: Path) -> None:
    result = run("check", "--repo", str(repo))

    assert result.exit_code == 1
    assert "sandbox.provider: daytona" in result.output
