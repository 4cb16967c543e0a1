"""Tests for orphan sandbox cleanup on the local and daytona providers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tack_action.cleanup import parse_duration
from tack_action.commands.cleanup import cleanup
from tack_action.errors import TackError
from tack_action.orchestrator import create_objective
from tack_action.sandbox.daytona import DaytonaProvider
from tack_action.sandbox.local import LocalProvider
from tack_action.state import FileStateStore
from tests.fakes.daytona_server import FakeDaytonaServer

from .helpers import make_repo

ORPHAN = "deadbeef-0000-4000-8000-000000000000"


def invoke(store: FileStateStore, *args: str) -> Result:
    return CliRunner().invoke(cleanup, list(args), obj={"store": store})


def labels(objective: str, role: str = "builder") -> dict[str, str]:
    return {"tack.objective": objective, "tack.role": role, "tack.stream": "s1"}


@pytest.fixture
def local_setup(tmp_path: Path) -> tuple[Path, FileStateStore, LocalProvider, str]:
    root = tmp_path / "sandboxes"
    repo = make_repo(
        tmp_path / "work", {}, config={"sandbox": {"worktree_dir": str(root)}}
    )
    store = FileStateStore(tmp_path / "state")
    active = create_objective("Keep me", repo, store)
    provider = LocalProvider(root)
    provider.create(f"tack-{active.short_id}-s1", labels(active.id))
    provider.create("tack-deadbeef-s1", labels(ORPHAN))
    return repo, store, provider, active.id


def names(provider: LocalProvider) -> list[str]:
    return sorted(sandbox.name for sandbox in provider.find({}))


def test_cleanup_deletes_orphans_keeps_active(local_setup) -> None:
    repo, store, provider, active = local_setup

    result = invoke(store, "--repo", str(repo))

    assert result.exit_code == 0, result.output
    assert names(provider) == [f"tack-{active[:8]}-s1"]
    assert "1 of 2 sandboxes deleted" in result.output


def test_cleanup_dry_run_deletes_nothing(local_setup) -> None:
    repo, store, provider, _ = local_setup

    result = invoke(store, "--repo", str(repo), "--dry-run")

    assert result.exit_code == 0, result.output
    assert len(names(provider)) == 2
    assert "would delete" in result.output


def test_cleanup_named_objective_deletes_active(local_setup) -> None:
    repo, store, provider, active = local_setup

    result = invoke(store, "--repo", str(repo), "--objective", active[:8])

    assert result.exit_code == 0, result.output
    assert names(provider) == ["tack-deadbeef-s1"]


def test_cleanup_older_than_keeps_new(local_setup) -> None:
    repo, store, provider, _ = local_setup

    result = invoke(store, "--repo", str(repo), "--older-than", "1h", "--json")

    assert result.exit_code == 0, result.output
    assert len(names(provider)) == 2
    rows = json.loads(result.output)["sandboxes"]
    assert {row["action"] for row in rows} == {"keep"}


def test_cleanup_invalid_duration_is_error(local_setup) -> None:
    repo, store, _, _ = local_setup

    result = invoke(store, "--repo", str(repo), "--older-than", "soon")

    assert result.exit_code == 1
    assert "Invalid duration 'soon'" in result.output


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90s", 90), ("30m", 1800), ("2h", 7200), ("1d12h", 129600), ("1w", 604800)],
)
def test_parse_duration_accepts_units(text: str, expected: int) -> None:
    assert parse_duration(text) == timedelta(seconds=expected)


def test_parse_duration_rejects_bare_number() -> None:
    with pytest.raises(TackError, match="'15'"):
        parse_duration("15")


# Daytona.


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


def test_cleanup_daytona_deletes_only_this_repo(
    tmp_path: Path, fake: FakeDaytonaServer
) -> None:
    config = {"sandbox": {"provider": "daytona", "daytona": {"api_url": fake.api_url}}}
    repo = make_repo(tmp_path / "work", {}, config=config)
    store = FileStateStore(tmp_path / "state")
    ours = DaytonaProvider(fake.api_key, fake.api_url, repo_label="octo/widgets")
    other = DaytonaProvider(fake.api_key, fake.api_url, repo_label="octo/gadgets")
    orphan = ours.create("tack-deadbeef-s1", labels(ORPHAN))
    orphan.stop()
    other.create("tack-deadbeef-s2", labels(ORPHAN))

    result = invoke(store, "--repo", str(repo), "--repo-label", "octo/widgets")

    assert result.exit_code == 0, result.output
    remaining = [s.data["name"] for s in fake.sandboxes.values()]
    assert remaining == ["tack-deadbeef-s2"]
    assert not fake.requests_matching("POST", rf"/sandbox/{orphan.id}/start")
