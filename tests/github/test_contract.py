"""The Action against GitHub's published descriptions.

Requests are checked against the OpenAPI description in ``@octokit/openapi``,
and event parsing runs on the payloads in ``@octokit/webhooks-examples``.
"""

from __future__ import annotations

import pytest

from tack_action.github.events import parse_event

from ..fakes.github_server import FakeGitHub
from . import openapi
from .conftest import MAINTAINER, ActionHarness


@pytest.fixture
def examples() -> dict[str, list[dict]]:
    openapi.require_fixture(openapi.EXAMPLES_PATH)
    return openapi.load_examples()


@pytest.fixture
def spec() -> None:
    openapi.require_fixture(openapi.SPEC_PATH)


def test_issues_examples_parse(examples: dict[str, list[dict]]) -> None:
    payloads = examples["issues"]

    for payload in payloads:
        label = (payload.get("label") or {}).get("name", "tack")
        trigger = parse_event("issues", payload, label)

        assert trigger.issue_number == payload["issue"]["number"]
        assert trigger.actor is not None
        assert trigger.actor.login == payload["sender"]["login"]
        if payload["action"] not in ("labeled", "opened"):
            assert trigger.command is None


def test_labeled_examples_start_plan(examples: dict[str, list[dict]]) -> None:
    labeled = [p for p in examples["issues"] if p["action"] == "labeled"]

    triggers = [parse_event("issues", p, p["label"]["name"]) for p in labeled]

    assert labeled
    assert all(t.command is not None and t.command.name == "plan" for t in triggers)


def test_comment_examples_parse(examples: dict[str, list[dict]]) -> None:
    payloads = examples["issue_comment"]

    for payload in payloads:
        payload = {**payload, "comment": {**payload["comment"], "body": "/tack status"}}
        trigger = parse_event("issue_comment", payload, "tack")

        assert trigger.issue_number == payload["issue"]["number"]
        assert trigger.comment_id == payload["comment"]["id"]
        created = payload["action"] == "created"
        assert (trigger.command is not None) is created
        assert trigger.is_pull_request is bool(payload["issue"].get("pull_request"))


def test_dispatch_examples_parse(examples: dict[str, list[dict]]) -> None:
    payloads = examples["workflow_dispatch"]

    triggers = [parse_event("workflow_dispatch", p, "tack") for p in payloads]

    assert payloads
    assert all(t.actor is not None for t in triggers)
    assert all(t.command is None or t.command.name == "plan" for t in triggers)


def test_checker_flags_bad_requests(spec: None) -> None:
    bad_body = openapi.check_request(
        "POST", "/repos/o/r/pulls", {}, {"head": 1, "base": "main"}
    )
    bad_query = openapi.check_request(
        "GET", "/repos/o/r/pulls", {"colour": ["red"], "state": ["merged"]}, None
    )
    unknown = openapi.check_request("GET", "/repos/o/r/nothing-here", {}, None)

    assert any("not of type string" in p for p in bad_body)
    assert any("'colour'" in p for p in bad_query)
    assert any("'merged'" in p for p in bad_query)
    assert unknown == ["GET /repos/o/r/nothing-here: no documented operation matches"]


@pytest.mark.slow
def test_full_flow_requests_match_spec(
    spec: None, harness: ActionHarness, github: FakeGitHub
) -> None:
    issue = github.add_issue("Add a readme note", "A usage note.", author=MAINTAINER)
    harness.run("issues", harness.labeled(issue["number"]))
    harness.run("issue_comment", harness.commented(1, "/tack approve"))

    problems = [
        p
        for r in github.requests
        for p in openapi.check_request(r.method, r.path, r.query, r.body)
    ]

    used = {
        (r.method, openapi.find_operation(r.method, r.path)[0]) for r in github.requests
    }
    assert problems == []
    assert ("POST", "/repos/{owner}/{repo}/pulls") in used
    assert ("PATCH", "/repos/{owner}/{repo}/issues/comments/{comment_id}") in used
    assert ("GET", "/repos/{owner}/{repo}/collaborators/{username}/permission") in used
