"""The state one orchestration run shares between its threads.

Stream workers and the merge queue change the same objective from different
threads. They do so only inside ``RunContext.locked()``, and every change is
saved before the lock is released, so a crash at any moment leaves a state
file that describes work that really happened.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

from .agents.base import AgentRuntime
from .blueprints import Blueprint
from .config import TackConfig
from .forge import Forge
from .model import Event, Objective, Stream
from .report import format_watch_line, printable
from .sandbox import git
from .sandbox.base import Sandbox, SandboxProvider
from .state import StateStore

if TYPE_CHECKING:
    from .relay_client import RelayClient

log = logging.getLogger(__name__)

# Events kept in the saved state for ``status``; the full stream goes to stderr.
MAX_SAVED_EVENTS = 300


@dataclass
class RunContext:
    """The objective being run and the services that run it."""

    objective: Objective
    store: StateStore
    config: TackConfig
    blueprints: dict[str, Blueprint]
    provider: SandboxProvider
    runtime: AgentRuntime
    forge: Forge | None = None
    out: TextIO = field(default_factory=lambda: sys.stderr)
    on_event: Callable[[Event], None] | None = None
    # Per-invocation git credentials (``git.auth_env``); never stored anywhere.
    git_env: dict[str, str] = field(default_factory=dict)
    relay: RelayClient | None = None
    _lock: threading.RLock = field(default_factory=threading.RLock)
    changed: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self._lock)

    @contextlib.contextmanager
    def locked(self) -> Iterator[Objective]:
        """Hold the lock, yield the objective, then save it and wake waiters."""
        with self._lock:
            yield self.objective
            self.save()
            self.changed.notify_all()

    def save(self) -> None:
        with self._lock:
            self.store.save(self.objective, self.objective.version)

    def quality_gates(self) -> list[str]:
        """Return the plan's gate commands, or the config's when the plan has none."""
        plan = self.objective.plan
        if plan is not None and plan.quality_gates:
            return plan.quality_gates
        return self.config.quality_gates

    def fetch(self, sandbox: Sandbox) -> None:
        """Fetch every branch of the objective's origin into ``origin/*``.

        Network calls name the origin URL explicitly rather than the remote
        ``origin``, because an agent can rewrite the sandbox's git config and
        the credentials must only ever go to the real origin.
        """
        refspec = "+refs/heads/*:refs/remotes/origin/*"
        git.fetch(sandbox, [refspec], env=self.git_env, remote=self.objective.repo)

    def push(self, sandbox: Sandbox, branch: str) -> None:
        """Push the sandbox's HEAD to ``branch`` on the origin."""
        git.push(
            sandbox,
            "HEAD",
            branch,
            force=True,
            env=self.git_env,
            remote=self.objective.repo,
        )

    def remote_sha(self, sandbox: Sandbox, branch: str) -> str | None:
        return git.remote_branch_sha(
            sandbox, branch, env=self.git_env, remote=self.objective.repo
        )

    def emit(self, text: str, stream: Stream | None = None) -> None:
        """Print one watch line and keep it in the objective's event list."""
        event = Event(stream_id=stream.id if stream else None, text=printable(text))
        tag = stream.id[:8] if stream else self.objective.short_id
        with self._lock:
            self.objective.events.append(event)
            del self.objective.events[:-MAX_SAVED_EVENTS]
            print(format_watch_line(event, tag), file=self.out, flush=True)
        if self.on_event is not None:
            self.on_event(event)
        log.debug("objective %s: %s", self.objective.short_id, text)
