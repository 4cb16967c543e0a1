"""The Action's inputs and the runner's environment, read once at start-up.

``action.yml`` passes every input through ``env:`` as ``TACK_INPUT_<NAME>``
(upper case, hyphens as underscores), so no input is ever interpolated into
script text. The runner itself sets the ``GITHUB_*`` variables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from .trust import parse_bot_list

INPUT_PREFIX = "TACK_INPUT_"

# Inputs whose values are secrets: masked in the log and removed from the
# process environment once read.
SECRET_INPUTS = ("GITHUB_TOKEN", "DAYTONA_API_KEY", "ANTHROPIC_API_KEY")

_WHERE = "action input"


@dataclass
class Settings:
    """Everything the Action reads from its environment."""

    github_token: str
    repository: str
    event_name: str
    event_path: str
    api_url: str = "https://api.github.com"
    server_url: str = "https://github.com"
    run_id: str = ""
    workspace: Path = field(default_factory=Path.cwd)
    output_path: str | None = None
    summary_path: str | None = None
    daytona_api_key: str = ""
    anthropic_api_key: str = ""
    relay_url: str = ""
    trigger_label: str = "tack"
    approval: str = "required"
    base_branch: str = ""
    config_path: str = "."
    max_minutes: float = 330.0
    draft_pr: bool = False
    allowed_bots: set[str] = field(default_factory=set)
    comment_interval_s: float = 10.0
    # Minimum seconds between two GitHub writes (PyGithub's throttle).
    write_interval_s: float = 1.0
    # Base of the exponential backoff between retried GitHub requests.
    retry_backoff_s: float = 1.0

    @property
    def run_url(self) -> str:
        if not self.run_id:
            return ""
        return f"{self.server_url}/{self.repository}/actions/runs/{self.run_id}"

    @property
    def config_dir(self) -> Path:
        return (self.workspace / self.config_path).resolve()

    def secrets(self) -> list[str]:
        return [
            s
            for s in (self.github_token, self.daytona_api_key, self.anthropic_api_key)
            if s
        ]


def read_input(env: Mapping[str, str], name: str, default: str = "") -> str:
    """Return the input ``name`` (for example ``max-minutes``), stripped."""
    key = INPUT_PREFIX + name.upper().replace("-", "_")
    value = env.get(key, "").strip()
    return value or default


def _flag(env: Mapping[str, str], name: str, default: str) -> bool:
    value = read_input(env, name, default).lower()
    if value in ("true", "yes", "1", "on"):
        return True
    if value in ("false", "no", "0", "off"):
        return False
    raise ConfigError(_WHERE, name, f"{value!r} is not a boolean; use true or false")


def _number(
    env: Mapping[str, str], name: str, default: str, *, allow_zero: bool = False
) -> float:
    value = read_input(env, name, default)
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if number < 0 or (number == 0 and not allow_zero):
        raise ConfigError(_WHERE, name, f"{value!r} is not a positive number")
    return number


def read_settings(env: Mapping[str, str]) -> Settings:
    """Read and check the inputs and the runner's variables."""
    token = read_input(env, "github-token") or env.get("GITHUB_TOKEN", "")
    if not token:
        raise ConfigError(
            _WHERE,
            "github-token",
            "no token given; pass github-token: ${{ secrets.GITHUB_TOKEN }} or a PAT",
        )
    repository = env.get("GITHUB_REPOSITORY", "")
    if repository.count("/") != 1:
        raise ConfigError(
            "environment",
            "GITHUB_REPOSITORY",
            f"{repository!r} is not owner/name; run tack-action inside GitHub Actions",
        )
    approval = read_input(env, "approval", "required").lower()
    if approval not in ("required", "auto"):
        raise ConfigError(_WHERE, "approval", f"{approval!r} is not required or auto")
    config_path = read_input(env, "config-path", ".")
    if Path(config_path).is_absolute() or ".." in Path(config_path).parts:
        raise ConfigError(
            _WHERE,
            "config-path",
            f"{config_path!r} must be a relative path inside the workspace",
        )

    return Settings(
        github_token=token,
        repository=repository,
        event_name=env.get("GITHUB_EVENT_NAME", ""),
        event_path=env.get("GITHUB_EVENT_PATH", ""),
        api_url=env.get("GITHUB_API_URL") or "https://api.github.com",
        server_url=env.get("GITHUB_SERVER_URL") or "https://github.com",
        run_id=env.get("GITHUB_RUN_ID", ""),
        workspace=Path(env.get("GITHUB_WORKSPACE") or Path.cwd()),
        output_path=env.get("GITHUB_OUTPUT") or None,
        summary_path=env.get("GITHUB_STEP_SUMMARY") or None,
        daytona_api_key=read_input(env, "daytona-api-key"),
        anthropic_api_key=read_input(env, "anthropic-api-key"),
        relay_url=read_input(env, "relay-url"),
        trigger_label=read_input(env, "trigger-label", "tack"),
        approval=approval,
        base_branch=read_input(env, "base-branch"),
        config_path=config_path,
        max_minutes=_number(env, "max-minutes", "330"),
        draft_pr=_flag(env, "draft-pr", "false"),
        allowed_bots=parse_bot_list(read_input(env, "allowed-bots")),
        comment_interval_s=_number(env, "comment-interval", "10", allow_zero=True),
        write_interval_s=float(env.get("TACK_GITHUB_WRITE_INTERVAL") or 1.0),
        retry_backoff_s=float(env.get("TACK_GITHUB_RETRY_BACKOFF") or 1.0),
    )
