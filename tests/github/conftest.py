"""Fixtures that run the Action against a fake GitHub, the way the runner does."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tack_action.github.command import run

from ..fakes.github_server import FakeGitHub
from ..helpers import make_repo
from . import openapi

MAINTAINER = "maintainer"
VISITOR = "visitor"


@dataclass
class ActionResult:
    """What one run of ``tack-action run`` left behind."""

    exit_code: int
    output: str
    outputs: dict[str, str] = field(default_factory=dict)
    summary: str = ""


def parse_outputs(text: str) -> dict[str, str]:
    """Parse a GITHUB_OUTPUT file, including ``name<<DELIMITER`` blocks."""
    outputs: dict[str, str] = {}
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        match = re.fullmatch(r"([\w-]+)<<(\S+)", line)
        if match:
            name, delimiter = match.groups()
            end = lines.index(delimiter, index + 1)
            outputs[name] = "\n".join(lines[index + 1 : end])
            index = end + 1
            continue
        if "=" in line:
            name, _, value = line.partition("=")
            outputs[name] = value
        index += 1
    return outputs


class ActionHarness:
    """Runs the Action with a runner-like environment against ``github``."""

    def __init__(self, github: FakeGitHub, workspace: Path, tmp: Path) -> None:
        self.github = github
        self.workspace = workspace
        self.tmp = tmp
        self.runs = 0
        self.inputs: dict[str, str] = {"comment-interval": "0"}

    def env(self, event_name: str, payload: dict[str, Any]) -> dict[str, str]:
        """Return the environment for one run, with fresh runner files."""
        self.runs += 1
        run_dir = self.tmp / f"run{self.runs}"
        run_dir.mkdir(parents=True)
        event_path = run_dir / "event.json"
        event_path.write_text(json.dumps(payload))
        (run_dir / "output").write_text("")
        (run_dir / "summary").write_text("")
        env = {
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_NAME": event_name,
            "GITHUB_EVENT_PATH": str(event_path),
            "GITHUB_REPOSITORY": self.github.full_name,
            "GITHUB_API_URL": self.github.url,
            "GITHUB_SERVER_URL": self.github.url,
            "GITHUB_RUN_ID": str(7000 + self.runs),
            "GITHUB_WORKSPACE": str(self.workspace),
            "GITHUB_OUTPUT": str(run_dir / "output"),
            "GITHUB_STEP_SUMMARY": str(run_dir / "summary"),
            "TACK_INPUT_GITHUB_TOKEN": self.github.token,
            "TACK_GITHUB_WRITE_INTERVAL": "0",
            "TACK_GITHUB_RETRY_BACKOFF": "0.01",
        }
        for name, value in self.inputs.items():
            env["TACK_INPUT_" + name.upper().replace("-", "_")] = value
        return env

    def run(self, event_name: str, payload: dict[str, Any]) -> ActionResult:
        """Run ``tack-action run`` in this process, as CliRunner does."""
        env = self.env(event_name, payload)
        result = CliRunner().invoke(run, [], env=env, catch_exceptions=False)
        return self.collect(env, result.exit_code, result.output)

    def collect(self, env: dict[str, str], code: int, output: str) -> ActionResult:
        return ActionResult(
            exit_code=code,
            output=output,
            outputs=parse_outputs(Path(env["GITHUB_OUTPUT"]).read_text()),
            summary=Path(env["GITHUB_STEP_SUMMARY"]).read_text(),
        )

    # Payloads shaped like GitHub's webhooks

    def sender(self, login: str) -> dict[str, Any]:
        user = self.github.users.get(login) or self.github.add_user(login)
        return {"login": user.login, "id": user.id, "type": user.type}

    def issue_payload(self, number: int) -> dict[str, Any]:
        issue = self.github.state.issues[number]
        return {
            "number": number,
            "title": issue["title"],
            "body": issue["body"],
            "user": self.sender(issue["user"]),
            "labels": [{"name": name} for name in issue["labels"]],
            "state": "open",
        }

    def repository(self) -> dict[str, Any]:
        return {"full_name": self.github.full_name, "default_branch": "main"}

    def labeled(self, number: int, label: str = "tack", by: str = MAINTAINER) -> dict:
        self.github.state.issues[number]["labels"].append(label)
        return {
            "action": "labeled",
            "issue": self.issue_payload(number),
            "label": {"name": label},
            "repository": self.repository(),
            "sender": self.sender(by),
        }

    def commented(self, number: int, body: str, by: str = MAINTAINER) -> dict:
        comment = self.github.add_comment(number, body, author=by)
        return {
            "action": "created",
            "issue": self.issue_payload(number),
            "comment": {
                "id": comment["id"],
                "body": body,
                "user": self.sender(by),
            },
            "repository": self.repository(),
            "sender": self.sender(by),
        }


def one_stream_script() -> dict[str, Any]:
    """Return a demo-agent script whose plan has one small stream."""
    from ..helpers import plan_text

    return {
        "plan": plan_text(
            [
                {
                    "title": "Add readme note",
                    "description": "Add a usage note to README.md.",
                    "file_scope": ["README.md"],
                    "dependencies": [],
                }
            ]
        ),
        "builders": {
            "add-readme-note": [
                {"files": {"README.md": "# textkit\n\nUsage: import textkit.\n"}}
            ]
        },
    }


@pytest.fixture
def github(tmp_path: Path) -> Iterator[FakeGitHub]:
    """Serve a fake GitHub, then check every request it got against the spec."""
    with FakeGitHub(tmp_path / "github") as server:
        server.add_user(MAINTAINER, permission="write")
        server.add_user(VISITOR, permission="read")
        yield server
    if openapi.SPEC_PATH.exists():
        problems = [
            problem
            for recorded in server.requests
            for problem in openapi.check_request(
                recorded.method, recorded.path, recorded.query, recorded.body
            )
        ]
        assert problems == []


def make_harness(
    github: FakeGitHub, tmp_path: Path, script: dict[str, Any]
) -> ActionHarness:
    """Publish a sample repository whose agent follows ``script``."""
    workspace = make_repo(tmp_path / "work", script)
    github.publish_repo(workspace)
    return ActionHarness(github, workspace, tmp_path / "runner")


@pytest.fixture
def harness(github: FakeGitHub, tmp_path: Path) -> ActionHarness:
    return make_harness(github, tmp_path, one_stream_script())
