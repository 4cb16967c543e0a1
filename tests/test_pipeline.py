"""End-to-end runs of the pipeline through the command line, on real git repos."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tack_action.cli import main
from tack_action.demo import SAMPLE_FILES
from tack_action.model import MergeStatus, ObjectiveStatus, StreamStatus
from tack_action.state import FileStateStore

from .helpers import git, make_repo, plan_text

pytestmark = pytest.mark.slow

_GOOD_COUNT = (
    "from collections import Counter\n\n"
    "def frequencies(text):\n"
    "    return Counter(w.lower() for w in text.split())\n"
)
_BAD_COUNT = "def frequencies(text):\n    return {}\n"
_COUNT_TEST = (
    "import unittest\n\nfrom textkit.count import frequencies\n\n\n"
    "class CountTest(unittest.TestCase):\n"
    "    def test_counts(self):\n"
    '        self.assertEqual(frequencies("a A")["a"], 2)\n'
)


def _stream(title: str, scope: list[str], deps: list[str] | None = None) -> dict:
    return {
        "title": title,
        "description": f"Implement {title.lower()}.",
        "file_scope": scope,
        "dependencies": deps or [],
    }


def _invoke(state: Path, *args: str) -> object:
    runner = CliRunner()
    return runner.invoke(
        main, ["--state-dir", str(state), *args], catch_exceptions=False
    )


def _only_objective(state: Path):
    objectives = FileStateStore(state).list()
    assert len(objectives) == 1
    return objectives[0]


def test_demo_merges_three_streams(tmp_path: Path) -> None:
    state = tmp_path / "state"

    result = _invoke(state, "demo", "--dir", str(tmp_path / "demo"))

    assert result.exit_code == 0, result.output
    assert "quality_gate_failure -> rerun_previous_agent (1/6)" in result.output
    assert result.output.count("merged ✓") == 3
    assert "tests on a fresh clone of" in result.output
    assert ": pass" in result.output

    objective = _only_objective(state)
    assert objective.status is ObjectiveStatus.COMPLETED
    assert all(s.status is StreamStatus.MERGED for s in objective.plan.streams)
    counter = objective.plan.stream("add-word-frequency-counter")
    gate_failures = [
        a for a in objective.ledger if a.failure_kind == "quality_gate_failure"
    ]
    assert len(gate_failures) == 1
    assert gate_failures[0].stream_id == counter.id
    assert gate_failures[0].sandbox_id == counter.sandbox_id

    repo = tmp_path / "demo" / "textkit"
    tree = git(repo, "ls-tree", "-r", "--name-only", objective.merge_branch)
    for path in ("textkit/slug.py", "textkit/count.py", "textkit/cli.py"):
        assert path in tree.splitlines()
    merges = git(repo, "rev-list", "--merges", f"main..{objective.merge_branch}")
    assert len(merges.splitlines()) == 3


def _failing_script(*, guided: bool = False) -> dict:
    script = {
        "plan": plan_text(
            [
                _stream("Add counter", ["textkit/count.py", "tests/test_count.py"]),
                _stream("Add readme note", ["README.md"]),
            ]
        ),
        "builders": {
            "add-counter": [
                {
                    "files": {
                        "textkit/count.py": _BAD_COUNT,
                        "tests/test_count.py": _COUNT_TEST,
                    }
                }
            ],
            "add-readme-note": [{"files": {"README.md": "# textkit\n\nNotes.\n"}}],
        },
    }
    if guided:
        script["guided"] = {"add-counter": {"files": {"textkit/count.py": _GOOD_COUNT}}}
    return script


_ESCALATE_BLUEPRINT = """\
id: build-review
retry:
  profile: self_healing
  default_on_exhausted: escalate
