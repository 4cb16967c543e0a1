"""Building sample repositories and scripts for pipeline tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tack_action.demo import AGENT_PATH, SAMPLE_FILES, demo_config, write_repo


def plan_text(streams: list[dict]) -> str:
    """Return a planner answer holding ``streams`` as a fenced YAML block."""
    import yaml

    block = yaml.safe_dump({"streams": streams}, sort_keys=False)
    return f"Plan:\n\n```yaml\n{block}```\n"


def make_repo(
    root: Path,
    script: dict,
    *,
    files: dict[str, str] | None = None,
    config: dict | None = None,
    blueprints: dict[str, str] | None = None,
) -> Path:
    """Create a sample repository whose agent follows ``script``."""
    root.mkdir(parents=True, exist_ok=True)
    script_path = root / "script.json"
    script_path.write_text(json.dumps(script))
    settings = demo_config(root, script_path)
    settings["agents"]["stagger_delay_ms"] = 0
    for key, value in (config or {}).items():
        if isinstance(value, dict):
            settings.setdefault(key, {}).update(value)
        else:
            settings[key] = value
    contents = dict(SAMPLE_FILES if files is None else files)
    for name, text in (blueprints or {}).items():
        contents[f".tack/blueprints/{name}"] = text
    return write_repo(root, contents, settings)


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def cli_command(state_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "tack_action", "--state-dir", str(state_dir), *args]


__all__ = ["AGENT_PATH", "cli_command", "git", "make_repo", "plan_text"]
