"""Reading the workflow's event payload into one trigger the Action acts on.

The runner names the event in ``GITHUB_EVENT_NAME`` and writes the full
webhook payload to the file in ``GITHUB_EVENT_PATH``. The payload shapes are
GitHub's webhook payloads for ``issues``, ``issue_comment`` and
``workflow_dispatch``.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import TackError

log = logging.getLogger(__name__)

COMMANDS = ("plan", "approve", "reject", "retry", "resume", "cancel", "status")

# The command word: "/tack" at the start of a line, then a subcommand.
_COMMAND_LINE = re.compile(r"^\s*/tack(?:\s+(?P<rest>.*))?$", re.M)


class EventError(TackError):
    """The event payload is missing, unreadable or not the shape GitHub sends."""


@dataclass
class Command:
    """A ``/tack`` command from a comment or a dispatch."""

    name: str
    args: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(self.args)


@dataclass
class Actor:
    """The account that caused the event."""

    login: str
    type: str = "User"

    @property
    def is_bot(self) -> bool:
        return self.type == "Bot" or self.login.endswith("[bot]")


@dataclass
class Trigger:
    """What the event asks the Action to do.

    ``command`` is None when the event asks for nothing; ``reason`` then says
    why, for the notice the Action prints.
    """

    event: str
    actor: Actor | None = None
    command: Command | None = None
    issue_number: int | None = None
    issue_title: str = ""
    issue_body: str = ""
    issue_author: str = ""
    is_pull_request: bool = False
    comment_id: int | None = None
    comment_body: str = ""
    objective_text: str = ""
    reason: str = ""


def parse_command(text: str) -> Command | None:
    """Return the first ``/tack`` command in ``text``, or None.

    Only the first line that starts with ``/tack`` counts. Arguments are split
    the way a shell would, and an unbalanced quote falls back to plain words.
    """
    match = _COMMAND_LINE.search(text or "")
    if match is None:
        return None
    rest = (match.group("rest") or "").strip()
    try:
        words = shlex.split(rest)
    except ValueError:
        words = rest.split()
    if not words:
        return Command("status")
    name = words[0].lower()
    if name not in COMMANDS:
        return Command("unknown", words)
    return Command(name, words[1:])


def read_event(event_name: str, event_path: str, trigger_label: str) -> Trigger:
    """Read the payload file and decide what the event asks for."""
    try:
        payload = json.loads(Path(event_path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EventError(
            f"cannot read the event payload {event_path!r}: {exc}; the runner "
            "sets GITHUB_EVENT_PATH to a JSON file"
        ) from exc
    if not isinstance(payload, dict):
        raise EventError(f"the event payload {event_path!r} is not a JSON object")
    return parse_event(event_name, payload, trigger_label)


def parse_event(
    event_name: str, payload: dict[str, Any], trigger_label: str
) -> Trigger:
    """Decide what one webhook payload asks for."""
    if event_name == "issues":
        return _issues(payload, trigger_label)
    if event_name == "issue_comment":
        return _issue_comment(payload)
    if event_name == "workflow_dispatch":
        return _workflow_dispatch(payload)
    return Trigger(
        event=event_name or "unknown",
        reason=f"the {event_name or 'unknown'!r} event starts no tack work",
    )


def _actor(payload: dict[str, Any]) -> Actor | None:
    sender = payload.get("sender") or {}
    login = sender.get("login")
    if not login:
        return None
    return Actor(login=str(login), type=str(sender.get("type") or "User"))


def _with_issue(trigger: Trigger, issue: dict[str, Any]) -> Trigger:
    trigger.issue_number = int(issue["number"])
    trigger.issue_title = str(issue.get("title") or "")
    trigger.issue_body = str(issue.get("body") or "")
    trigger.issue_author = str((issue.get("user") or {}).get("login") or "")
    trigger.is_pull_request = bool(issue.get("pull_request"))
    return trigger


def _issues(payload: dict[str, Any], trigger_label: str) -> Trigger:
    action = payload.get("action")
    issue = payload.get("issue")
    trigger = Trigger(event="issues", actor=_actor(payload))
    if not isinstance(issue, dict) or "number" not in issue:
        trigger.reason = "the issues payload has no issue"
        return trigger
    _with_issue(trigger, issue)

    if action == "labeled":
        label = (payload.get("label") or {}).get("name")
        if label != trigger_label:
            trigger.reason = (
                f"label {label!r} was added; only {trigger_label!r} starts tack"
            )
            return trigger
    elif action == "opened":
        names = [str(item.get("name")) for item in issue.get("labels") or []]
        if trigger_label not in names:
            trigger.reason = f"the new issue has no {trigger_label!r} label"
            return trigger
    else:
        trigger.reason = f"issues action {action!r} starts no tack work"
        return trigger

    trigger.command = Command("plan")
    return trigger


def _issue_comment(payload: dict[str, Any]) -> Trigger:
    action = payload.get("action")
    comment = payload.get("comment") or {}
    issue = payload.get("issue")
    trigger = Trigger(event="issue_comment", actor=_actor(payload))
    if not isinstance(issue, dict) or "number" not in issue:
        trigger.reason = "the issue_comment payload has no issue"
        return trigger
    _with_issue(trigger, issue)
    trigger.comment_id = comment.get("id")
    trigger.comment_body = str(comment.get("body") or "")
    author = (comment.get("user") or {}).get("login")
    if author and trigger.actor is None:
        trigger.actor = Actor(str(author), str(comment["user"].get("type") or "User"))

    if action != "created":
        trigger.reason = f"issue_comment action {action!r} starts no tack work"
        return trigger
    command = parse_command(trigger.comment_body)
    if command is None:
        trigger.reason = "the comment holds no /tack command"
        return trigger
    trigger.command = command
    return trigger


def _workflow_dispatch(payload: dict[str, Any]) -> Trigger:
    inputs = payload.get("inputs") or {}
    trigger = Trigger(event="workflow_dispatch", actor=_actor(payload))
    text = str(inputs.get("objective") or "").strip()
    issue = str(inputs.get("issue") or inputs.get("issue-number") or "").strip()
    if issue:
        try:
            trigger.issue_number = int(issue.lstrip("#"))
        except ValueError:
            trigger.reason = f"the issue input {issue!r} is not an issue number"
            return trigger
    if not text and trigger.issue_number is None:
        trigger.reason = (
            "the dispatch gave neither an objective nor an issue; fill in the "
            "objective input"
        )
        return trigger
    trigger.objective_text = text
    command = parse_command(text) if text.startswith("/tack") else None
    trigger.command = command or Command("plan")
    if command is not None:
        trigger.objective_text = ""
    return trigger
