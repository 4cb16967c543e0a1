"""Exceptions raised by tack-action.

Every class here is something a caller may want to handle on its own. The
command line turns any of them into one message and exit status 1.

    TackError
    ├── ConfigError            a config, credentials or rules file is invalid
    ├── BlueprintError         a blueprint is invalid or cannot be resolved
    ├── PlanError              the planner output or a plan file is invalid
    ├── TransitionError        a state change that the lifecycle does not allow
    ├── StateError             the state store cannot load or save an objective
    │   ├── ObjectiveNotFound  no saved objective matches an id
    │   └── StaleStateError    another writer saved a newer version first
    ├── SandboxError           a sandbox cannot be created, reached or used
    │   └── SandboxNotFound    a sandbox id or label set matches nothing
    ├── GitError               a git command inside a sandbox failed
    ├── AgentError             an agent runtime is misconfigured
    └── ForgeError             a forge (GitHub) operation failed
"""

from __future__ import annotations


class TackError(Exception):
    """Base class for every error that tack-action raises on purpose."""


class ConfigError(TackError):
    """A config, credentials or rules file is invalid."""

    def __init__(self, path: object, key: str, problem: str) -> None:
        self.path = str(path)
        self.key = key
        self.problem = problem
        where = f"{self.path}: {key}" if key else self.path
        super().__init__(f"{where}: {problem}")


class BlueprintError(TackError):
    """A blueprint is invalid, or no blueprint can be chosen."""


class PlanError(TackError):
    """The planner's final answer or a plan file is invalid."""


class TransitionError(TackError):
    """A state change that the entity's lifecycle does not allow."""


class StateError(TackError):
    """The state store cannot load or save an objective."""


class ObjectiveNotFound(StateError):
    """No saved objective matches the given id or id prefix."""


class StaleStateError(StateError):
    """Another writer saved a newer version of the objective first."""


class SandboxError(TackError):
    """A sandbox cannot be created, reached or used."""


class SandboxNotFound(SandboxError):
    """A sandbox id or label set matches no sandbox."""


class GitError(TackError):
    """A git command inside a sandbox failed."""

    def __init__(self, command: str, exit_code: int, output: str) -> None:
        self.command = command
        self.exit_code = exit_code
        self.output = output
        tail = output.strip()[-2000:]
        super().__init__(
            f"git command failed with exit code {exit_code}: {command}\n{tail}"
        )


class AgentError(TackError):
    """An agent runtime is misconfigured or cannot be started."""


class ForgeError(TackError):
    """A forge operation (comment, pull request, permission check) failed."""