steps:
  - id: build
    type: agent
    role: builder
    next: lint
  - id: lint
    type: deterministic
    action: run_quality_gates
    on_fail: build
    max_fix_iterations: 2
    next: review
  - id: review
    type: agent
    role: reviewer
    on_fail: build
    next: merge_ready
  - id: merge_ready
    type: deterministic
    action: signal_merge_ready
"""


def test_exhausted_budget_escalate_ends_partial(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "work",
        _failing_script(),
        blueprints={"review.yaml": _ESCALATE_BLUEPRINT},
    )
    state = tmp_path / "state"

    result = _invoke(state, "plan", "Add a counter", "--repo", str(repo), "--approve")

    assert result.exit_code == 3, result.output
    objective = _only_objective(state)
    assert objective.status is ObjectiveStatus.PARTIAL
    counter = objective.plan.stream("add-counter")
    readme = objective.plan.stream("add-readme-note")
    assert counter.status is StreamStatus.FAILED
    assert readme.status is StreamStatus.MERGED
    kinds = [a.failure_kind for a in objective.ledger if a.stream_id == counter.id]
    assert kinds == ["quality_gate_failure"] * 3
    assert objective.ledger[-1].action in ("escalate",)


def test_ask_human_blocks_then_retry_completes(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "work", _failing_script(guided=True))
    state = tmp_path / "state"

    first = _invoke(state, "plan", "Add a counter", "--repo", str(repo), "--approve")

    assert first.exit_code == 2, first.output
    assert "recovery blocked: retry budget exhausted" in first.output
    blocked = _only_objective(state)
    assert blocked.status is ObjectiveStatus.BLOCKED
    counter = blocked.plan.stream("add-counter")
    assert counter.blocked
    sandbox_before = counter.sandbox_id

    second = _invoke(
        state,
        "retry",
        blocked.short_id,
        "add-counter",
        "--guidance",
        "lower-case words",
    )

    assert second.exit_code == 0, second.output
    assert "recovery resumed: guidance applied" in second.output
    done = _only_objective(state)
    assert done.status is ObjectiveStatus.COMPLETED
    assert done.plan.stream("add-counter").sandbox_id == sandbox_before
    guided = [a for a in done.ledger if a.human_guidance]
    assert guided[0].human_guidance == "lower-case words"


def _conflict_script() -> dict:
    return {
        "plan": plan_text(
            [
                _stream("Rewrite readme one", ["README.md"]),
                _stream("Rewrite readme two", ["README.md"]),
            ]
        ),
        "builders": {
            "rewrite-readme-one": [{"files": {"README.md": "# textkit\n\nOne.\n"}}],
            "rewrite-readme-two": [{"files": {"README.md": "# textkit\n\nTwo.\n"}}],
        },
    }


def test_conflict_resolved_by_tier_two(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "work", _conflict_script())
    state = tmp_path / "state"

    result = _invoke(state, "plan", "Rewrite", "--repo", str(repo), "--approve")

    assert result.exit_code == 0, result.output
    objective = _only_objective(state)
    tiers = sorted(entry.tier for entry in objective.merge_entries)
    assert tiers == [1, 2]
    second = max(objective.merge_entries, key=lambda e: e.tier)
    winner = objective.plan.stream(second.stream_id)
    readme = git(repo, "show", f"{objective.merge_branch}:README.md")
    expected = "One." if winner.slug.endswith("one") else "Two."
    assert expected in readme


def test_conflict_recorded_when_auto_resolve_off(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "work", _conflict_script(), config={"merge": {"auto_resolve": False}}
    )
    state = tmp_path / "state"

    result = _invoke(state, "plan", "Rewrite", "--repo", str(repo), "--approve")

    assert result.exit_code == 3, result.output
    objective = _only_objective(state)
    statuses = sorted(entry.status.value for entry in objective.merge_entries)
    assert statuses == ["conflict", "merged"]
    conflict = [e for e in objective.merge_entries if e.status is MergeStatus.CONFLICT]
    assert conflict[0].tier == 4
    assert any(a.failure_kind == "merge_conflict" for a in objective.ledger)


def test_post_merge_gate_failure_reverts_merge(tmp_path: Path) -> None:
    greet = (
        "from textkit.words import words\n\n"
        "def greet():\n    return len(words('a b'))\n"
    )
    greet_test = (
        "import unittest\n\nfrom textkit.greet import greet\n\n\n"
        "class GreetTest(unittest.TestCase):\n"
        "    def test_greet(self):\n"
        "        self.assertEqual(greet(), 2)\n"
    )
    words = "def words(text):\n    return text.split(',')\n"
    words_test = (
        "import unittest\n\nfrom textkit.words import words\n\n\n"
        "class WordsTest(unittest.TestCase):\n"
        "    def test_words_split_on_commas(self):\n"
        "        self.assertEqual(words('a,b'), ['a', 'b'])\n"
    )
    script = {
        "plan": plan_text(
            [
                _stream("Add greeting", ["textkit/greet.py", "tests/test_greet.py"]),
                _stream(
                    "Split on commas",
                    ["textkit/words.py", "tests/test_words.py"],
                    ["Add greeting"],
                ),
            ]
        ),
        "builders": {
            "add-greeting": [
                {
                    "files": {
                        "textkit/greet.py": greet,
                        "tests/test_greet.py": greet_test,
                    }
                }
            ],
            "split-on-commas": [
                {
                    "files": {
                        "textkit/words.py": words,
                        "tests/test_words.py": words_test,
                    }
                }
            ],
        },
    }
    repo = make_repo(tmp_path / "work", script)
    state = tmp_path / "state"

    result = _invoke(state, "plan", "Greet", "--repo", str(repo), "--approve")

    assert result.exit_code == 3, result.output
    objective = _only_objective(state)
    greeting = objective.plan.stream("add-greeting")
    commas = objective.plan.stream("split-on-commas")
    assert greeting.status is StreamStatus.MERGED
    assert commas.status is StreamStatus.FAILED
    first_merge = objective.merge_entry_for(greeting.id).merge_head
    assert git(repo, "rev-parse", objective.merge_branch) == first_merge
    assert objective.merge_entry_for(commas.id).status is MergeStatus.FAILED
    assert any(a.failure_kind == "post_merge_gate_failure" for a in objective.ledger)


def test_plan_waits_then_approve_runs(tmp_path: Path) -> None:
    script = {
        "plan": plan_text([_stream("Add readme note", ["README.md"])]),
        "builders": {"add-readme-note": [{"files": {"README.md": "# t\n\nNote.\n"}}]},
    }
    repo = make_repo(tmp_path / "work", script)
    state = tmp_path / "state"

    planned = _invoke(state, "plan", "Add a note", "--repo", str(repo))

    assert planned.exit_code == 0, planned.output
    assert "awaiting approval" in planned.output
    waiting = _only_objective(state)
    assert waiting.status is ObjectiveStatus.PLANNING
    assert waiting.plan.status.value == "pending_approval"
    assert waiting.planner_sandbox_id is not None

    approved = _invoke(state, "approve", waiting.short_id)

    assert approved.exit_code == 0, approved.output
    assert _only_objective(state).status is ObjectiveStatus.COMPLETED


def test_reject_plans_again_with_feedback(tmp_path: Path) -> None:
    script = {"plan": plan_text([_stream("Add readme note", ["README.md"])])}
    repo = make_repo(tmp_path / "work", script)
    state = tmp_path / "state"
    _invoke(state, "plan", "Add a note", "--repo", str(repo))
    first = _only_objective(state)

    result = _invoke(state, "reject", first.short_id, "--feedback", "smaller please")

    assert result.exit_code == 0, result.output
    again = _only_objective(state)
    assert again.feedback == "smaller please"
    assert again.plan.status.value == "pending_approval"
    assert again.plan.id != first.plan.id


def test_plan_file_skips_planner(tmp_path: Path) -> None:
    script = {"builders": {"add-note": [{"files": {"README.md": "# t\n\nNote.\n"}}]}}
    repo = make_repo(tmp_path / "work", script)
    plan_file = tmp_path / "plan.md"
    plan_file.write_text(plan_text([_stream("Add note", ["README.md"])]))
    state = tmp_path / "state"

    result = _invoke(
        state, "plan", "Note", "--repo", str(repo), "--plan-file", str(plan_file)
    )

    assert result.exit_code == 0, result.output
    objective = _only_objective(state)
    assert objective.planner_sandbox_id is None
    assert [s.slug for s in objective.plan.streams] == ["add-note"]


@pytest.mark.parametrize(
    ("config_text", "blueprint_text", "expected"),
    [
        ("agents:\n  max_concurent: 3\n", None, "max_concurent"),
        ("agents:\n  max_concurrent: eight\n", None, "agents.max_concurrent"),
        (
            None,
            "id: standard\ndefault: true\nsteps:\n  - id: a\n    type: bogus\n",
            "bogus",
        ),
        (
            None,
            "id: standard\ndefault: true\nsteps:\n"
            "  - id: a\n    type: human\n    next: missing\n",
            "missing",
        ),
    ],
)
def test_invalid_setup_creates_no_sandbox(
    tmp_path: Path, config_text: str | None, blueprint_text: str | None, expected: str
) -> None:
    repo = make_repo(tmp_path / "work", {"plan": plan_text([_stream("A", ["a.txt"])])})
    if config_text is not None:
        (repo / ".tack" / "config.yaml").write_text(config_text)
    if blueprint_text is not None:
        (repo / ".tack" / "blueprints").mkdir(exist_ok=True)
        (repo / ".tack" / "blueprints" / "bad.yaml").write_text(blueprint_text)
    state = tmp_path / "state"

    result = _invoke(state, "plan", "Anything", "--repo", str(repo))

    assert result.exit_code == 1
    assert expected in result.output
    assert "Error:" in result.output
    sandboxes = tmp_path / "work" / "sandboxes"
    assert not sandboxes.exists() or not any(sandboxes.iterdir())
    assert not (state / "objectives").exists() or not any(
        (state / "objectives").glob("*.json")
    )


def test_status_json_lists_streams(tmp_path: Path) -> None:
    script = {"plan": plan_text([_stream("Add note", ["README.md"])])}
    repo = make_repo(tmp_path / "work", script)
    state = tmp_path / "state"
    _invoke(state, "plan", "Note", "--repo", str(repo))
    objective = _only_objective(state)

    result = _invoke(state, "status", objective.short_id, "--json")

    assert result.exit_code == 0
    assert '"slug": "add-note"' in result.output
    assert '"status": "planning"' in result.output


def test_sample_files_pass_their_own_tests() -> None:
    assert "tests/test_words.py" in SAMPLE_FILES


def _three_independent(sleep: float = 0.0) -> dict:
    titles = ["One", "Two", "Three"]
    return {
        "plan": plan_text([_stream(t, [f"{t.lower()}.txt"]) for t in titles]),
        "builders": {
            t.lower(): [{"files": {f"{t.lower()}.txt": t}, "sleep": sleep}]
            for t in titles
        },
    }


def test_max_concurrent_one_runs_streams_serially(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "work",
        _three_independent(),
        config={"agents": {"max_concurrent": 1}},
    )
    state = tmp_path / "state"

    result = _invoke(state, "plan", "Three files", "--repo", str(repo), "--approve")

    assert result.exit_code == 0, result.output
    objective = _only_objective(state)
    texts = [(e.stream_id, e.text) for e in objective.events if e.stream_id]
    dispatched = [i for i, (_, text) in enumerate(texts) if text == "dispatched"]
    ready = [i for i, (_, text) in enumerate(texts) if text == "merge ready"]
    assert len(dispatched) == 3
    # Each later stream starts only after the one before it finished.
    assert dispatched[1] > ready[0]
    assert dispatched[2] > ready[1]


def test_builder_timeout_is_recorded_and_retried(tmp_path: Path) -> None:
    script = {
        "plan": plan_text([_stream("Slow", ["slow.txt"])]),
        "builders": {
            "slow": [
                {"files": {"slow.txt": "late"}, "sleep": 5},
                {"files": {"slow.txt": "on time"}},
            ]
        },
    }
    timeouts = {"builder": {"max_duration_minutes": 0.02}}
    repo = make_repo(
        tmp_path / "work", script, config={"agents": {"timeouts": timeouts}}
    )
    state = tmp_path / "state"

    result = _invoke(state, "plan", "Slow", "--repo", str(repo), "--approve")

    assert result.exit_code == 0, result.output
    objective = _only_objective(state)
    first = objective.ledger[0]
    assert first.failure_kind == "agent_runtime_transient"
    assert first.action == "retry_same_step"
    assert "timed out" in first.error_summary
    assert git(repo, "show", f"{objective.merge_branch}:slow.txt") == "on time"


def test_builder_without_changes_is_no_work(tmp_path: Path) -> None:
    script = {
        "plan": plan_text([_stream("Nothing", ["nothing.txt"])]),
        "builders": {"nothing": [{"files": {}}]},
    }
    repo = make_repo(tmp_path / "work", script)
    state = tmp_path / "state"

    result = _invoke(state, "plan", "Nothing", "--repo", str(repo), "--approve")

    assert result.exit_code == 2, result.output
    objective = _only_objective(state)
    kinds = {a.failure_kind for a in objective.ledger}
    assert kinds == {"no_work_done"}


def test_create_pr_uses_pr_writer_once(tmp_path: Path) -> None:
    from tack_action.orchestrator import Orchestrator, build_context, create_objective
    from tack_action.planning import parse_plan_output

    from .fakes.forge import RecordingForge

    script = {
        "builders": {"add-note": [{"files": {"README.md": "# t\n\nNote.\n"}}]},
        "pull_request": {"title": "Add a note", "body": "## Summary\n\nA note."},
    }
    repo = make_repo(tmp_path / "work", script)
    store = FileStateStore(tmp_path / "state")
    plan = parse_plan_output(plan_text([_stream("Add note", ["README.md"])]))
    objective = create_objective("Note", repo, store, plan=plan)
    forge = RecordingForge()
    ctx = build_context(objective, store, forge=forge)

    result = Orchestrator(ctx).approve()

    assert result.status is ObjectiveStatus.COMPLETED
    assert len(forge.calls) == 1
    call = forge.calls[0]
    assert call["head"] == result.merge_branch
    assert call["base"] == "main"
    assert call["title"] == "Add a note"
    assert "## Summary" in call["body"]
    assert "### Streams (succeeded)\n- Add note" in call["body"]
    assert result.pull_request_url == "https://forge.invalid/pull/1"


def test_enforce_file_scope_reverts_outside_changes(tmp_path: Path) -> None:
    script = {
        "plan": plan_text([_stream("Add note", ["notes/**"])]),
        "builders": {
            "add-note": [
                {"files": {"notes/a.md": "in scope\n", "README.md": "out of scope\n"}}
            ]
        },
    }
    repo = make_repo(
        tmp_path / "work", script, config={"agents": {"enforce_file_scope": True}}
    )
    state = tmp_path / "state"

    result = _invoke(state, "plan", "Note", "--repo", str(repo), "--approve")

    assert result.exit_code == 0, result.output
    assert "reverted changes outside file scope: README.md" in result.output
    objective = _only_objective(state)
    assert git(repo, "show", f"{objective.merge_branch}:notes/a.md") == "in scope"
    readme = git(repo, "show", f"{objective.merge_branch}:README.md")
    assert readme == SAMPLE_FILES["README.md"].strip()


def test_scoped_rules_reach_builder_prompt(tmp_path: Path) -> None:
    rule = (
        "---\nscope: notes/**\npriority: high\n---\nWrite notes in British English.\n"
    )
    other = "---\nscope: textkit/**\n---\nUse type hints.\n"
    script = {
        "plan": plan_text([_stream("Add note", ["notes/**"])]),
        "builders": {
            "add-note": [
                {"files": {"notes/a.md": "x\n"}, "save_prompt": "notes/prompt.md"}
            ]
        },
    }
    repo = make_repo(tmp_path / "work", script)
    (repo / ".tack" / "rules").mkdir()
    (repo / ".tack" / "rules" / "notes.md").write_text(rule)
    (repo / ".tack" / "rules" / "code.md").write_text(other)
    state = tmp_path / "state"

    result = _invoke(state, "plan", "Note", "--repo", str(repo), "--approve")

    assert result.exit_code == 0, result.output
    objective = _only_objective(state)
    prompt = git(repo, "show", f"{objective.merge_branch}:notes/prompt.md")
    assert "IMPORTANT CONSTRAINT:" in prompt
    assert "British English" in prompt
    assert "Use type hints" not in prompt


def test_failed_planning_plans_again_on_resume(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "work", {"builders": {}})
    state = tmp_path / "state"

    failed = _invoke(state, "plan", "Note", "--repo", str(repo))

    assert failed.exit_code == 1, failed.output
    assert "planning failed" in failed.output
    objective = _only_objective(state)
    assert objective.status is ObjectiveStatus.FAILED
    script = {"plan": plan_text([_stream("Add note", ["README.md"])])}
    (tmp_path / "work" / "script.json").write_text(json.dumps(script))

    resumed = _invoke(state, "resume", objective.short_id)

    assert resumed.exit_code == 0, resumed.output
    again = _only_objective(state)
    assert again.status is ObjectiveStatus.PLANNING
    assert again.plan.status.value == "pending_approval"


def test_worktree_dir_inside_project_leaves_it_alone(tmp_path: Path) -> None:
    script = {
        "plan": plan_text([_stream("Add note", ["notes.md"])]),
        "builders": {"add-note": [{"files": {"notes.md": "note\n"}}]},
    }
    repo = make_repo(tmp_path / "work", script)
    config = (repo / ".tack" / "config.yaml").read_text()
    inside = repo / ".worktrees"
    config = config.replace(str(tmp_path / "work" / "sandboxes"), str(inside))
    (repo / ".tack" / "config.yaml").write_text(config)
    (repo / ".gitignore").write_text("__pycache__/\n.worktrees/\n")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "cfg")
    (repo / "untracked.txt").write_text("mine\n")
    head = git(repo, "rev-parse", "HEAD")
    state = tmp_path / "state"

    result = _invoke(state, "plan", "Note", "--repo", str(repo), "--approve")

    assert result.exit_code == 0, result.output
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    assert git(repo, "rev-parse", "HEAD") == head
    assert (repo / "untracked.txt").read_text() == "mine\n"
    objective = _only_objective(state)
    tree = git(repo, "ls-tree", "-r", "--name-only", objective.merge_branch)
    assert "notes.md" in tree.splitlines()
    assert "untracked.txt" not in tree.splitlines()


def test_relative_worktree_dir_is_rejected(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "work", {"builders": {}})
    config = (repo / ".tack" / "config.yaml").read_text()
    config = config.replace(str(tmp_path / "work" / "sandboxes"), "$TACK_UNSET_X/wt")
    (repo / ".tack" / "config.yaml").write_text(config)
    plan_file = tmp_path / "plan.md"
    plan_file.write_text(plan_text([_stream("Add note", ["notes.md"])]))
    state = tmp_path / "state"

    result = _invoke(
        state, "plan", "Note", "--repo", str(repo), "--plan-file", str(plan_file)
    )

    assert result.exit_code == 1
    assert "sandbox.worktree_dir" in result.output
    assert not (state / "objectives").exists() or not any(
        (state / "objectives").glob("*.json")
    )


_SHELL_AGENT = """\
if [ "$TACK_AGENT_ROLE" = reviewer ]; then
  echo 'TACK_REVIEW:{"verdict": "approve", "reasons": []}'
  exit 0
