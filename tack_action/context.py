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
from typing import TextIO

from .agents.base import AgentRuntime
from .blueprints import Blueprint
from .config import TackConfig
from .forge import Forge
from .model import Event, Objective, Stream
from .report import format_watch_line
from .sandbox.base import SandboxProvider
from .state import StateStore

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

    def emit(self, text: str, stream: Stream | None = None) -> None:
        """Print one watch line and keep it in the objective's event list."""
        event = Event(stream_id=stream.id if stream else None, text=text)
        tag = stream.id[:8] if stream else self.objective.short_id
        with self._lock:
            self.objective.events.append(event)
            del self.objective.events[:-MAX_SAVED_EVENTS]
            print(format_watch_line(event, tag), file=self.out, flush=True)
        if self.on_event is not None:
            self.on_event(event)
        log.debug("objective %s: %s", self.objective.short_id, text)
