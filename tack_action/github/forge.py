"""Pull requests and issue labels through the GitHub API.

``GitHubForge`` implements the core's ``Forge`` protocol. It opens at most one
pull request per objective: it looks the pull request up by head branch
before creating one, and looks again after any failed create, because a
create whose response was lost may still have opened it.
"""

from __future__ import annotations

import logging

from github import GithubException
from github.Issue import Issue
from github.PullRequest import PullRequest
from github.Repository import Repository
from requests.exceptions import RequestException

from ..errors import ForgeError
from ..model import Objective, ObjectiveStatus, PlanStatus, StreamStatus
from .client import forge_errors

log = logging.getLogger(__name__)

CREATE_ATTEMPTS = 3

# Labels that show an objective's status on its issue; one at a time.
STATUS_LABELS = {
    "planning": "tack:planning",
    "awaiting-approval": "tack:awaiting-approval",
    "approved": "tack:running",
    "executing": "tack:running",
    "blocked": "tack:blocked",
    "completed": "tack:done",
    "partial": "tack:partial",
    "failed": "tack:failed",
    "cancelled": "tack:cancelled",
}


class GitHubForge:
    """Opens the objective's pull request on GitHub, once."""

    def __init__(
        self,
        repo: Repository,
        objective: Objective,
        *,
        issue_number: int | None,
        draft: bool = False,
        gates: list[str] | None = None,
    ) -> None:
        self.repo = repo
        self.objective = objective
        self.issue_number = issue_number
        self.draft = draft
        self.gates = list(gates or [])
        self.pull_request: PullRequest | None = None

    def find_or_create_pull_request(
        self, *, head: str, base: str, title: str, body: str
    ) -> str:
        """Return the URL of the open pull request from ``head``, creating it once."""
        title, body = self.compose(title, body)
        error: Exception | None = None
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            found = self.find(head)
            if found is not None:
                self.pull_request = found
                return found.html_url
            try:
                created = self.repo.create_pull(
                    base=base,
                    head=head,
                    title=title,
                    body=body,
                    draft=self.draft,
                    maintainer_can_modify=True,
                )
            except GithubException as exc:
                error = exc
                # 422 also means "a pull request already exists"; look again.
                if exc.status < 500 and exc.status != 422:
                    break
            except RequestException as exc:
                error = exc
            else:
                log.info("opened pull request #%d from %s", created.number, head)
                self.pull_request = created
                return created.html_url
            log.warning(
                "creating the pull request failed (attempt %d): %s", attempt, error
            )
        raise ForgeError(
            f"opening a pull request from {head!r} to {base!r} failed: {error}; check "
            "that the token has pull-requests: write and that the base branch exists"
        ) from error

    def find(self, head: str) -> PullRequest | None:
        """Return the open pull request from branch ``head``, or None."""
        owner = self.repo.full_name.split("/")[0]
        with forge_errors(f"looking up pull requests from {head!r}"):
            for pull in self.repo.get_pulls(state="open", head=f"{owner}:{head}"):
                if pull.head.ref == head:
                    return pull
        return None

    def compose(self, title: str, body: str) -> tuple[str, str]:
        """Return the pull request title and body.

        The orchestrator's title and body come from the pr-writer agent's
        ``TACK_MESSAGES`` or from its fallback, and already list the streams.
        This adds why streams failed, the quality gates and ``Closes #N``.
        """
        objective = self.objective
        plan = objective.plan
        streams = plan.streams if plan else []
        title = " ".join(title.split())[:200] or f"tack objective {objective.short_id}"
        lines = [body.rstrip()]

        failed = [s for s in streams if s.status is not StreamStatus.MERGED]
        if failed:
            lines += ["", "### Why streams failed", ""]
            lines += [f"- {s.title}: {s.error or s.status.value}" for s in failed]
        gates = (plan.quality_gates if plan else []) or self.gates
        if gates:
            lines += [
                "",
                "### Quality gates",
                "",
                "Every merge into the merge branch passed these gates; a merge "
                "that failed them was reverted.",
                "",
            ]
            lines += [f"- `{gate}`" for gate in gates]
        failures = [a for a in objective.ledger if "gate" in a.failure_kind]
        if failures:
            lines += ["", f"Gate failures recorded and handled: {len(failures)}."]
        if self.issue_number is not None:
            lines += ["", f"Closes #{self.issue_number}"]
        return title, "\n".join(lines)


def status_label(objective: Objective) -> str:
    """Return the one status label the objective's issue should carry."""
    plan = objective.plan
    status = objective.status
    if (
        status is ObjectiveStatus.PLANNING
        and plan is not None
        and plan.status is PlanStatus.PENDING_APPROVAL
    ):
        return STATUS_LABELS["awaiting-approval"]
    return STATUS_LABELS[status.value]


def sync_labels(issue: Issue, objective: Objective) -> None:
    """Make the issue carry exactly one status label, the objective's.

    The labels are set in one ``PATCH`` of the issue, whose documented body
    takes the full label list, instead of one request per label.
    """
    status = status_label(objective)
    with forge_errors(f"updating the labels of issue #{issue.number}"):
        current = [label.name for label in issue.labels]
        others = [name for name in current if name not in STATUS_LABELS.values()]
        labels = [*others, status]
        if labels != current:
            issue.edit(labels=labels)
