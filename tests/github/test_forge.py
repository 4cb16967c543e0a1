"""Opening the objective's pull request once, and keeping its labels in step."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from github.Repository import Repository

from tack_action.errors import ForgeError
from tack_action.github.client import connect
from tack_action.github.forge import GitHubForge, status_label, sync_labels
from tack_action.model import (
    Objective,
    ObjectiveStatus,
    Plan,
    PlanStatus,
    Stream,
    StreamStatus,
)

from ..fakes.github_server import FakeGitHub
from ..helpers import git, make_repo
from .conftest import MAINTAINER, one_stream_script


@pytest.fixture
def repo(github: FakeGitHub, tmp_path: Path) -> Iterator[Repository]:
    source = make_repo(tmp_path / "work", one_stream_script())
    git(source, "branch", "tack/abcdef12/merge")
    github.publish_repo(source)
    gh = connect(github.token, github.url, seconds_between_writes=0, backoff_s=0.01)
    yield gh.get_repo(github.full_name)
    gh.close()


def _objective() -> Objective:
    streams = [
        Stream(title="Add note", slug="add-note", status=StreamStatus.MERGED),
        Stream(title="Add docs", slug="add-docs", status=StreamStatus.FAILED),
    ]
    streams[1].error = "gate failed"
    plan = Plan(status=PlanStatus.COMPLETED, streams=streams, quality_gates=["make"])
    return Objective(
        id="abcdef12-0000-4000-8000-000000000000",
        description="Add a note",
        repo="x",
        plan=plan,
    )


def _open(forge: GitHubForge) -> str:
    return forge.find_or_create_pull_request(
        head="tack/abcdef12/merge", base="main", title="Add a note", body="fallback"
    )


def test_pull_request_created_once(repo: Repository, github: FakeGitHub) -> None:
    forge = GitHubForge(repo, _objective(), issue_number=4)

    first = _open(forge)
    second = _open(forge)

    assert first == second
    assert len(github.state.pulls) == 1
    assert len(github.calls("POST", r".*/pulls")) == 1


def test_lost_response_still_one_pull(repo: Repository, github: FakeGitHub) -> None:
    github.fail("POST", r".*/pulls", after=True)
    forge = GitHubForge(repo, _objective(), issue_number=4)

    url = _open(forge)

    assert len(github.state.pulls) == 1
    assert url.endswith("/pull/1")


def test_pull_body_adds_gates_and_closes(repo: Repository, github: FakeGitHub) -> None:
    forge = GitHubForge(repo, _objective(), issue_number=4, draft=True)

    _open(forge)

    pull = github.state.pulls[1]
    assert pull["draft"] is True
    assert pull["title"] == "Add a note"
    assert pull["body"].startswith("fallback\n")
    assert "- Add docs: gate failed" in pull["body"]
    assert "- `make`" in pull["body"]
    assert pull["body"].endswith("Closes #4")


def test_pull_without_issue_closes_nothing(
    repo: Repository, github: FakeGitHub
) -> None:
    forge = GitHubForge(repo, _objective(), issue_number=None)

    forge.find_or_create_pull_request(
        head="tack/abcdef12/merge", base="main", title="  ", body="## Summary"
    )

    pull = github.state.pulls[1]
    assert pull["title"] == "tack objective abcdef12"
    assert pull["body"].startswith("## Summary")
    assert "Closes #" not in pull["body"]


def test_missing_branch_is_reported(repo: Repository) -> None:
    forge = GitHubForge(repo, _objective(), issue_number=4)

    with pytest.raises(ForgeError, match="'tack/none/merge'"):
        forge.find_or_create_pull_request(
            head="tack/none/merge", base="main", title="t", body="b"
        )


def test_labels_follow_status(repo: Repository, github: FakeGitHub) -> None:
    github.add_issue("Note", "", author=MAINTAINER, labels=["tack", "bug"])
    issue = repo.get_issue(1)
    objective = _objective()
    objective.status = ObjectiveStatus.EXECUTING
    sync_labels(issue, objective)
    objective.status = ObjectiveStatus.COMPLETED

    sync_labels(repo.get_issue(1), objective)

    assert github.state.issues[1]["labels"] == ["tack", "bug", "tack:done"]


def test_awaiting_approval_label() -> None:
    objective = _objective()
    objective.status = ObjectiveStatus.PLANNING
    objective.plan.status = PlanStatus.PENDING_APPROVAL

    assert status_label(objective) == "tack:awaiting-approval"
