"""Tests for layered config loading, its error messages and its helpers."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tack_action.config import (
    TackConfig,
    agent_command,
    load_config,
    merge_mappings,
    project_config_path,
    timeout_for,
    user_config_path,
    worktree_root,
)
from tack_action.errors import ConfigError


def write_project(repo: Path, text: str) -> Path:
    path = repo / ".tack" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def write_user(home: Path, text: str) -> Path:
    path = home / "user-config.yaml"
    path.write_text(text)
    return path


def load_project_error(repo: Path, text: str) -> ConfigError:
    write_project(repo, text)
    with pytest.raises(ConfigError) as caught:
        load_config(repo)
    return caught.value


def test_load_config_defaults_without_files(tmp_path: Path) -> None:
    config = load_config(tmp_path)

    assert config == TackConfig()
    assert config.sandbox.provider == "local"
    assert config.agents.max_concurrent == 8
    assert config.agents.stagger_delay_ms == 500
    assert config.quality_gates == []


def test_load_config_empty_file_uses_defaults(tmp_path: Path) -> None:
    write_project(tmp_path, "")

    config = load_config(tmp_path)

    assert config == TackConfig()


def test_load_config_project_overrides_user(tmp_path: Path) -> None:
    user = write_user(
        tmp_path,
        "agents:\n  max_concurrent: 3\n  runtime: pi\ngit:\n  author_name: U\n",
    )
    write_project(tmp_path, "agents:\n  max_concurrent: 6\n")

    config = load_config(tmp_path, user_path=user)

    assert config.agents.max_concurrent == 6
    assert config.agents.runtime == "pi"
    assert config.git.author_name == "U"


def test_load_config_replaces_lists(tmp_path: Path) -> None:
    user = write_user(tmp_path, "quality_gates: [make lint, make test, make docs]\n")
    write_project(tmp_path, "quality_gates: [pytest]\n")

    config = load_config(tmp_path, user_path=user)

    assert config.quality_gates == ["pytest"]


def test_load_config_merges_role_timeouts(tmp_path: Path) -> None:
    user = write_user(
        tmp_path, "agents:\n  timeouts:\n    builder: {max_duration_minutes: 90}\n"
    )
    write_project(tmp_path, "agents:\n  timeouts:\n    builder: {idle_minutes: 4}\n")

    config = load_config(tmp_path, user_path=user)

    assert config.agents.timeouts["builder"].max_duration_minutes == 90
    assert config.agents.timeouts["builder"].idle_minutes == 4


def test_load_config_reads_home_user_file(tmp_path: Path) -> None:
    home_config = Path.home() / ".config" / "tack" / "config.yaml"
    home_config.parent.mkdir(parents=True)
    home_config.write_text("blueprint: build-review\n")

    config = load_config(tmp_path)

    assert config.blueprint == "build-review"


def test_load_config_env_user_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = write_user(tmp_path, "daemon:\n  base_branch: trunk\n")
    monkeypatch.setenv("TACK_USER_CONFIG_PATH", str(user))

    config = load_config(tmp_path)

    assert config.daemon.base_branch == "trunk"


def test_load_config_argument_beats_env_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from_env = tmp_path / "env.yaml"
    from_env.write_text("daemon:\n  base_branch: from-env\n")
    from_argument = tmp_path / "arg.yaml"
    from_argument.write_text("daemon:\n  base_branch: from-argument\n")
    monkeypatch.setenv("TACK_USER_CONFIG_PATH", str(from_env))

    config = load_config(tmp_path, user_path=from_argument)

    assert config.daemon.base_branch == "from-argument"


def test_user_config_path_default_and_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = user_config_path()
    monkeypatch.setenv("TACK_USER_CONFIG_PATH", str(tmp_path / "mine.yaml"))
    overridden = user_config_path()

    assert default == Path.home() / ".config" / "tack" / "config.yaml"
    assert overridden == tmp_path / "mine.yaml"


def test_project_config_path_under_repo(tmp_path: Path) -> None:
    assert project_config_path(tmp_path) == tmp_path / ".tack" / "config.yaml"


def test_config_error_unknown_top_level_key(tmp_path: Path) -> None:
    error = load_project_error(tmp_path, "quality_gate: [pytest]\n")

    assert error.path == str(project_config_path(tmp_path))
    assert error.key == "quality_gate"
    assert str(project_config_path(tmp_path)) in str(error)
    assert "unknown key 'quality_gate'" in str(error)
    assert "quality_gates" in error.problem
    assert "sandbox" in error.problem


def test_config_error_unknown_nested_key(tmp_path: Path) -> None:
    error = load_project_error(tmp_path, "sandbox:\n  default_resources:\n    gpu: 1\n")

    assert error.key == "sandbox.default_resources.gpu"
    assert "Allowed keys here: cpu, memory, disk." in error.problem
    assert str(project_config_path(tmp_path)) in str(error)


def test_config_error_deprecated_key_hint(tmp_path: Path) -> None:
    error = load_project_error(tmp_path, "sandbox:\n  post_create: [make]\n")

    assert error.key == "sandbox.post_create"
    assert "project_setup.commands" in error.problem


def test_config_error_wrong_type_nested(tmp_path: Path) -> None:
    text = "agents:\n  timeouts:\n    builder:\n      idle_minutes: eight\n"

    error = load_project_error(tmp_path, text)

    assert error.key == "agents.timeouts.builder.idle_minutes"
    assert error.problem == "expected a number, got 'eight'."
    assert str(project_config_path(tmp_path)) in str(error)


def test_config_error_integer_expected(tmp_path: Path) -> None:
    error = load_project_error(tmp_path, "agents:\n  max_concurrent: eight\n")

    assert error.key == "agents.max_concurrent"
    assert error.problem == "expected an integer, got 'eight'."


def test_config_error_quoted_number_rejected(tmp_path: Path) -> None:
    error = load_project_error(tmp_path, "sandbox:\n  auto_stop_interval: '30'\n")

    assert error.key == "sandbox.auto_stop_interval"
    assert error.problem == "expected an integer, got '30'."


def test_config_error_list_item_key(tmp_path: Path) -> None:
    error = load_project_error(tmp_path, "quality_gates:\n  - pytest\n  - 3\n")

    assert error.key == "quality_gates[1]"
    assert error.problem == "expected a string, got 3."


def test_config_error_choice_lists_values(tmp_path: Path) -> None:
    error = load_project_error(tmp_path, "sandbox:\n  provider: k8s\n")

    assert error.key == "sandbox.provider"
    assert "'local'" in error.problem
    assert "'daytona'" in error.problem
    assert "got 'k8s'" in error.problem


def test_config_error_command_union_type(tmp_path: Path) -> None:
    error = load_project_error(tmp_path, "agents:\n  command: 5\n")

    assert error.key == "agents.command"
    assert error.problem == "expected a string or a mapping, got 5."


def test_config_error_command_mapping_value(tmp_path: Path) -> None:
    error = load_project_error(tmp_path, "agents:\n  command:\n    planner: [a]\n")

    assert error.key == "agents.command.planner"
    assert error.problem == "expected a string, got a list."


def test_config_error_null_section(tmp_path: Path) -> None:
    error = load_project_error(tmp_path, "agents:\n")

    assert error.key == "agents"
    assert error.problem == "expected a mapping, got null."


def test_config_error_lists_other_keys(tmp_path: Path) -> None:
    error = load_project_error(tmp_path, "blueprint: 1\nplanning: {max_streams: x}\n")

    assert error.key == "blueprint"
    assert "Other invalid keys: planning.max_streams." in error.problem


def test_config_error_invalid_yaml_line(tmp_path: Path) -> None:
    text = "agents:\n  runtime: pi\n  command: [unclosed\n"

    error = load_project_error(tmp_path, text)

    assert error.path == str(project_config_path(tmp_path))
    assert error.key == ""
    assert "invalid YAML at line 4" in error.problem


def test_config_error_yaml_tab_indent(tmp_path: Path) -> None:
    error = load_project_error(tmp_path, "agents:\n\truntime: pi\n")

    assert "invalid YAML at line 2, column 1" in error.problem


def test_config_error_duplicate_key(tmp_path: Path) -> None:
    error = load_project_error(tmp_path, "blueprint: a\ngit: {}\nblueprint: b\n")

    assert "line 3" in error.problem
    assert "duplicate key 'blueprint'" in error.problem


@pytest.mark.parametrize(
    ("text", "given"),
    [("- pytest\n", "a list"), ("just words\n", "a string"), ("42\n", "an integer")],
)
def test_config_error_non_mapping_top(tmp_path: Path, text: str, given: str) -> None:
    error = load_project_error(tmp_path, text)

    assert error.key == ""
    assert "top level must be a mapping" in error.problem
    assert f"got {given}." in error.problem


def test_config_error_unreadable_path(tmp_path: Path) -> None:
    project_config_path(tmp_path).mkdir(parents=True)

    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)

    assert caught.value.path == str(project_config_path(tmp_path))
    assert "failed to read the file" in caught.value.problem


def test_config_error_not_utf8(tmp_path: Path) -> None:
    path = project_config_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"blueprint: caf\xe9\n")

    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)

    assert "not valid UTF-8 (byte offset 14)" in caught.value.problem


def test_config_error_names_user_file(tmp_path: Path) -> None:
    user = write_user(tmp_path, "agents:\n  stagger_delay_ms: soon\n")
    write_project(tmp_path, "blueprint: standard\n")

    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path, user_path=user)

    assert caught.value.path == str(user)
    assert caught.value.key == "agents.stagger_delay_ms"


def test_config_error_hides_secret_value(tmp_path: Path) -> None:
    error = load_project_error(tmp_path, "sandbox:\n  daytona:\n    api_key: 73195\n")

    assert error.key == "sandbox.daytona.api_key"
    assert error.problem == "expected a string, got an integer."
    assert "73195" not in str(error)


@pytest.mark.parametrize("value", [0, -3])
def test_max_concurrent_non_positive_becomes_five(tmp_path: Path, value: int) -> None:
    write_project(tmp_path, f"agents:\n  max_concurrent: {value}\n")

    config = load_config(tmp_path)

    assert config.agents.max_concurrent == 5


@pytest.mark.parametrize("spelling", ["yes", "no", "on", "Off", "Y", "n"])
def test_config_error_yaml11_boolean_rejected(tmp_path: Path, spelling: str) -> None:
    error = load_project_error(tmp_path, f"merge:\n  auto_resolve: {spelling}\n")

    assert error.key == "merge.auto_resolve"
    assert error.problem.startswith(f"expected true or false, got {spelling!r}.")
    assert "YAML 1.1 spellings" in error.problem


@pytest.mark.parametrize(("spelling", "expected"), [("true", True), ("FALSE", False)])
def test_load_config_reads_core_booleans(
    tmp_path: Path, spelling: str, expected: bool
) -> None:
    write_project(tmp_path, f"merge:\n  auto_resolve: {spelling}\n")

    config = load_config(tmp_path)

    assert config.merge.auto_resolve is expected


def test_load_config_keeps_yes_as_string(tmp_path: Path) -> None:
    write_project(tmp_path, "git:\n  author_name: yes\n")

    config = load_config(tmp_path)

    assert config.git.author_name == "yes"


def test_config_error_unknown_timeout_role(tmp_path: Path) -> None:
    text = "agents:\n  timeouts:\n    buidler:\n      max_duration_minutes: 1\n"

    error = load_project_error(tmp_path, text)

    assert error.key == "agents.timeouts.buidler"
    assert error.problem.startswith("unknown role 'buidler'. Known roles: default,")
    assert "pr-writer" in error.problem


def test_config_error_unknown_command_role(tmp_path: Path) -> None:
    error = load_project_error(tmp_path, "agents:\n  command:\n    bilder: x\n")

    assert error.key == "agents.command.bilder"
    assert error.problem.startswith("unknown role 'bilder'. Known roles: default,")


def test_load_config_accepts_every_known_role(tmp_path: Path) -> None:
    roles = ["default", "planner", "builder", "reviewer"]
    roles += ["scout", "lead", "merger", "pr-writer"]
    commands = "".join(f"    {role}: run-{role}\n" for role in roles)
    timeouts = "".join(f"    {role}: {{idle_minutes: 2}}\n" for role in roles)
    text = f"agents:\n  command:\n{commands}  timeouts:\n{timeouts}"
    write_project(tmp_path, text)

    config = load_config(tmp_path)

    assert agent_command(config, "pr-writer") == "run-pr-writer"
    assert sorted(config.agents.timeouts) == sorted(roles)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("quality_gates: [pytest, '   ']\n", "quality_gates[1]"),
        ("quality_gates: ['']\n", "quality_gates[0]"),
        ("project_setup:\n  commands: ['']\n", "project_setup.commands[0]"),
        ("project_setup:\n  verify: [make, ' ']\n", "project_setup.verify[1]"),
    ],
)
def test_config_error_empty_command(tmp_path: Path, text: str, key: str) -> None:
    error = load_project_error(tmp_path, text)

    assert error.key == key
    assert error.problem.startswith("the command is empty.")


@pytest.mark.parametrize("value", [0, -1])
def test_config_error_max_streams_below_one(tmp_path: Path, value: int) -> None:
    error = load_project_error(tmp_path, f"planning:\n  max_streams: {value}\n")

    assert error.key == "planning.max_streams"
    assert error.problem == f"expected a value of at least 1, got {value}."


def test_stagger_delay_negative_rejected(tmp_path: Path) -> None:
    error = load_project_error(tmp_path, "agents:\n  stagger_delay_ms: -10\n")

    assert error.key == "agents.stagger_delay_ms"
    assert error.problem == "expected a value of at least 0, got -10."


def test_role_timeout_zero_rejected(tmp_path: Path) -> None:
    text = "agents:\n  timeouts:\n    default:\n      max_duration_minutes: 0\n"

    error = load_project_error(tmp_path, text)

    assert error.key == "agents.timeouts.default.max_duration_minutes"
    assert error.problem == "expected a value greater than 0, got 0."


@pytest.mark.parametrize(
    ("role", "max_minutes"),
    [("default", 30), ("planner", 20), ("builder", 45), ("reviewer", 15)],
)
def test_timeout_for_builtin_defaults(role: str, max_minutes: int) -> None:
    max_seconds, idle_seconds = timeout_for(TackConfig(), role)

    assert max_seconds == max_minutes * 60
    assert idle_seconds == 10 * 60


def test_timeout_for_unknown_role_uses_default() -> None:
    assert timeout_for(TackConfig(), "pr-writer") == (30 * 60, 10 * 60)


def test_timeout_for_inherits_from_default(tmp_path: Path) -> None:
    write_project(
        tmp_path,
        "agents:\n  timeouts:\n"
        "    default: {max_duration_minutes: 60, idle_minutes: 2}\n"
        "    builder: {max_duration_minutes: 120}\n",
    )
    config = load_config(tmp_path)

    builder = timeout_for(config, "builder")
    planner = timeout_for(config, "planner")
    fallback = timeout_for(config, "pr-writer")

    assert builder == (120 * 60, 2 * 60)
    assert planner == (60 * 60, 2 * 60)
    assert fallback == (60 * 60, 2 * 60)


def test_timeout_for_role_without_default(tmp_path: Path) -> None:
    write_project(tmp_path, "agents:\n  timeouts:\n    reviewer: {idle_minutes: 0.5}\n")
    config = load_config(tmp_path)

    reviewer = timeout_for(config, "reviewer")

    assert reviewer == (15 * 60, 30)


def test_worktree_root_default_tempdir() -> None:
    root = worktree_root(TackConfig())

    assert root == Path(tempfile.gettempdir()) / "tack-worktrees"


def test_worktree_root_expands_home(tmp_path: Path) -> None:
    config = TackConfig.model_validate({"sandbox": {"worktree_dir": "~/trees"}})

    assert worktree_root(config) == Path.home() / "trees"


def test_worktree_root_expands_env_vars(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TACK_TREES", str(tmp_path))
    config = TackConfig.model_validate({"sandbox": {"worktree_dir": "$TACK_TREES/wt"}})

    root = worktree_root(config)

    assert root == tmp_path / "wt"
    assert os.path.isabs(root)


def test_agent_command_string_every_role() -> None:
    config = TackConfig.model_validate({"agents": {"command": "./agent.sh"}})

    assert agent_command(config, "planner") == "./agent.sh"
    assert agent_command(config, "reviewer") == "./agent.sh"


def test_agent_command_mapping_by_role() -> None:
    commands = {"planner": "./plan.sh", "default": "./build.sh"}
    config = TackConfig.model_validate({"agents": {"command": commands}})

    assert agent_command(config, "planner") == "./plan.sh"
    assert agent_command(config, "builder") == "./build.sh"


def test_agent_command_mapping_without_default() -> None:
    config = TackConfig.model_validate({"agents": {"command": {"planner": "./p"}}})

    assert agent_command(config, "builder") is None


def test_agent_command_unset_or_empty() -> None:
    empty = TackConfig.model_validate({"agents": {"command": ""}})

    assert agent_command(TackConfig(), "builder") is None
    assert agent_command(empty, "builder") is None


def test_merge_mappings_nested_and_replace() -> None:
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 1}
    override = {"a": {"y": [3]}, "b": {"c": 2}}

    merged = merge_mappings(base, override)

    assert merged == {"a": {"x": 1, "y": [3]}, "b": {"c": 2}}
    assert base == {"a": {"x": 1, "y": [1, 2]}, "b": 1}
