"""Connecting to the GitHub REST API with PyGithub, and translating its errors."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from github import Auth, Github, GithubException, GithubRetry
from requests.exceptions import RequestException
from urllib3.util.retry import Retry

from ..errors import ForgeError

log = logging.getLogger(__name__)

# PyGithub retries POST by default, so a comment or pull request whose
# response was lost would be created twice. Creates are retried by our own
# code instead, after looking for what the first attempt may have made.
RETRIED_METHODS = frozenset(Retry.DEFAULT_ALLOWED_METHODS | {"GET", "PATCH"}) - {"POST"}


def connect(
    token: str,
    api_url: str,
    *,
    retries: int = 4,
    backoff_s: float = 1.0,
    seconds_between_writes: float = 1.0,
) -> Github:
    """Return a PyGithub client for ``api_url`` that retries everything but POST."""
    retry = GithubRetry(
        total=retries,
        backoff_factor=backoff_s,
        allowed_methods=RETRIED_METHODS,
    )
    return Github(
        base_url=api_url.rstrip("/"),
        auth=Auth.Token(token),
        retry=retry,
        timeout=30,
        per_page=100,
        seconds_between_requests=min(0.25, seconds_between_writes),
        seconds_between_writes=seconds_between_writes,
    )


@contextlib.contextmanager
def forge_errors(action: str) -> Iterator[None]:
    """Turn PyGithub and network errors raised in the block into ``ForgeError``."""
    try:
        yield
    except GithubException as exc:
        message = ""
        if isinstance(exc.data, dict):
            message = str(exc.data.get("message") or "")
        raise ForgeError(
            f"{action} failed with HTTP {exc.status}"
            + (f": {message}" if message else "")
            + "; check the token's permissions and GitHub's status, then re-run"
        ) from exc
    except RequestException as exc:
        raise ForgeError(
            f"{action} failed because the GitHub API could not be reached "
            f"({type(exc).__name__}); re-run the job when GitHub is reachable"
        ) from exc
