"""A labeled issue on tabulate becomes one reviewed, tested pull request.

Each scenario runs ``tack-action run`` as the runner does, once for the
``issues`` ``labeled`` event and once per ``/tack`` comment, with Daytona
sandboxes on the fake server through the real SDK, callbacks through the
relay under gunicorn, and tabulate's own output tests as the quality gate.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tack_action.github.comment import decode_state, find_objective_id

from ..github.conftest import MAINTAINER, ActionResult
from ..helpers import git
from . import tabulate_project
from .conftest import Job, Stack, labeled_payload, start_stack, stop_stack

_PRINT_DOTTED = (
    "from tabulate import tabulate; "
    "print(tabulate([[1, 2]], ['a', 'b'], tablefmt='dotted'))"
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(600),
]


@dataclass
class Scenario:
    """One finished objective and what each job run left behind."""

    stack: Stack
    plan: ActionResult
    final: ActionResult
    plan_comment: str = ""
    created_before_kill: int = -1


def _tracking(stack: Stack) -> list[dict]:
    return [c for c in stack.github.comments_on(1) if find_objective_id(c["body"])]


def _open_issue(stack: Stack) -> tuple[ActionResult, str]:
    issue = stack.github.add_issue(
        tabulate_project.ISSUE_TITLE, tabulate_project.ISSUE_BODY, author=MAINTAINER
    )
    result = stack.run_job("issues", labeled_payload(stack, issue), "label")
    assert result.exit_code == 0, result.output
    return result, _tracking(stack)[0]["body"]


def _head_diff(scenario: Scenario) -> str:
    branch = scenario.final.outputs["branch"]
    return git(scenario.stack.github.bare_path, "diff", "main", branch)


def _callback_roles(scenario: Scenario) -> set[str]:
    """Return the agent roles whose sessions posted at least one callback."""
    short = scenario.final.outputs["objective-id"][:8]
    roles = set()
    for request in scenario.stack.counter.requests:
        if request.method == "POST" and request.path.startswith("/v1/callbacks/"):
            session = request.path.split("/")[4]
            roles.add(session.split(f"-{short}-")[0])
    return roles


def _wait_for_docs_builder(stack: Stack, job: Job) -> None:
    """Wait until the saved state records the docs builder's running command.

    By then the planner, both builders and the merger have their sandboxes.
    """
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert job.process.poll() is None, job.log_path.read_text()
        bodies = [c["body"] for c in _tracking(stack)]
        if bodies:
            plan = decode_state(bodies[0]).plan
            stream = plan.stream(tabulate_project.DOCS_SLUG) if plan else None
            if stream is not None and stream.agent_command_id:
                return
        time.sleep(0.1)
    raise AssertionError("the docs stream's builder never started")


@pytest.fixture(scope="module")
def approved(
    tmp_path_factory: pytest.TempPathFactory, tabulate_sdist: Path
) -> Iterator[Scenario]:
    stack = start_stack(tmp_path_factory.mktemp("approved"), tabulate_sdist)
    try:
        plan, comment = _open_issue(stack)
        final = stack.run_job(
            "issue_comment", stack.harness.commented(1, "/tack approve"), "approve"
        )
        yield Scenario(stack, plan, final, plan_comment=comment)
    finally:
        stop_stack(stack)


@pytest.fixture(scope="module")
def resumed(
    tmp_path_factory: pytest.TempPathFactory, tabulate_sdist: Path
) -> Iterator[Scenario]:
    stack = start_stack(
        tmp_path_factory.mktemp("resumed"), tabulate_sdist, slow_docs_s=30
    )
    try:
        plan, comment = _open_issue(stack)
        job = stack.start_job(
            "issue_comment", stack.harness.commented(1, "/tack approve")
        )
        _wait_for_docs_builder(stack, job)
        job.kill()
        created = stack.sandboxes_created()
        final = stack.run_job(
            "issue_comment", stack.harness.commented(1, "/tack resume"), "resume"
        )
        yield Scenario(stack, plan, final, comment, created_before_kill=created)
    finally:
        stop_stack(stack)


# The uninterrupted run: label, then /tack approve.


def test_label_run_waits_for_approval(approved: Scenario) -> None:
    body = approved.plan_comment

    assert approved.plan.outputs["status"] == "planning"
    assert f"**{tabulate_project.FORMAT_TITLE}**" in body
    assert f"**{tabulate_project.DOCS_TITLE}**" in body
    assert "`/tack approve`" in body


def test_approve_opens_one_pull_request(approved: Scenario) -> None:
    pulls = list(approved.stack.github.state.pulls.values())

    assert approved.final.exit_code == 0, approved.final.output
    assert len(pulls) == 1
    assert pulls[0]["head"] == approved.final.outputs["branch"]
    assert pulls[0]["base"] == "main"
    assert pulls[0]["title"] == "Add a dotted table format"
    assert pulls[0]["body"].rstrip().endswith("Closes #1")


def test_approve_sets_every_output(approved: Scenario) -> None:
    outputs = approved.final.outputs
    pull = next(iter(approved.stack.github.state.pulls.values()))

    assert outputs["status"] == "completed"
    assert outputs["objective-id"] == approved.plan.outputs["objective-id"]
    assert outputs["pull-request-number"] == str(pull["number"])
    assert outputs["pull-request-url"].endswith(f"/pull/{pull['number']}")
    assert outputs["branch"] == f"tack/{outputs['objective-id'][:8]}/merge"


def test_head_branch_holds_both_streams(approved: Scenario) -> None:
    bare = approved.stack.github.bare_path
    branch = approved.final.outputs["branch"]

    subjects = git(bare, "log", "--format=%s", f"main..{branch}").splitlines()
    changed = git(bare, "diff", "--name-only", "main", branch).splitlines()

    assert tabulate_project.FORMAT_MESSAGE in subjects
    assert tabulate_project.DOCS_MESSAGE in subjects
    assert sorted(changed) == [
        "README.md",
        "tabulate/__init__.py",
        "test/test_output.py",
    ]


def test_fresh_clone_passes_tabulate_tests(approved: Scenario, tmp_path: Path) -> None:
    github = approved.stack.github
    branch = approved.final.outputs["branch"]
    clone = tmp_path / "clone"
    header = (
        "Authorization: Basic "
        + base64.b64encode(f"x-access-token:{github.token}".encode()).decode()
    )
    git(
        tmp_path,
        "-c",
        f"http.extraHeader={header}",
        "clone",
        "-q",
        "--branch",
        branch,
        github.clone_url,
        str(clone),
    )

    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test"],
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=120,
    )
    dotted = subprocess.run(
        [sys.executable, "-c", _PRINT_DOTTED],
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "def test_dotted():" in (clone / "test" / "test_output.py").read_text()
    assert dotted.stdout.splitlines()[1] == "...  ..."


def test_tracking_comment_is_finished(approved: Scenario) -> None:
    comments = _tracking(approved.stack)

    assert len(comments) == 1
    assert "is **completed**" in comments[0]["body"]
    assert "The job finished." in comments[0]["body"]


def test_every_sandbox_is_deleted(approved: Scenario) -> None:
    daytona = approved.stack.daytona

    # The planner, one builder per stream and the merger.
    assert approved.stack.sandboxes_created() == 4
    assert daytona.sandboxes == {}
    assert len(daytona.requests_matching("DELETE", r"^/api/sandbox/")) >= 4


def test_relay_stores_every_callback_sent(approved: Scenario) -> None:
    posted = approved.stack.counter.callbacks_posted()
    stored = {webhook_id for _, webhook_id, _ in approved.stack.stored_events()}

    assert posted
    assert posted == stored


def test_relay_carries_every_role(approved: Scenario) -> None:
    roles = _callback_roles(approved)

    assert roles >= {"planner", "builder", "reviewer", "pr-writer"}


def test_job_reads_stored_callbacks(approved: Scenario) -> None:
    stored = approved.stack.stored_events()
    read = approved.stack.counter.events_read()

    assert stored
    assert {webhook_id for _, webhook_id, _ in stored} <= read


# The interrupted run: label, /tack approve killed mid-build, /tack resume.


def test_resume_opens_one_pull_request(resumed: Scenario) -> None:
    pulls = list(resumed.stack.github.state.pulls.values())

    assert resumed.final.exit_code == 0, resumed.final.output
    assert resumed.final.outputs["status"] == "completed"
    assert len(pulls) == 1
    assert pulls[0]["head"] == resumed.final.outputs["branch"]
    assert "is **completed**" in _tracking(resumed.stack)[0]["body"]


def test_resume_creates_no_sandbox(resumed: Scenario) -> None:
    # The planner, one builder per stream and the merger existed at the kill.
    assert resumed.created_before_kill == 4
    assert resumed.stack.sandboxes_created() == resumed.created_before_kill


def test_resume_matches_uninterrupted_tree(
    resumed: Scenario, approved: Scenario
) -> None:
    assert _head_diff(resumed) == _head_diff(approved)


def test_resume_deletes_every_sandbox(resumed: Scenario) -> None:
    assert resumed.stack.daytona.sandboxes == {}


def test_resume_relay_stores_every_callback(resumed: Scenario) -> None:
    posted = resumed.stack.counter.callbacks_posted()
    stored = {webhook_id for _, webhook_id, _ in resumed.stack.stored_events()}

    assert posted
    assert posted == stored


@pytest.mark.parametrize("name", ["approved", "resumed"])
def test_scenario_counts_are_recorded(
    name: str, request: pytest.FixtureRequest
) -> None:
    scenario: Scenario = request.getfixturevalue(name)
    stack = scenario.stack
    counts = {
        "callback_attempts": stack.counter.callback_attempts(),
        "callbacks_posted": len(stack.counter.callbacks_posted()),
        "events_stored": len(stack.stored_events()),
        "events_read_by_job": len(stack.counter.events_read()),
        "relay_requests": len(stack.counter.requests),
        "sandboxes_created": stack.sandboxes_created(),
        "daytona_requests": len(stack.daytona.requests),
        "github_api_requests": len(stack.github.requests),
        "git_http_requests": len(stack.github.git_requests),
        "oidc_tokens_minted": stack.issuer.token_requests,
    }
    timings = {label: round(seconds, 1) for label, seconds in stack.timings.items()}
    print(f"\n{name}: {json.dumps(counts)} seconds per job: {json.dumps(timings)}")

    assert counts["callback_attempts"] >= counts["callbacks_posted"]
    assert counts["daytona_requests"] > counts["sandboxes_created"]
