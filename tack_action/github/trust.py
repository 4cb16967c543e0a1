"""Deciding whether the account behind an event may start work.

Only accounts with write, maintain or admin permission on the repository may
start work, and the permission comes from the API, because
``author_association`` does not show write access. Bots may start work
only when listed in ``allowed-bots``, and the Action's own account never
does, so its own comments cannot trigger it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from github import GithubException
from github.Repository import Repository
from requests.exceptions import RequestException

from ..errors import ForgeError
from .events import Actor

log = logging.getLogger(__name__)

TRUSTED_PERMISSIONS = frozenset({"admin", "maintain", "write"})

# The account that GITHUB_TOKEN acts as; GET /user is not allowed for it.
ACTIONS_BOT = "github-actions[bot]"


@dataclass
class Decision:
    """Whether an actor may start work, and why."""

    allowed: bool
    reason: str


def parse_bot_list(text: str) -> set[str]:
    """Return the bot logins in a comma- or newline-separated list, lower-cased."""
    names = set()
    for item in text.replace("\n", ",").split(","):
        name = item.strip().lower()
        if name:
            names.add(name.removesuffix("[bot]"))
    return names


def same_login(one: str, other: str) -> bool:
    """Compare logins case-insensitively, ignoring a ``[bot]`` suffix."""
    return one.lower().removesuffix("[bot]") == other.lower().removesuffix("[bot]")


def check_actor(
    repo: Repository,
    actor: Actor | None,
    *,
    own_login: str,
    allowed_bots: set[str],
) -> Decision:
    """Decide whether ``actor`` may start work on ``repo``."""
    if actor is None:
        return Decision(False, "the event names no sender")
    if same_login(actor.login, own_login):
        return Decision(False, f"@{actor.login} is this Action's own account")
    if actor.is_bot:
        name = actor.login.lower().removesuffix("[bot]")
        if name in allowed_bots:
            return Decision(True, f"bot @{actor.login} is listed in allowed-bots")
        return Decision(
            False,
            f"@{actor.login} is a bot; add it to the allowed-bots input to let it "
            "start work",
        )

    permission = collaborator_permission(repo, actor.login)
    if permission in TRUSTED_PERMISSIONS:
        return Decision(True, f"@{actor.login} has {permission} permission")
    return Decision(
        False,
        f"@{actor.login} has {permission} permission; tack needs write, maintain "
        "or admin",
    )


def collaborator_permission(repo: Repository, login: str) -> str:
    """Return ``login``'s permission on ``repo``: admin, write, read or none.

    The REST response reports the maintain role as ``write``, so checking
    this one field covers write, maintain and admin.
    """
    try:
        return repo.get_collaborator_permission(login)
    except RequestException as exc:
        raise ForgeError(
            f"checking the permission of @{login} failed because the GitHub API "
            f"could not be reached ({type(exc).__name__}); re-run the job later"
        ) from exc
    except GithubException as exc:
        if exc.status == 404:
            return "none"
        raise ForgeError(
            f"checking the permission of @{login} failed with HTTP {exc.status}; "
            "the token needs read access to the repository"
        ) from exc
