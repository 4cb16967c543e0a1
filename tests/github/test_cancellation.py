"""Runs stopped by the runner's SIGTERM or by max-minutes leave a final comment.

These tests start ``tack-action run`` as its own process, as the runner does,
so the signal reaches a real process and the forced exit does not touch the
test runner.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tack_action.github.comment import decode_state, find_objective_id

from ..fakes.github_server import FakeGitHub
from ..helpers import plan_text
from .conftest import MAINTAINER, ActionHarness, make_harness

pytestmark = pytest.mark.slow

_RUN = "from tack_action.github.command import run; run()"

# Seconds the first builder attempt sleeps: long enough to be interrupted.
_SLOW_BUILD_S = 30


def _slow_script() -> dict:
    return {
        "plan": plan_text(
            [
                {
                    "title": "Add readme note",
                    "description": "Add a usage note.",
                    "file_scope": ["README.md"],
                    "dependencies": [],
                }
            ]
        ),
        "builders": {
            "add-readme-note": [
                {"files": {"README.md": "# t\n\nSlow.\n"}, "sleep": _SLOW_BUILD_S},
                {"files": {"README.md": "# t\n\nUsage note.\n"}},
            ]
        },
    }


def _tracking_body(github: FakeGitHub) -> str:
    bodies = [c["body"] for c in github.comments_on(1) if find_objective_id(c["body"])]
    return bodies[0] if bodies else ""


def _start(harness: ActionHarness, env: dict[str, str]) -> subprocess.Popen[str]:
    full = {**os.environ, **env}
    return subprocess.Popen(
        [sys.executable, "-c", _RUN],
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for_builder(github: FakeGitHub, process: subprocess.Popen[str]) -> None:
    """Wait until the saved state shows the builder running."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0]
        body = _tracking_body(github)
        if body and "builder: started" in body:
            return
        time.sleep(0.1)
    raise AssertionError("the builder never started")


@pytest.fixture
def slow(github: FakeGitHub, tmp_path: Path) -> ActionHarness:
    harness = make_harness(github, tmp_path, _slow_script())
    harness.inputs["approval"] = "auto"
    return harness


def test_sigterm_writes_final_comment(slow: ActionHarness, github: FakeGitHub) -> None:
    github.add_issue("Add a readme note", "A usage note.", author=MAINTAINER)
    env = slow.env("issues", slow.labeled(1))
    process = _start(slow, env)
    _wait_for_builder(github, process)

    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)

    assert process.returncode == 1, output
    assert "::error title=tack%3A run stopped::the runner sent SIGTERM" in output
    body = _tracking_body(github)
    assert "The job was cancelled" in body
    assert "`/tack resume`" in body
    saved = decode_state(body)
    assert saved.status.value == "executing"
    assert saved.plan.streams[0].status.value == "executing"
    result = slow.collect(env, process.returncode, output)
    assert result.outputs["status"] == "executing"


def test_resume_completes_after_sigterm(
    slow: ActionHarness, github: FakeGitHub
) -> None:
    github.add_issue("Add a readme note", "A usage note.", author=MAINTAINER)
    process = _start(slow, slow.env("issues", slow.labeled(1)))
    _wait_for_builder(github, process)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=30)
    # The resumed builder starts a fresh session; make it quick this time.
    script = _slow_script()
    script["builders"]["add-readme-note"].pop(0)
    (slow.workspace.parent / "script.json").write_text(json.dumps(script))

    result = slow.run("issue_comment", slow.commented(1, "/tack resume"))

    assert result.exit_code == 0, result.output
    assert result.outputs["status"] == "completed"
    assert len(github.state.pulls) == 1
    assert "is **completed**" in _tracking_body(github)


def test_max_minutes_writes_final_comment(
    slow: ActionHarness, github: FakeGitHub
) -> None:
    slow.inputs["max-minutes"] = "0.05"
    github.add_issue("Add a readme note", "A usage note.", author=MAINTAINER)
    env = slow.env("issues", slow.labeled(1))

    process = _start(slow, env)
    output, _ = process.communicate(timeout=60)

    assert process.returncode == 1, output
    assert "reached max-minutes (0.05)" in output
    body = _tracking_body(github)
    assert "max-minutes limit" in body
    assert "`/tack resume`" in body