fi
runs="$TMPDIR/builder-runs"
echo x >> "$runs"
MODE
echo done > note.txt
echo "edit note.txt"
"""


def _shell_agent_repo(tmp_path: Path, mode: str, **agents: object) -> tuple[Path, Path]:
    agent = tmp_path / "agent.sh"
    agent.write_text(_SHELL_AGENT.replace("MODE", mode))
    repo = make_repo(
        tmp_path / "work",
        {},
        config={"agents": {"command": f"sh {agent}", **agents}},
    )
    plan_file = tmp_path / "plan.md"
    plan_file.write_text(plan_text([_stream("Add note", ["note.txt"])]))
    return repo, plan_file


def test_agent_that_deletes_git_dir_recovers(tmp_path: Path) -> None:
    mode = 'if [ "$(wc -l < "$runs")" -eq 1 ]; then rm -rf .git; exit 0; fi'
    repo, plan_file = _shell_agent_repo(tmp_path, mode)
    state = tmp_path / "state"

    result = _invoke(
        state,
        "plan",
        "Note",
        "--repo",
        str(repo),
        "--plan-file",
        str(plan_file),
        "--approve",
    )

    assert result.exit_code == 0, result.output
    assert "lost its git clone" in result.output or "sandbox_failure" in result.output
    objective = _only_objective(state)
    assert git(repo, "show", f"{objective.merge_branch}:note.txt") == "done"


def test_agent_background_job_does_not_hang(tmp_path: Path) -> None:
    timeouts = {"builder": {"idle_minutes": 0.1}}
    repo, plan_file = _shell_agent_repo(tmp_path, "sleep 30 &", timeouts=timeouts)
    state = tmp_path / "state"

    result = _invoke(
        state,
        "plan",
        "Note",
        "--repo",
        str(repo),
        "--plan-file",
        str(plan_file),
        "--approve",
    )

    assert result.exit_code == 0, result.output
    objective = _only_objective(state)
    assert objective.ledger == []


def test_missing_agent_command_is_rejected_early(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "work", {}, config={"agents": {"command": {"builder": "true"}}}
    )
    state = tmp_path / "state"

    result = _invoke(state, "plan", "Anything", "--repo", str(repo))

    assert result.exit_code == 1
    assert (
        "agents.command has no command for role(s) planner, reviewer" in result.output
    )
    assert not (tmp_path / "work" / "sandboxes").exists()


def test_missing_base_branch_is_rejected_early(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "work", {}, config={"daemon": {"base_branch": "trunk"}})
    state = tmp_path / "state"

    result = _invoke(state, "plan", "Anything", "--repo", str(repo))

    assert result.exit_code == 1
    assert "daemon.base_branch" in result.output
    assert "'trunk'" in result.output


def test_agent_command_not_found_fails_fast(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "work", {}, config={"agents": {"command": "no-such-agent-xyz"}}
    )
    plan_file = tmp_path / "plan.md"
    plan_file.write_text(plan_text([_stream("Add note", ["note.txt"])]))
    state = tmp_path / "state"

    result = _invoke(
        state,
        "plan",
        "Note",
        "--repo",
        str(repo),
        "--plan-file",
        str(plan_file),
        "--approve",
    )

    assert result.exit_code == 1, result.output
    objective = _only_objective(state)
    stream = objective.plan.streams[0]
    assert "could not run (exit code 127)" in stream.error
    assert [a.failure_kind for a in objective.ledger] == ["agent_output_failure"]
