"""Crash recovery: kill -9 the orchestrator at chosen points, then resume.

Each scenario compares the resumed run's merge branch with an uninterrupted
run of the same script: the same changes, one merge commit per stream, and no
second sandbox for a stream that already had one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tack_action.demo import gate_command
from tack_action.model import Objective, ObjectiveStatus

from .helpers import cli_command, git, make_repo, plan_text

pytestmark = pytest.mark.slow

_SCOPES = {
    "alpha": ["alpha.txt"],
    "beta": ["beta.txt"],
    "gamma": ["gamma.txt"],
}


def _script(builder_sleep: float) -> dict:
    streams = [
        {"title": "Alpha", "description": "Write alpha.", "file_scope": ["alpha.txt"]},
        {"title": "Beta", "description": "Write beta.", "file_scope": ["beta.txt"]},
        {
            "title": "Gamma",
            "description": "Write gamma.",
            "file_scope": ["gamma.txt"],
            "dependencies": ["Alpha", "Beta"],
        },
    ]
    builders = {
        slug: [{"files": {f"{slug}.txt": f"{slug} done\n"}, "sleep": builder_sleep}]
        for slug in _SCOPES
    }
    return {"plan": plan_text(streams), "builders": builders}


def _repo(root: Path, *, builder_sleep: float = 0.0, gate_sleep: float = 0.0) -> Path:
    gate = gate_command()
    if gate_sleep:
        gate = f"sleep {gate_sleep} && {gate}"
    return make_repo(
        root,
        _script(builder_sleep),
        config={"quality_gates": [gate], "agents": {"max_concurrent": 2}},
    )


def _load(state: Path) -> Objective | None:
    files = list((state / "objectives").glob("*.json")) if state.exists() else []
    if not files:
        return None
    try:
        return Objective.model_validate(json.loads(files[0].read_text()))
    except ValueError:
        return None


def _run_until(
    state: Path, repo: Path, condition: Callable[[Objective], bool]
) -> Objective:
    """Start a full run, kill -9 it once ``condition`` holds, and return that state."""
    command = cli_command(
        state, "plan", "Write three files", "--repo", str(repo), "--approve"
    )
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ.copy(),
    )
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            objective = _load(state)
            if objective is not None and condition(objective):
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
                return objective
            if process.poll() is not None:
                pytest.fail(
                    f"the run ended (exit {process.returncode}) before the kill point"
                )
            time.sleep(0.02)
        pytest.fail("the kill point was never reached")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _resume(state: Path, objective_id: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli_command(state, "resume", objective_id),
        capture_output=True,
        text=True,
        timeout=180,
    )


def _reference_diff(tmp_path: Path) -> str:
    repo = _repo(tmp_path / "reference")
    state = tmp_path / "reference-state"
    command = cli_command(
        state, "plan", "Write three files", "--repo", str(repo), "--approve"
    )
    result = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    objective = _load(state)
    assert objective is not None
    return _merged_diff(repo, objective)


def _merged_diff(repo: Path, objective: Objective) -> str:
    """Return what the merge branch changed; the repos differ only in .tack/."""
    return git(repo, "diff", "--no-color", "main", objective.merge_branch)


def _stream_step(objective: Objective, step: str) -> bool:
    plan = objective.plan
    if plan is None:
        return False
    return any(
        s.step_id == step and s.status.value == "executing" for s in plan.streams
    )


def _builder_running(objective: Objective) -> bool:
    plan = objective.plan
    if plan is None:
        return False
    return any(s.agent_command_id and s.step_id == "build" for s in plan.streams)


def _one_merged(objective: Objective) -> bool:
    statuses = [e.status.value for e in objective.merge_entries]
    return statuses.count("merged") == 1 and len(statuses) >= 2


@pytest.mark.parametrize(
    ("point", "builder_sleep", "gate_sleep", "condition"),
    [
        ("builder", 1.5, 0.0, _builder_running),
        ("gates", 0.0, 1.0, lambda o: _stream_step(o, "lint")),
        ("between-merges", 0.0, 0.4, _one_merged),
    ],
)
def test_kill_nine_then_resume_matches(
    tmp_path: Path,
    point: str,
    builder_sleep: float,
    gate_sleep: float,
    condition: Callable[[Objective], bool],
) -> None:
    expected_diff = _reference_diff(tmp_path)
    assert "gamma done" in expected_diff
    repo = _repo(tmp_path / "work", builder_sleep=builder_sleep, gate_sleep=gate_sleep)
    state = tmp_path / "state"

    killed = _run_until(state, repo, condition)
    sandboxes_before = {
        s.slug: s.sandbox_id for s in killed.plan.streams if s.sandbox_id
    }
    result = _resume(state, killed.id)

    assert result.returncode == 0, result.stderr[-3000:]
    final = _load(state)
    assert final is not None
    assert final.status is ObjectiveStatus.COMPLETED
    assert _merged_diff(repo, final) == expected_diff
    merges = git(repo, "rev-list", "--merges", f"main..{final.merge_branch}")
    assert len(merges.splitlines()) == 3
    for stream in final.plan.streams:
        if stream.slug in sandboxes_before:
            assert stream.sandbox_id == sandboxes_before[stream.slug]
    assert sandboxes_before, f"no sandbox existed at the {point} kill point"


def test_resume_refuses_while_another_run_holds_lock(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "work", builder_sleep=2.0)
    state = tmp_path / "state"
    command = cli_command(
        state, "plan", "Write three files", "--repo", str(repo), "--approve"
    )
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        objective = None
        while time.monotonic() < deadline:
            objective = _load(state)
            if objective is not None and objective.plan is not None:
                break
            time.sleep(0.02)
        assert objective is not None

        result = _resume(state, objective.id)

        assert result.returncode == 1
        assert "another tack-action process is running this objective" in result.stderr
    finally:
        process.kill()
        process.wait()
    assert sys.executable


def test_interrupt_exits_with_resume_hint(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "work", builder_sleep=3.0)
    state = tmp_path / "state"
    command = cli_command(
        state, "plan", "Write three files", "--repo", str(repo), "--approve"
    )
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        objective = _load(state)
        if objective is not None and _builder_running(objective):
            break
        time.sleep(0.05)

    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=20)

    assert process.returncode == 130
    assert "Continue with: tack-action resume" in stderr


_KILLING_AGENT = """\
if [ "$TACK_AGENT_ROLE" = reviewer ]; then
  echo 'TACK_REVIEW:{"verdict": "approve", "reasons": []}'
  exit 0
