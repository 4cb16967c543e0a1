"""Saving objectives in the tracking comment across runs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from github.Issue import Issue

from tack_action.errors import ObjectiveNotFound, StaleStateError, StateError
from tack_action.github.client import connect
from tack_action.github.comment import find_objective_id
from tack_action.github.store import CommentStateStore
from tack_action.model import Objective

from ..fakes.github_server import FakeGitHub
from .conftest import MAINTAINER, VISITOR

BOT = "github-actions[bot]"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def issue(github: FakeGitHub) -> Iterator[Issue]:
    github.add_issue("Track me", "", author=MAINTAINER)
    gh = connect(github.token, github.url, seconds_between_writes=0, backoff_s=0.01)
    yield gh.get_repo(github.full_name).get_issue(1)
    gh.close()


def _tracking(github: FakeGitHub) -> list[dict]:
    return [c for c in github.comments_on(1) if find_objective_id(c["body"])]


def test_first_save_creates_comment(issue: Issue, github: FakeGitHub) -> None:
    store = CommentStateStore(issue, own_login=BOT)
    objective = Objective(description="Do it", repo="x")

    store.save(objective, 0)

    assert objective.version == 1
    assert len(_tracking(github)) == 1


def test_saves_are_coalesced(issue: Issue, github: FakeGitHub) -> None:
    clock = Clock()
    store = CommentStateStore(issue, own_login=BOT, interval_s=10, clock=clock)
    objective = Objective(description="Do it", repo="x")
    store.save(objective, 0)

    for _ in range(5):
        store.save(objective, objective.version)
    clock.now = 11
    store.save(objective, objective.version)

    assert store.edits == 2
    assert len(github.calls("PATCH", r".*/issues/comments/\d+")) == 1


def test_finish_writes_pending_state(issue: Issue, github: FakeGitHub) -> None:
    store = CommentStateStore(issue, own_login=BOT, interval_s=3600)
    objective = Objective(description="Do it", repo="x")
    store.save(objective, 0)
    objective.error = "boom"
    store.save(objective, objective.version)

    store.finish("error", "it broke")

    reloaded = CommentStateStore(issue, own_login=BOT).load(objective.id)
    assert reloaded.error == "boom"
    assert reloaded.version == 2
    assert "it broke" in _tracking(github)[0]["body"]


def test_finish_then_save_raises(issue: Issue) -> None:
    store = CommentStateStore(issue, own_login=BOT)
    objective = Objective(description="Do it", repo="x")
    store.save(objective, 0)
    store.finish("finished")

    with pytest.raises(StateError, match="final state"):
        store.save(objective, objective.version)


def test_newer_version_stops_writer(issue: Issue, github: FakeGitHub) -> None:
    first = CommentStateStore(issue, own_login=BOT, interval_s=0)
    objective = Objective(description="Do it", repo="x")
    first.save(objective, 0)
    mine = CommentStateStore(issue, own_login=BOT, interval_s=0)
    theirs = CommentStateStore(issue, own_login=BOT, interval_s=0)
    loaded = mine.load(objective.id)
    other = theirs.load(objective.id)
    theirs.save(other, other.version)
    body_after_theirs = _tracking(github)[0]["body"]

    with pytest.raises(StaleStateError, match="saved by another run"):
        mine.save(loaded, loaded.version)

    assert _tracking(github)[0]["body"] == body_after_theirs


def test_wrong_expected_version_raises(issue: Issue) -> None:
    store = CommentStateStore(issue, own_login=BOT)
    objective = Objective(description="Do it", repo="x")
    store.save(objective, 0)

    with pytest.raises(StaleStateError):
        store.save(objective, 7)


def test_load_ignores_other_authors(issue: Issue, github: FakeGitHub) -> None:
    store = CommentStateStore(issue, own_login=BOT)
    objective = Objective(description="Do it", repo="x")
    store.save(objective, 0)
    body = _tracking(github)[0]["body"]
    github.state.comments.clear()
    github.add_comment(1, body, author=VISITOR)

    with pytest.raises(ObjectiveNotFound):
        CommentStateStore(issue, own_login=BOT).load(objective.id)


def test_latest_reads_newest_objective(issue: Issue) -> None:
    older = Objective(description="Old", repo="x")
    newer = Objective(description="New", repo="x")
    CommentStateStore(issue, own_login=BOT).save(older, 0)
    CommentStateStore(issue, own_login=BOT).save(newer, 0)

    latest = CommentStateStore(issue, own_login=BOT).latest()

    assert latest is not None
    assert latest.id == newer.id


def test_latest_pages_through_comments(issue: Issue, github: FakeGitHub) -> None:
    objective = Objective(description="Do it", repo="x")
    CommentStateStore(issue, own_login=BOT).save(objective, 0)
    for index in range(150):
        github.add_comment(1, f"chatter {index}", author=MAINTAINER)

    latest = CommentStateStore(issue, own_login=BOT).latest()

    assert latest is not None
    assert latest.id == objective.id
    pages = github.calls("GET", r".*/issues/1/comments")
    assert any(r.query.get("page") == ["2"] for r in pages)


def test_lost_create_response_creates_once(issue: Issue, github: FakeGitHub) -> None:
    github.fail("POST", r".*/issues/1/comments", after=True)
    store = CommentStateStore(issue, own_login=BOT)

    store.save(Objective(description="Do it", repo="x"), 0)

    assert len(_tracking(github)) == 1
    assert len(github.calls("POST", r".*/issues/1/comments")) == 1
