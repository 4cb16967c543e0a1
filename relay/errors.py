"""JSON error responses with stable codes."""

from __future__ import annotations

from collections.abc import Mapping


class RelayError(Exception):
    """An error the relay returns to its caller as a JSON body with a stable code."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = dict(headers or {})


def bad_request(code: str, detail: str) -> RelayError:
    """Build a 400 error."""
    return RelayError(400, code, detail)


def unauthorized(detail: str) -> RelayError:
    """Build a 401 error that asks for a bearer token."""
    return RelayError(401, "unauthorized", detail, {"WWW-Authenticate": "Bearer"})


def forbidden(detail: str) -> RelayError:
    """Build a 403 error."""
    return RelayError(403, "forbidden", detail)


def not_found(detail: str) -> RelayError:
    """Build a 404 error."""
    return RelayError(404, "not_found", detail)


def gone(detail: str) -> RelayError:
    """Build a 410 error, which tells Standard Webhooks senders to stop retrying."""
    return RelayError(410, "channel_closed", detail)


def invalid_event(detail: str) -> RelayError:
    """Build a 422 error for a callback body that fails its schema."""
    return RelayError(422, "invalid_event", detail)


def too_many_requests(code: str, detail: str, retry_after: int) -> RelayError:
    """Build a 429 error with a Retry-After header in whole seconds."""
    return RelayError(429, code, detail, {"Retry-After": str(max(1, retry_after))})
