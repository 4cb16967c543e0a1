"""Objective state saved in the tracking comment, across workflow runs.

Each workflow run is a fresh machine, so the objective's state lives in the
hidden block of its tracking comment. ``CommentStateStore`` implements the
``StateStore`` protocol on top of that comment. Saves happen many times a
second while streams run, so it edits the comment at most once per
``interval_s`` and writes the last state when the run ends.

Before every edit it reads the comment back. If the stored version is not the
one this run last wrote, another run has saved since, so this run raises
``StaleStateError`` and stops writing instead of overwriting that state.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from github import GithubException
from github.Issue import Issue
from github.IssueComment import IssueComment
from requests.exceptions import RequestException

from ..errors import ForgeError, ObjectiveNotFound, StaleStateError, StateError
from ..model import Objective, utc_now
from .client import forge_errors
from .comment import (
    MARKER_PREFIX,
    RunInfo,
    decode_state,
    find_objective_id,
    marker,
    render_comment,
    stored_version,
)
from .trust import same_login

log = logging.getLogger(__name__)

# Attempts at creating the tracking comment; see ``_create``.
CREATE_ATTEMPTS = 3


def tracking_comments(issue: Issue, own_login: str) -> list[IssueComment]:
    """Return the issue's tracking comments written by ``own_login``, oldest first.

    Comments by anyone else are ignored even when they copy the marker, so a
    commenter cannot plant a forged state block.
    """
    with forge_errors(f"listing the comments of issue #{issue.number}"):
        return [
            comment
            for comment in issue.get_comments()
            if MARKER_PREFIX in (comment.body or "")
            and same_login(comment.user.login, own_login)
        ]


class CommentStateStore:
    """Saves one objective in its tracking comment on ``issue``."""

    def __init__(
        self,
        issue: Issue,
        *,
        own_login: str,
        interval_s: float = 10.0,
        run: RunInfo | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issue = issue
        self.own_login = own_login
        self.interval_s = interval_s
        self.run = run or RunInfo()
        self.comment: IssueComment | None = None
        self._clock = clock
        self._lock = threading.RLock()
        self._objective: Objective | None = None
        self._written_version: int | None = None
        self._known_version: int | None = None
        self._last_write = float("-inf")
        self._dirty = False
        self._closed = False
        self.edits = 0

    # The StateStore protocol

    def load(self, objective_id: str) -> Objective:
        """Return the objective saved in its tracking comment on the issue."""
        with self._lock:
            for comment in reversed(tracking_comments(self.issue, self.own_login)):
                found = find_objective_id(comment.body)
                if found and (found == objective_id or found.startswith(objective_id)):
                    return self._adopt(comment)
        raise ObjectiveNotFound(
            f"issue #{self.issue.number} has no tracking comment for objective "
            f"{objective_id!r}; start one with /tack plan"
        )

    def latest(self) -> Objective | None:
        """Return the issue's most recent objective, or None if it has none."""
        with self._lock:
            comments = tracking_comments(self.issue, self.own_login)
            if not comments:
                return None
            return self._adopt(comments[-1])

    def save(self, objective: Objective, expected_version: int) -> None:
        """Record a new version, editing the comment when the interval has passed."""
        with self._lock:
            if self._closed:
                raise StateError(
                    f"this run already wrote its final state for objective "
                    f"{objective.short_id}; no further saves are accepted"
                )
            if self._known_version is not None and expected_version != (
                self._known_version
            ):
                raise StaleStateError(
                    f"objective {objective.short_id} is at version "
                    f"{self._known_version}, not {expected_version}; reload it"
                )
            objective.version = expected_version + 1
            objective.updated_at = utc_now()
            self._known_version = objective.version
            self._objective = objective
            self._dirty = True
            due = self._clock() - self._last_write >= self.interval_s
            if self.comment is None or due:
                self.flush()

    # Writing the comment

    def flush(self, *, force: bool = False) -> None:
        """Write the latest state to the comment if it changed (or ``force``)."""
        with self._lock:
            objective = self._objective
            if objective is None or self._closed or not (self._dirty or force):
                return
            body = render_comment(objective, self.run)
            if self.comment is None:
                self.comment = self._create(objective, body)
            else:
                self._check_not_stale(objective)
                with forge_errors(f"editing tracking comment {self.comment.id}"):
                    self.comment.edit(body)
            self._written_version = objective.version
            self._last_write = self._clock()
            self._dirty = False
            self.edits += 1

    def finish(self, outcome: str, detail: str = "") -> None:
        """Write the final state with the run's outcome, then accept no more saves."""
        with self._lock:
            self.run.outcome = outcome
            self.run.detail = detail
            try:
                self.flush(force=True)
            finally:
                self._closed = True

    def close(self) -> None:
        """Accept no more saves or writes, without writing anything."""
        with self._lock:
            self._closed = True

    @property
    def objective(self) -> Objective | None:
        return self._objective

    # Helpers

    def _adopt(self, comment: IssueComment) -> Objective:
        objective = decode_state(comment.body)
        self.comment = comment
        self._objective = objective
        self._written_version = objective.version
        self._known_version = objective.version
        return objective

    def _check_not_stale(self, objective: Objective) -> None:
        assert self.comment is not None
        with forge_errors(f"reading tracking comment {self.comment.id}"):
            fresh = self.issue.get_comment(self.comment.id)
        stored = stored_version(fresh.body)
        if stored != self._written_version:
            self._closed = True
            raise StaleStateError(
                f"objective {objective.short_id} was saved by another run "
                f"(version {stored} in the comment, this run last wrote "
                f"{self._written_version}); this run stops without overwriting it"
            )
        self.comment = fresh

    def _create(self, objective: Objective, body: str) -> IssueComment:
        """Create the comment once, even when a response is lost.

        A POST that failed may still have created the comment, so each retry
        first looks for the marker.
        """
        error: Exception | None = None
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            existing = self._find(objective.id)
            if existing is not None:
                existing.edit(body)
                return existing
            try:
                return self.issue.create_comment(body)
            except GithubException as exc:
                error = exc
                if exc.status < 500:
                    break
            except RequestException as exc:
                error = exc
            log.warning(
                "creating the tracking comment failed (attempt %d): %s", attempt, error
            )
        raise ForgeError(
            f"creating the tracking comment on issue #{self.issue.number} failed: "
            f"{error}; check that the token has issues: write permission"
        ) from error

    def _find(self, objective_id: str) -> IssueComment | None:
        wanted = marker(objective_id)
        for comment in tracking_comments(self.issue, self.own_login):
            if wanted in (comment.body or ""):
                return comment
        return None
