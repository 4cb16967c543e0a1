"""Schema checks for callback bodies, by event type."""

from __future__ import annotations

import json
from typing import Any

from relay.errors import invalid_event

FINISHED_STATUSES = ("succeeded", "failed", "cancelled")
MAIL_FIELDS = (
    "from",
    "to",
    "subject",
    "body",
    "type",
    "priority",
    "objective",
    "stream",
)


def parse_callback(body: bytes) -> tuple[str, dict[str, Any]]:
    """Parse a signed callback body; return its type and data or raise 422."""
    document = _load_object(body)
    event_type = document.get("type")
    data = document.get("data")
    if not isinstance(event_type, str):
        raise invalid_event('the body needs a string "type"')
    if not isinstance(data, dict):
        raise invalid_event('the body needs an object "data"')

    if event_type == "agent.progress":
        _require(data, "message", str, event_type)
    elif event_type == "agent.finished":
        status = data.get("status")
        if status not in FINISHED_STATUSES:
            raise invalid_event(
                f"agent.finished needs data.status in {FINISHED_STATUSES}, "
                f"not {status!r}"
            )
        code = data.get("exit_code")
        if code is not None and (isinstance(code, bool) or not isinstance(code, int)):
            raise invalid_event(f"data.exit_code must be an integer, not {code!r}")
    elif event_type == "gate.result":
        _require(data, "gate", str, event_type)
        _require(data, "passed", bool, event_type)
    else:
        raise invalid_event(
            f"unknown event type {event_type!r}; use agent.progress, "
            "agent.finished or gate.result"
        )
    return event_type, data


def parse_mail(body: bytes) -> dict[str, Any]:
    """Parse a Tack ``/mail`` body or raise 422."""
    document = _load_object(body)
    _require(document, "body", str, "mail")
    for name in MAIL_FIELDS:
        value = document.get(name)
        if value is not None and not isinstance(value, str):
            raise invalid_event(f"mail field {name!r} must be a string")
    return document


def _load_object(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid_event(f"the body is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise invalid_event("the body must be a JSON object")
    return document


def _require(data: dict[str, Any], name: str, kind: type, event_type: str) -> None:
    value = data.get(name)
    if not isinstance(value, kind):
        raise invalid_event(
            f"{event_type} needs data field {name!r} of type {kind.__name__}"
        )
