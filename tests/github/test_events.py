"""Parsing event payloads and /tack commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from tack_action.github.events import EventError, parse_command, parse_event, read_event


@pytest.mark.parametrize(
    ("text", "name", "args"),
    [
        ("/tack approve", "approve", []),
        ("/tack   APPROVE  ", "approve", []),
        ("/tack reject make it smaller", "reject", ["make", "it", "smaller"]),
        (
            '/tack retry add-counter "use Counter"',
            "retry",
            ["add-counter", "use Counter"],
        ),
        ("/tack retry add-counter it's fine", "retry", ["add-counter", "it's", "fine"]),
        ("Looks good.\n/tack resume\nthanks", "resume", []),
        ("/tack", "status", []),
        ("/tack deploy now", "unknown", ["deploy", "now"]),
    ],
)
def test_parse_command_cases(text: str, name: str, args: list[str]) -> None:
    command = parse_command(text)

    assert command is not None
    assert command.name == name
    assert command.args == args


@pytest.mark.parametrize("text", ["", "approve", "please /tack approve", "/tackle it"])
def test_parse_command_needs_line_start(text: str) -> None:
    assert parse_command(text) is None


def _issue(labels: list[str]) -> dict:
    return {
        "number": 7,
        "title": "Add a counter",
        "body": "Count words.",
        "user": {"login": "alice"},
        "labels": [{"name": n} for n in labels],
    }


def test_labeled_with_trigger_plans() -> None:
    payload = {
        "action": "labeled",
        "label": {"name": "tack"},
        "issue": _issue(["tack"]),
        "sender": {"login": "alice", "type": "User"},
    }

    trigger = parse_event("issues", payload, "tack")

    assert trigger.command is not None
    assert trigger.command.name == "plan"
    assert trigger.issue_number == 7
    assert trigger.actor is not None
    assert trigger.actor.login == "alice"


def test_labeled_other_label_ignored() -> None:
    payload = {"action": "labeled", "label": {"name": "bug"}, "issue": _issue(["bug"])}

    trigger = parse_event("issues", payload, "tack")

    assert trigger.command is None
    assert "only 'tack' starts tack" in trigger.reason


def test_opened_needs_trigger_label() -> None:
    with_label = {"action": "opened", "issue": _issue(["tack"])}
    without = {"action": "opened", "issue": _issue([])}

    assert parse_event("issues", with_label, "tack").command is not None
    assert parse_event("issues", without, "tack").command is None


def test_edited_comment_ignored() -> None:
    payload = {
        "action": "edited",
        "issue": _issue([]),
        "comment": {"id": 1, "body": "/tack approve", "user": {"login": "alice"}},
    }

    trigger = parse_event("issue_comment", payload, "tack")

    assert trigger.command is None
    assert "'edited'" in trigger.reason


def test_pull_request_comment_flagged() -> None:
    issue = {**_issue([]), "pull_request": {"url": "http://x/pulls/7"}}
    payload = {"action": "created", "issue": issue, "comment": {"body": "/tack status"}}

    trigger = parse_event("issue_comment", payload, "tack")

    assert trigger.is_pull_request


def test_dispatch_with_issue_number() -> None:
    payload = {"inputs": {"objective": "", "issue": "#12"}, "sender": {"login": "a"}}

    trigger = parse_event("workflow_dispatch", payload, "tack")

    assert trigger.issue_number == 12
    assert trigger.command is not None
    assert trigger.command.name == "plan"


def test_dispatch_without_inputs_ignored() -> None:
    trigger = parse_event("workflow_dispatch", {"inputs": None}, "tack")

    assert trigger.command is None
    assert "neither an objective nor an issue" in trigger.reason


def test_dispatch_bad_issue_number() -> None:
    payload = {"inputs": {"issue": "twelve"}}

    trigger = parse_event("workflow_dispatch", payload, "tack")

    assert trigger.command is None
    assert "'twelve'" in trigger.reason


def test_read_event_missing_file(tmp_path: Path) -> None:
    with pytest.raises(EventError, match="GITHUB_EVENT_PATH"):
        read_event("issues", str(tmp_path / "missing.json"), "tack")
