"""Finding and removing orphan sandboxes by their ``tack.*`` labels.

A sandbox is an orphan when its objective is not active in the local state
store: the objective finished, or this machine never knew it (a CI job that
died before it could clean up). Sandboxes of active objectives are kept unless
the caller names that objective explicitly.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from .errors import SandboxError, SandboxNotFound, StateError, TackError
from .model import OBJECTIVE_TRANSITIONS, Objective
from .sandbox.base import Sandbox, SandboxProvider
from .state import StateStore

log = logging.getLogger(__name__)

_DURATION = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass
class Candidate:
    """One sandbox cleanup looked at, and what it decided."""

    sandbox_id: str
    name: str
    objective_id: str
    role: str
    age: timedelta | None
    action: str  # "delete", "deleted", "keep" or "failed"
    reason: str
    sandbox: Sandbox | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        """Return the candidate as JSON-ready values."""
        age = None if self.age is None else int(self.age.total_seconds())
        return {
            "sandbox_id": self.sandbox_id,
            "name": self.name,
            "objective": self.objective_id,
            "role": self.role,
            "age_seconds": age,
            "action": self.action,
            "reason": self.reason,
        }


def parse_duration(text: str) -> timedelta:
    """Parse a duration such as ``90m``, ``2h``, ``1d12h`` or ``1w``."""
    compact = text.strip().lower().replace(" ", "")
    parts = _DURATION.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise TackError(
            f"Invalid duration {text!r}; use a number with a unit s, m, h, d or w, "
            "such as 30m, 2h or 1d12h."
        )
    return timedelta(seconds=sum(int(n) * _UNITS[u] for n, u in parts))


def active_objectives(store: StateStore) -> dict[str, Objective]:
    """Return the objectives in ``store`` that can still run, by id."""
    try:
        objectives = store.list()  # type: ignore[attr-defined]
    except (FileNotFoundError, StateError):
        return {}
    return {o.id: o for o in objectives if OBJECTIVE_TRANSITIONS[o.status]}


def sandbox_age(sandbox: Sandbox, now: datetime) -> timedelta | None:
    """Return how long ago the sandbox was created, or None when unknown."""
    created = _created_at(sandbox)
    if created is None:
        return None
    if created.tzinfo is None:
        created = created.replace(tzinfo=timezone.utc)
    return now - created


def _created_at(sandbox: Sandbox) -> datetime | None:
    raw: Any = None
    sdk = getattr(sandbox, "sdk", None)
    if sdk is not None:
        raw = getattr(sdk, "created_at", None)
    directory = getattr(sandbox, "directory", None)
    if raw is None and isinstance(directory, Path):
        try:
            raw = json.loads((directory / "sandbox.json").read_text())["created_at"]
        except (OSError, ValueError, KeyError):
            raw = None
    if isinstance(raw, datetime):
        return raw
    if not raw:
        return None
    try:
        return datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        return None


def plan_cleanup(
    provider: SandboxProvider,
    store: StateStore,
    *,
    objective: str | None = None,
    older_than: timedelta | None = None,
    now: datetime | None = None,
) -> list[Candidate]:
    """Return every tack sandbox the provider lists, each marked delete or keep.

    ``objective`` (a full id or a prefix) limits cleanup to that objective's
    sandboxes and deletes them even when the objective is active.
    """
    now = now or datetime.now(timezone.utc)
    active = active_objectives(store)
    candidates = []
    for sandbox in provider.find({}):
        owner = sandbox.labels.get("tack.objective")
        if not owner:
            continue
        if objective and not owner.startswith(objective):
            continue
        age = sandbox_age(sandbox, now)
        action, reason = _decide(owner, age, active, objective, older_than)
        candidates.append(
            Candidate(
                sandbox_id=sandbox.id,
                name=getattr(sandbox, "name", sandbox.id),
                objective_id=owner,
                role=sandbox.labels.get("tack.role", ""),
                age=age,
                action=action,
                reason=reason,
                sandbox=sandbox,
            )
        )
    return candidates


def _decide(
    owner: str,
    age: timedelta | None,
    active: dict[str, Objective],
    named: str | None,
    older_than: timedelta | None,
) -> tuple[str, str]:
    if older_than is not None and (age is None or age < older_than):
        return "keep", "younger than --older-than"
    if owner in active and not named:
        status = active[owner].status.value
        return "keep", f"objective {owner[:8]} is {status} in the local state"
    if owner in active:
        return "delete", "objective named with --objective"
    return "delete", "objective is not active in the local state"


def remove_sandboxes(candidates: list[Candidate]) -> list[Candidate]:
    """Delete every candidate marked ``delete``; return the updated list."""
    for candidate in candidates:
        if candidate.action != "delete" or candidate.sandbox is None:
            continue
        try:
            # Deleting needs no start, so a stopped sandbox stays stopped.
            candidate.sandbox.delete()
        except SandboxNotFound:
            candidate.action = "deleted"
            candidate.reason = "already gone"
            continue
        except SandboxError as exc:
            log.warning("Could not delete sandbox %s: %s", candidate.name, exc)
            candidate.action = "failed"
            candidate.reason = str(exc)
            continue
        log.info("Deleted orphan sandbox %s (%s)", candidate.name, candidate.sandbox_id)
        candidate.action = "deleted"
    return candidates
