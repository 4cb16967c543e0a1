"""Tests for loading, validating and resolving blueprints."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from tack_action.blueprints import (
    Blueprint,
    Step,
    load_blueprints,
    parse_blueprint,
    resolve_blueprint,
    top_level_blueprints,
)
from tack_action.errors import BlueprintError
from tack_action.recovery import RETRY_PROFILES

DOCS = Path(__file__).resolve().parent.parent / "docs" / "blueprints.md"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    return path


@pytest.fixture
def user_dir(tmp_path: Path) -> Path:
    return tmp_path / "user-blueprints"


def write_file(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def write_project(repo: Path, name: str, text: str) -> Path:
    return write_file(repo / ".tack" / "blueprints", name, text)


def load_error(repo: Path, user_dir: Path) -> str:
    with pytest.raises(BlueprintError) as caught:
        load_blueprints(repo, user_dir=user_dir)
    return str(caught.value)


def assert_names(message: str, path: Path, blueprint_id: str, step_id: str) -> None:
    assert str(path) in message
    assert f"blueprint {blueprint_id!r}" in message
    assert f"step {step_id!r}" in message


def test_builtins_load_and_validate(user_dir: Path) -> None:
    blueprints = load_blueprints(None, user_dir=user_dir)

    assert sorted(blueprints) == ["build-review", "standard"]
    assert blueprints["standard"].source == "builtin:standard.yaml"
    assert blueprints["build-review"].source == "builtin:build-review.yaml"


def test_builtin_standard_matches_tack(user_dir: Path) -> None:
    standard = load_blueprints(None, user_dir=user_dir)["standard"]
    flow = [(s.id, s.type, s.role or s.action or s.ref, s.next) for s in standard.steps]
    execute = standard.step("execute")

    assert standard.default is True
    assert standard.retry.profile == "balanced"
    assert flow == [
        ("plan", "agent", "planner", "approve"),
        ("approve", "human", None, "execute"),
        ("execute", "blueprint_ref", "build-review", "merge"),
        ("merge", "deterministic", "merge_queue", "pr"),
        ("pr", "deterministic", "create_pr", "complete"),
        ("complete", "deterministic", "mark_complete", None),
    ]
    assert execute.foreach == "work_item"
    assert execute.on_work_item_failure == "escalate"


def test_builtin_build_review_matches_tack(user_dir: Path) -> None:
    build_review = load_blueprints(None, user_dir=user_dir)["build-review"]
    flow = [(s.id, s.type, s.role or s.action, s.next) for s in build_review.steps]
    build = build_review.step("build")
    lint = build_review.step("lint")
    review = build_review.step("review")

    assert build_review.default is False
    assert build_review.retry.profile == "self_healing"
    assert flow == [
        ("build", "agent", "builder", "lint"),
        ("lint", "deterministic", "run_quality_gates", "review"),
        ("review", "agent", "reviewer", "merge_ready"),
        ("merge_ready", "deterministic", "signal_merge_ready", None),
    ]
    assert build.commit == "auto"
    assert build.messages == {"commit": True}
    assert lint.retry is not None
    assert lint.retry.max_attempts == 2
    assert lint.on_fail == "build"
    assert lint.max_fix_iterations == 3
    assert review.commit == "none"
    assert review.on_fail == "build"
    assert review.max_fix_iterations == 3


def test_builtin_steps_record_lines(user_dir: Path) -> None:
    standard = load_blueprints(None, user_dir=user_dir)["standard"]

    lines = [step.line for step in standard.steps]

    assert all(line is not None for line in lines)
    assert lines == sorted(lines)


def test_project_file_overrides_build_review(repo: Path, user_dir: Path) -> None:
    path = write_project(
        repo,
        "lite.yaml",
        """
        id: build-review
        retry:
          profile: balanced
        steps:
          - id: build
            type: agent
            role: builder
            next: merge_ready
          - id: merge_ready
            type: deterministic
            action: signal_merge_ready
        """,
    )

    blueprints = load_blueprints(repo, user_dir=user_dir)

    assert blueprints["build-review"].source == str(path)
    assert blueprints["build-review"].step_ids() == ["build", "merge_ready"]
    assert blueprints["standard"].source == "builtin:standard.yaml"


def test_user_layer_overrides_builtin(repo: Path, user_dir: Path) -> None:
    path = write_file(
        user_dir,
        "mine.yaml",
        """
        id: build-review
        steps:
          - id: build
            type: agent
            role: builder
        """,
    )

    blueprints = load_blueprints(repo, user_dir=user_dir)

    assert blueprints["build-review"].source == str(path)


def test_project_layer_overrides_user_layer(repo: Path, user_dir: Path) -> None:
    write_file(
        user_dir,
        "z-user.yaml",
        """
        id: build-review
        steps:
          - id: from_user
            type: human
        """,
    )
    project_path = write_project(
        repo,
        "a-project.yaml",
        """
        id: build-review
        steps:
          - id: from_project
            type: human
        """,
    )

    blueprints = load_blueprints(repo, user_dir=user_dir)

    assert blueprints["build-review"].source == str(project_path)
    assert blueprints["build-review"].step_ids() == ["from_project"]


def test_user_layer_defaults_to_home_config(repo: Path) -> None:
    home_dir = Path.home() / ".config" / "tack" / "blueprints"
    path = write_file(
        home_dir,
        "hotfix.yaml",
        """
        id: hotfix
        steps:
          - id: fix
            type: agent
            role: builder
        """,
    )

    blueprints = load_blueprints(repo)

    assert blueprints["hotfix"].source == str(path)


def test_directory_files_read_sorted(repo: Path, user_dir: Path) -> None:
    for name, step_id in (("b.yaml", "second"), ("a.yml", "first")):
        write_project(
            repo,
            name,
            f"""
            id: hotfix
            steps:
              - id: {step_id}
                type: human
            """,
        )
    write_project(repo, "notes.txt", "not a blueprint")

    blueprints = load_blueprints(repo, user_dir=user_dir)

    assert blueprints["hotfix"].step_ids() == ["second"]


def test_resolve_explicit_id_wins(user_dir: Path) -> None:
    blueprints = load_blueprints(None, user_dir=user_dir)

    chosen = resolve_blueprint(blueprints, "build-review")

    assert chosen.id == "build-review"


def test_resolve_unknown_id_lists_known(user_dir: Path) -> None:
    blueprints = load_blueprints(None, user_dir=user_dir)

    with pytest.raises(BlueprintError) as caught:
        resolve_blueprint(blueprints, "hotfix")

    assert "'hotfix' not found" in str(caught.value)
    assert "'build-review', 'standard'" in str(caught.value)


def test_resolve_builtins_choose_standard(user_dir: Path) -> None:
    blueprints = load_blueprints(None, user_dir=user_dir)

    chosen = resolve_blueprint(blueprints)

    assert chosen.id == "standard"


def test_resolve_single_top_level_without_default(repo: Path, user_dir: Path) -> None:
    write_project(
        repo,
        "standard.yaml",
        """
        id: standard
        steps:
          - id: execute
            type: blueprint_ref
            ref: build-review
            foreach: work_item
        """,
    )
    blueprints = load_blueprints(repo, user_dir=user_dir)

    chosen = resolve_blueprint(blueprints)

    assert chosen.default is False
    assert chosen.id == "standard"


def test_resolve_only_loaded_blueprint() -> None:
    hotfix = parse_blueprint(
        "id: hotfix\nsteps:\n  - id: fix\n    type: agent\n    role: builder\n",
        "hotfix.yaml",
    )

    chosen = resolve_blueprint({"hotfix": hotfix})

    assert chosen is hotfix


def test_resolve_default_among_top_level(repo: Path, user_dir: Path) -> None:
    write_project(
        repo,
        "hotfix.yaml",
        """
        id: hotfix
        steps:
          - id: fix
            type: agent
            role: builder
        """,
    )
    blueprints = load_blueprints(repo, user_dir=user_dir)

    chosen = resolve_blueprint(blueprints)

    assert [b.id for b in top_level_blueprints(blueprints)] == ["hotfix", "standard"]
    assert chosen.id == "standard"


def test_resolve_zero_defaults_error(repo: Path, user_dir: Path) -> None:
    hotfix_path = write_project(
        repo,
        "hotfix.yaml",
        """
        id: hotfix
        steps:
          - id: fix
            type: agent
            role: builder
        """,
    )
    standard_path = write_project(
        repo,
        "standard.yaml",
        """
        id: standard
        default: false
        steps:
          - id: execute
            type: blueprint_ref
            ref: build-review
        """,
    )
    blueprints = load_blueprints(repo, user_dir=user_dir)

    with pytest.raises(BlueprintError) as caught:
        resolve_blueprint(blueprints)

    message = str(caught.value)
    assert message.startswith("No default blueprint")
    assert str(hotfix_path) in message
    assert str(standard_path) in message
    assert "default: true" in message


def test_resolve_two_defaults_names_files(repo: Path, user_dir: Path) -> None:
    hotfix_path = write_project(
        repo,
        "hotfix.yaml",
        """
        id: hotfix
        default: true
        steps:
          - id: fix
            type: agent
            role: builder
        """,
    )
    blueprints = load_blueprints(repo, user_dir=user_dir)

    with pytest.raises(BlueprintError) as caught:
        resolve_blueprint(blueprints)

    message = str(caught.value)
    assert message.startswith("No default blueprint")
    assert f"'hotfix' from {hotfix_path}" in message
    assert "'standard' from builtin:standard.yaml" in message


def test_reject_unknown_step_type(repo: Path, user_dir: Path) -> None:
    path = write_project(
        repo,
        "bad.yaml",
        """
        id: hotfix
        steps:
          - id: fix
            type: agnet
        """,
    )

    message = load_error(repo, user_dir)

    assert_names(message, path, "hotfix", "fix")
    assert "'agnet'" in message


def test_reject_unknown_action(repo: Path, user_dir: Path) -> None:
    path = write_project(
        repo,
        "bad.yaml",
        """
        id: hotfix
        steps:
          - id: ship
            type: deterministic
            action: deploy
        """,
    )

    message = load_error(repo, user_dir)

    assert_names(message, path, "hotfix", "ship")
    assert "'deploy'" in message


def test_reject_unknown_role(repo: Path, user_dir: Path) -> None:
    path = write_project(
        repo,
        "bad.yaml",
        """
        id: hotfix
        steps:
          - id: fix
            type: agent
            role: buildr
        """,
    )

    message = load_error(repo, user_dir)

    assert_names(message, path, "hotfix", "fix")
    assert "'buildr'" in message


def test_reject_agent_without_role(repo: Path, user_dir: Path) -> None:
    path = write_project(
        repo,
        "bad.yaml",
        """
        id: hotfix
        steps:
          - id: fix
            type: agent
        """,
    )

    message = load_error(repo, user_dir)

    assert_names(message, path, "hotfix", "fix")
    assert "needs the key 'role'" in message


def test_reject_duplicate_step_ids(repo: Path, user_dir: Path) -> None:
    path = write_project(
        repo,
        "bad.yaml",
        """
        id: hotfix
        steps:
          - id: fix
            type: human
            next: fix2
          - id: fix2
            type: human
          - id: fix
            type: human
        """,
    )

    message = load_error(repo, user_dir)

    assert_names(message, path, "hotfix", "fix")
    assert "duplicate step id" in message
    assert f"{path}:8:" in message


def test_reject_next_missing_step(repo: Path, user_dir: Path) -> None:
    path = write_project(
        repo,
        "bad.yaml",
        """
        id: hotfix
        steps:
          - id: fix
            type: agent
            role: builder
            next: lint
        """,
    )

    message = load_error(repo, user_dir)

    assert_names(message, path, "hotfix", "fix")
    assert "next names the missing step 'lint'" in message


def test_reject_on_fail_missing_step(repo: Path, user_dir: Path) -> None:
    path = write_project(
        repo,
        "bad.yaml",
        """
        id: hotfix
        steps:
          - id: lint
            type: deterministic
            action: run_quality_gates
            on_fail: build
        """,
    )

    message = load_error(repo, user_dir)

    assert_names(message, path, "hotfix", "lint")
    assert "on_fail names the missing step 'build'" in message


def test_reject_ref_missing_blueprint(repo: Path, user_dir: Path) -> None:
    path = write_project(
        repo,
        "bad.yaml",
        """
        id: hotfix
        steps:
          - id: execute
            type: blueprint_ref
            ref: stream.yaml
        """,
    )

    message = load_error(repo, user_dir)

    assert_names(message, path, "hotfix", "execute")
    assert "missing blueprint 'stream.yaml'" in message


def test_reject_foreach_other_than_work_item(repo: Path, user_dir: Path) -> None:
    path = write_project(
        repo,
        "bad.yaml",
        """
        id: hotfix
        steps:
          - id: execute
            type: blueprint_ref
            ref: build-review
            foreach: stream
        """,
    )

    message = load_error(repo, user_dir)

    assert_names(message, path, "hotfix", "execute")
    assert "'stream'" in message


def test_reject_ref_nesting_too_deep(repo: Path, user_dir: Path) -> None:
    paths = {}
    for blueprint_id, ref in (("one", "two"), ("two", "three"), ("three", "four")):
        paths[blueprint_id] = write_project(
            repo,
            f"{blueprint_id}.yaml",
            f"""
            id: {blueprint_id}
            steps:
              - id: call_{ref}
                type: blueprint_ref
                ref: {ref}
            """,
        )
    write_project(
        repo,
        "four.yaml",
        """
        id: four
        steps:
          - id: work
            type: human
        """,
    )

    message = load_error(repo, user_dir)

    assert_names(message, paths["one"], "one", "call_two")
    assert "one -> two -> three -> four is 3 levels deep" in message
    assert "blueprint 'two'" not in message


def test_ref_nesting_two_levels_allowed(repo: Path, user_dir: Path) -> None:
    write_project(
        repo,
        "outer.yaml",
        """
        id: outer
        steps:
          - id: execute
            type: blueprint_ref
            ref: standard
        """,
    )

    blueprints = load_blueprints(repo, user_dir=user_dir)

    assert blueprints["outer"].refs() == ["standard"]


def test_reject_ref_cycle(repo: Path, user_dir: Path) -> None:
    path = write_project(
        repo,
        "a.yaml",
        """
        id: ping
        steps:
          - id: call_pong
            type: blueprint_ref
            ref: pong
        """,
    )
    write_project(
        repo,
        "b.yaml",
        """
        id: pong
        steps:
          - id: call_ping
            type: blueprint_ref
            ref: ping
        """,
    )

    message = load_error(repo, user_dir)

    assert_names(message, path, "ping", "call_pong")
    assert "cycle ping -> pong -> ping" in message
    assert message.count("blueprint_ref cycle") == 1


def test_reject_self_ref(repo: Path, user_dir: Path) -> None:
    path = write_project(
        repo,
        "a.yaml",
        """
        id: ouroboros
        steps:
          - id: again
            type: blueprint_ref
            ref: ouroboros
        """,
    )

    message = load_error(repo, user_dir)

    assert_names(message, path, "ouroboros", "again")
    assert "cycle ouroboros -> ouroboros" in message


def test_reject_no_reachable_end(repo: Path, user_dir: Path) -> None:
    path = write_project(
        repo,
        "bad.yaml",
        """
        id: hotfix
        steps:
          - id: build
            type: agent
            role: builder
            next: lint
          - id: lint
            type: deterministic
            action: run_quality_gates
            next: review
          - id: review
            type: agent
            role: reviewer
            next: lint
        """,
    )

    message = load_error(repo, user_dir)

    assert_names(message, path, "hotfix", "review")
    assert "no reachable end" in message
    assert "lint -> review -> lint" in message


def test_reject_loop_off_entry_path(repo: Path, user_dir: Path) -> None:
    path = write_project(
        repo,
        "bad.yaml",
        """
        id: hotfix
        steps:
          - id: build
            type: agent
            role: builder
          - id: spin
            type: human
            next: spin
        """,
    )

    message = load_error(repo, user_dir)

    assert_names(message, path, "hotfix", "spin")
    assert "no reachable end" in message


def test_reject_on_fail_on_human_step(repo: Path, user_dir: Path) -> None:
    path = write_project(
        repo,
        "bad.yaml",
        """
        id: hotfix
        steps:
          - id: build
            type: agent
            role: builder
            next: approve
          - id: approve
            type: human
            on_fail: build
        """,
    )

    message = load_error(repo, user_dir)

    assert_names(message, path, "hotfix", "approve")
    assert "'on_fail' does not apply to a 'human' step" in message


def test_reject_on_fail_on_ref_step(repo: Path, user_dir: Path) -> None:
    path = write_project(
        repo,
        "bad.yaml",
        """
        id: hotfix
        steps:
          - id: execute
            type: blueprint_ref
            ref: build-review
            on_fail: execute
        """,
    )

    message = load_error(repo, user_dir)

    assert_names(message, path, "hotfix", "execute")
    assert "'on_fail' does not apply to a 'blueprint_ref' step" in message


def test_reject_key_of_other_type(repo: Path, user_dir: Path) -> None:
    path = write_project(
        repo,
        "bad.yaml",
        """
        id: hotfix
        steps:
          - id: lint
            type: deterministic
            action: run_quality_gates
            role: builder
        """,
    )

    message = load_error(repo, user_dir)

    assert_names(message, path, "hotfix", "lint")
    assert "'role' does not apply to a 'deterministic' step" in message


def test_reject_unknown_step_key(repo: Path, user_dir: Path) -> None:
    path = write_project(
        repo,
        "bad.yaml",
        """
        id: hotfix
        steps:
          - id: fix
            type: agent
            role: builder
            comit: none
        """,
    )

    message = load_error(repo, user_dir)

    assert_names(message, path, "hotfix", "fix")
    assert "unknown key 'comit'" in message
    assert f"{path}:6:" in message


def test_reject_unknown_blueprint_key(repo: Path, user_dir: Path) -> None:
    path = write_project(
        repo,
        "bad.yaml",
        """
        id: hotfix
        trigger: manual
        steps:
          - id: fix
            type: human
        """,
    )

    message = load_error(repo, user_dir)

    assert f"{path}:2:" in message
    assert "blueprint 'hotfix'" in message
    assert "unknown key 'trigger'" in message


def test_reject_source_key(repo: Path, user_dir: Path) -> None:
    path = write_project(
        repo,
        "bad.yaml",
        """
        id: hotfix
        source: elsewhere.yaml
        steps:
          - id: fix
            type: human
        """,
    )

    message = load_error(repo, user_dir)

    assert f"{path}:2:" in message
    assert "unknown key 'source'" in message


def test_reject_invalid_retry_values(repo: Path, user_dir: Path) -> None:
    path = write_project(
        repo,
        "bad.yaml",
        """
        id: hotfix
        retry:
          profile: relaxed
        steps:
          - id: lint
            type: deterministic
            action: run_quality_gates
            retry:
              max_attempts: 0
              on_exhausted: panic
        """,
    )

    message = load_error(repo, user_dir)

    assert "invalid retry profile 'relaxed'" in message
    assert "invalid on_exhausted 'panic'" in message
    assert "key 'retry.max_attempts'" in message
    assert_names(message, path, "hotfix", "lint")


def test_reject_invalid_yaml_with_line(repo: Path, user_dir: Path) -> None:
    path = write_project(
        repo,
        "bad.yaml",
        """
        id: hotfix
        steps:
          - id: fix
            type: [agent
        """,
    )

    message = load_error(repo, user_dir)

    assert re.search(rf"^{re.escape(str(path))}:5: invalid YAML", message)


def test_reject_non_mapping_with_line(repo: Path, user_dir: Path) -> None:
    path = write_project(repo, "bad.yaml", "# a list\n- id: fix\n  type: human\n")

    message = load_error(repo, user_dir)

    assert message.startswith(f"{path}:2: expected a mapping")
    assert "got a list" in message


def test_reject_empty_file(repo: Path, user_dir: Path) -> None:
    path = write_project(repo, "bad.yaml", "# nothing yet\n")

    message = load_error(repo, user_dir)

    assert message.startswith(f"{path}:1: the file is empty")


def test_reject_duplicate_yaml_keys(repo: Path, user_dir: Path) -> None:
    path = write_project(
        repo,
        "bad.yaml",
        """
        id: hotfix
        steps:
          - id: fix
            type: human
            type: agent
        """,
    )

    message = load_error(repo, user_dir)

    assert message.startswith(f"{path}:5: duplicate key 'type'")


def test_reject_blueprint_dir_that_is_file(repo: Path, user_dir: Path) -> None:
    (repo / ".tack").mkdir()
    (repo / ".tack" / "blueprints").write_text("id: x\n", encoding="utf-8")

    message = load_error(repo, user_dir)

    assert "expected a directory" in message


def test_step_model_rejects_foreign_key() -> None:
    with pytest.raises(ValidationError) as caught:
        Step(id="approve", type="human", role="builder")

    assert "'role' does not apply to a 'human' step" in str(caught.value)


def test_step_type_defaults_filled() -> None:
    agent = Step(id="build", type="agent", role="builder")
    ref = Step(id="execute", type="blueprint_ref", ref="build-review")
    human = Step(id="approve", type="human")

    assert agent.commit == "auto"
    assert ref.on_work_item_failure == "escalate"
    assert human.commit is None
    assert human.on_work_item_failure is None


def test_blueprint_step_lookup() -> None:
    blueprint = Blueprint(
        id="hotfix",
        steps=[
            Step(id="fix", type="agent", role="builder", next="ok"),
            Step(id="ok", type="human"),
        ],
    )

    assert blueprint.entry().id == "fix"
    assert blueprint.step("ok").type == "human"
    with pytest.raises(KeyError, match="no step 'nope'"):
        blueprint.step("nope")


def make_blueprint(
    retry: dict[str, object], step_retry: dict[str, object]
) -> Blueprint:
    lint: dict[str, object] = {
        "id": "lint",
        "type": "deterministic",
        "action": "run_quality_gates",
    }
    if step_retry:
        lint["retry"] = step_retry
    return Blueprint.model_validate({"id": "bp", "retry": retry, "steps": [lint]})


def test_max_attempts_step_wins() -> None:
    blueprint = make_blueprint(
        {"profile": "strict", "default_max_attempts": 5}, {"max_attempts": 9}
    )

    assert blueprint.max_attempts(blueprint.step("lint")) == 9
    assert blueprint.max_attempts() == 5


def test_max_attempts_blueprint_default_next() -> None:
    blueprint = make_blueprint(
        {"profile": "strict", "default_max_attempts": 5}, {"on_exhausted": "fail"}
    )

    assert blueprint.max_attempts(blueprint.step("lint")) == 5


def test_max_attempts_profile_last() -> None:
    strict = make_blueprint({"profile": "strict"}, {})
    self_healing = make_blueprint({"profile": "self_healing"}, {})
    unset = make_blueprint({}, {})

    assert strict.max_attempts(strict.step("lint")) == RETRY_PROFILES["strict"]
    assert self_healing.max_attempts() == RETRY_PROFILES["self_healing"]
    assert unset.max_attempts() == RETRY_PROFILES["balanced"]


def test_on_exhausted_precedence() -> None:
    both = make_blueprint(
        {"default_on_exhausted": "escalate"}, {"on_exhausted": "fail"}
    )
    blueprint_only = make_blueprint({"default_on_exhausted": "escalate"}, {})
    neither = make_blueprint({}, {"max_attempts": 2})

    assert both.on_exhausted(both.step("lint")) == "fail"
    assert both.on_exhausted() == "escalate"
    assert blueprint_only.on_exhausted(blueprint_only.step("lint")) == "escalate"
    assert neither.on_exhausted(neither.step("lint")) == "ask_human"


def test_max_fix_iterations_precedence() -> None:
    blueprint = Blueprint.model_validate(
        {
            "id": "bp",
            "steps": [
                {"id": "build", "type": "agent", "role": "builder", "next": "lint"},
                {
                    "id": "lint",
                    "type": "deterministic",
                    "action": "run_quality_gates",
                    "on_fail": "build",
                    "max_fix_iterations": 5,
                    "next": "review",
                },
                {
                    "id": "review",
                    "type": "agent",
                    "role": "reviewer",
                    "on_fail": "build",
                },
            ],
        }
    )

    assert blueprint.max_fix_iterations(blueprint.step("lint")) == 5
    assert blueprint.max_fix_iterations(blueprint.step("review")) == 3
    assert blueprint.max_fix_iterations(blueprint.step("build")) == 0


def test_docs_review_lite_example_loads(repo: Path, user_dir: Path) -> None:
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("## Example: review lite", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    write_project(repo, "review-lite.yaml", example)

    build_review = load_blueprints(repo, user_dir=user_dir)["build-review"]

    assert build_review.step_ids() == ["build", "lint", "merge_ready"]
    assert build_review.max_fix_iterations(build_review.step("lint")) == 5
    assert build_review.max_attempts(build_review.step("lint")) == 3


@pytest.mark.parametrize("name", ["standard.yaml", "build-review.yaml"])
def test_docs_show_builtin_files(name: str) -> None:
    shipped = Path(__file__).resolve().parent.parent / "tack_action" / "blueprints"
    text = (shipped / "builtin" / name).read_text(encoding="utf-8")

    docs = DOCS.read_text(encoding="utf-8")

    assert f"```yaml\n{text}```" in docs


def test_reject_missing_id_and_steps(repo: Path, user_dir: Path) -> None:
    path = write_project(repo, "bad.yaml", "name: Nameless\nsteps: []\n")

    message = load_error(repo, user_dir)

    assert f"{path}:1: blueprint without an id: missing required key 'id'" in message
    assert "'steps' is empty" in message