fi
echo run >> RUNS
echo done > note.txt
echo "edit note.txt"
if [ ! -e KILLED ]; then
  touch KILLED
  kill -9 "$(cat PIDFILE)"
  sleep 0.5
fi
"""


def test_resume_reuses_session_finished_before_crash(tmp_path: Path) -> None:
    runs = tmp_path / "runs.log"
    pidfile = tmp_path / "orchestrator.pid"
    agent = tmp_path / "agent.sh"
    agent.write_text(
        _KILLING_AGENT.replace("RUNS", str(runs))
        .replace("KILLED", str(tmp_path / "killed"))
        .replace("PIDFILE", str(pidfile))
    )
    repo = make_repo(
        tmp_path / "work", {}, config={"agents": {"command": f"sh {agent}"}}
    )
    plan_file = tmp_path / "plan.md"
    plan_file.write_text(
        plan_text([{"title": "Note", "description": "x", "file_scope": ["note.txt"]}])
    )
    state = tmp_path / "state"
    command = cli_command(
        state,
        "plan",
        "Note",
        "--repo",
        str(repo),
        "--plan-file",
        str(plan_file),
        "--approve",
    )
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    pidfile.write_text(str(process.pid))
    process.wait(timeout=60)
    time.sleep(1.0)

    result = _resume(state, _load(state).id)

    assert process.returncode == -signal.SIGKILL
    assert result.returncode == 0, result.stderr[-2000:]
    assert "reusing the session that finished before a restart" in result.stderr
    assert runs.read_text().splitlines() == ["run"]
    final = _load(state)
    assert git(repo, "show", f"{final.merge_branch}:note.txt") == "done"
