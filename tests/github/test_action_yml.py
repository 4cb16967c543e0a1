"""The composite action's metadata matches what ``tack-action run`` reads."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tack_action.github.settings import INPUT_PREFIX

ROOT = Path(__file__).resolve().parents[2]


def _action() -> dict:
    return yaml.safe_load((ROOT / "action.yml").read_text())


def _run_step() -> dict:
    return next(s for s in _action()["runs"]["steps"] if s.get("id") == "tack")


def test_every_input_documented_with_default() -> None:
    inputs = _action()["inputs"]

    for name, spec in inputs.items():
        assert spec.get("description"), name
        assert "default" in spec, name


def test_inputs_reach_process_through_env() -> None:
    inputs = set(_action()["inputs"]) - {"python-version"}
    env = _run_step()["env"]

    expected = {INPUT_PREFIX + n.upper().replace("-", "_") for n in inputs}
    assert set(env) == expected
    for name in inputs:
        key = INPUT_PREFIX + name.upper().replace("-", "_")
        assert env[key] == f"${{{{ inputs.{name} }}}}"


def test_run_scripts_hold_no_expressions() -> None:
    steps = _action()["runs"]["steps"]

    scripts = [s["run"] for s in steps if "run" in s]

    assert scripts
    assert all("${{" not in script for script in scripts)


def test_outputs_come_from_run_step() -> None:
    outputs = _action()["outputs"]

    assert set(outputs) == {
        "objective-id",
        "status",
        "pull-request-url",
        "pull-request-number",
        "branch",
    }
    for name, spec in outputs.items():
        assert spec["value"] == f"${{{{ steps.tack.outputs.{name} }}}}"


def test_third_party_actions_pinned_by_sha() -> None:
    files = [ROOT / "action.yml", *sorted((ROOT / "examples/workflows").glob("*.yml"))]

    uses = [
        line.split("uses:", 1)[1].strip()
        for path in files
        for line in path.read_text().splitlines()
        if "uses:" in line and "uses: ./" not in line
    ]

    assert uses
    for ref in uses:
        assert re.match(r"[\w.-]+/[\w.-]+@[0-9a-f]{40} # \S", ref), ref


def test_examples_use_one_group_per_issue() -> None:
    for path in sorted((ROOT / "examples/workflows").glob("*.yml")):
        workflow = yaml.safe_load(path.read_text())

        assert workflow["concurrency"]["cancel-in-progress"] is False, path.name
        assert "tack-" in workflow["concurrency"]["group"], path.name
