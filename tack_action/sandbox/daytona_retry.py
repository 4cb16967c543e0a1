"""Retries and error translation for calls into the ``daytona`` SDK.

SDK 0.226.1 retries neither HTTP 429 nor 5xx, and it reports a refused
connection as a plain ``DaytonaError`` whose ``__cause__`` is the urllib3
error. This module classifies failures by exception type, status code and
cause chain, and retries the transient ones with jittered exponential
backoff inside a bounded total time. It turns every SDK exception into a
``SandboxError``, so nothing above this layer imports ``daytona``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_before_delay,
    wait_random_exponential,
)

from ..errors import SandboxError, SandboxNotFound

log = logging.getLogger(__name__)

T = TypeVar("T")

# Words in Daytona's messages for organization quota errors. Quota errors come
# back as 403, 400 or even 500 depending on the limit, so the status alone
# does not identify them.
_QUOTA_WORDS = ("quota", "limit exceeded", "resource limit", "limit reached")

_AUTH_HINT = "Check `tack-action auth` or the DAYTONA_API_KEY secret"


def status_of(exc: BaseException) -> int | None:
    """Return the HTTP status behind an SDK exception, or None."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status

    # File transfers raise httpx.HTTPStatusError, which the SDK wraps.
    for cause in _causes(exc):
        response = getattr(cause, "response", None)
        code = getattr(response, "status_code", None)
        if isinstance(code, int):
            return code
        code = getattr(cause, "status", None)
        if isinstance(code, int):
            return code
    return None


def _causes(exc: BaseException) -> list[BaseException]:
    chain = []
    current = exc.__cause__ or exc.__context__
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _is_connection_failure(exc: BaseException, *, sent: bool) -> bool:
    """Tell whether ``exc`` is a connection failure.

    With ``sent=False`` only failures where the request never reached the
    server count, such as a refused connection.
    """
    import httpx
    import urllib3.exceptions as u3
    from daytona import DaytonaConnectionError

    not_sent = (u3.NewConnectionError, httpx.ConnectError, ConnectionRefusedError)
    maybe_sent = (
        DaytonaConnectionError,
        u3.ProtocolError,
        u3.MaxRetryError,
        httpx.TransportError,
        ConnectionError,
    )
    for candidate in [exc, *_causes(exc)]:
        if isinstance(candidate, not_sent):
            return True
        if sent and isinstance(candidate, maybe_sent):
            return True
    return False


def is_transient(exc: BaseException, *, idempotent: bool = True) -> bool:
    """Tell whether retrying the call that raised ``exc`` may succeed.

    Non-idempotent calls such as ``exec`` are retried only when the server
    certainly did not run them: 429, 503, or a refused connection.
    """
    from daytona import DaytonaError

    if not isinstance(exc, DaytonaError):
        return False
    status = status_of(exc)
    if status == 429:
        return True
    if idempotent and status is not None and status >= 500:
        return not _is_quota(exc)
    if not idempotent and status in (502, 503):
        return True
    if status is not None:
        return False
    return _is_connection_failure(exc, sent=idempotent)


def _is_quota(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(word in text for word in _QUOTA_WORDS)


def _retry_after(exc: BaseException | None) -> float | None:
    headers = getattr(exc, "headers", None) or {}
    for name, value in headers.items():
        if str(name).lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                return None
    return None


class _Wait:
    """Backoff that honours Retry-After and never sleeps past the deadline."""

    def __init__(self, deadline: float, started: float) -> None:
        self._jitter = wait_random_exponential(multiplier=0.25, max=10)
        self._deadline = deadline
        self._started = started

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        delay = _retry_after(exc)
        if delay is None:
            delay = self._jitter(state)
        remaining = self._deadline - (time.monotonic() - self._started)
        return max(0.0, min(delay, remaining))


def call_with_retry(
    action: str,
    call: Callable[[], T],
    *,
    deadline: float,
    idempotent: bool = True,
) -> T:
    """Run ``call``, retrying transient Daytona failures for up to ``deadline`` s.

    ``action`` describes the call in log lines and errors, such as
    "starting sandbox 'tack-1a2b3c4d-api'". Every SDK exception that escapes
    is translated into a ``SandboxError``.
    """
    started = time.monotonic()

    def log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            "Daytona call failed while %s (attempt %d), retrying in %.1f s: %s",
            action,
            state.attempt_number,
            state.upcoming_sleep,
            exc,
        )

    retrying = Retrying(
        retry=retry_if_exception(lambda exc: is_transient(exc, idempotent=idempotent)),
        wait=_Wait(deadline, started),
        stop=stop_before_delay(deadline),
        before_sleep=log_retry,
        reraise=True,
    )
    try:
        return retrying(call)
    except Exception as exc:
        raise translate(exc, action, elapsed=time.monotonic() - started) from exc


def translate(
    exc: BaseException, action: str, *, elapsed: float | None = None
) -> SandboxError:
    """Return the ``SandboxError`` that explains ``exc`` raised while ``action``."""
    from daytona import DaytonaError, DaytonaNotFoundError, DaytonaTimeoutError

    if isinstance(exc, SandboxError):
        return exc
    if not isinstance(exc, DaytonaError):
        return SandboxError(f"Unexpected error while {action}: {exc!r}")

    status = status_of(exc)
    message = str(exc)
    if status == 401:
        return SandboxError(
            f"Daytona rejected the API key (HTTP 401) while {action}. {_AUTH_HINT}."
        )
    if _is_quota(exc) and status != 429:
        return SandboxError(
            f"Daytona rejected {action} because an organization quota is reached: "
            f"{message}. Stop or delete idle sandboxes with `tack-action cleanup`, "
            "or raise the organization's limits in the Daytona dashboard."
        )
    if status == 403:
        return SandboxError(
            f"Daytona rejected the API key (HTTP 403) while {action}: {message}. "
            f"{_AUTH_HINT}, and give the key the sandbox and snapshot scopes "
            "(write:sandboxes, delete:sandboxes, write:snapshots)."
        )
    if isinstance(exc, DaytonaNotFoundError):
        return SandboxNotFound(f"Daytona found nothing while {action}: {message}")
    if "error state" in message or "build_failed" in message:
        return SandboxError(
            f"The sandbox entered an error state while {action}: {message}. "
            "Delete it with `tack-action cleanup` so the next run creates a new one."
        )
    if isinstance(exc, DaytonaTimeoutError) and status in (None, 408):
        return SandboxError(f"Timed out while {action}: {message}")
    if is_transient(exc) and elapsed is not None:
        return SandboxError(
            f"Daytona kept failing while {action} for {elapsed:.1f} s, "
            f"so tack-action gave up: {message}"
        )
    return SandboxError(f"Daytona call failed while {action}: {message}")
