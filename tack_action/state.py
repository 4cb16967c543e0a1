"""Saved objective state: the ``StateStore`` protocol and the file store.

A store saves whole objectives with optimistic concurrency. ``save`` takes the
version the caller loaded, and raises ``StaleStateError`` if another writer
saved in between, so two writers can never silently overwrite each other.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import IO, Protocol

from .errors import ObjectiveNotFound, StaleStateError, StateError
from .model import Objective, utc_now


class StateStore(Protocol):
    def load(self, objective_id: str) -> Objective:
        """Return the saved objective, or raise ObjectiveNotFound."""

    def save(self, objective: Objective, expected_version: int) -> None:
        """Save ``objective`` if the stored version equals ``expected_version``.

        On success the objective's ``version`` is incremented.
        """


def default_state_dir() -> Path:
    """Return ``$XDG_STATE_HOME/tack-action``, or ``~/.local/state/tack-action``."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "tack-action"


class FileStateStore:
    """Stores each objective as one JSON file, replaced atomically on save.

    A crash at any point leaves either the old file or the new one, never a
    mix: the new content is written to a temporary file, flushed to disk and
    renamed over the old one.
    """

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root else default_state_dir()
        self.objectives = self.root / "objectives"

    def _path(self, objective_id: str) -> Path:
        return self.objectives / f"{objective_id}.json"

    def resolve(self, key: str) -> str:
        """Return the full objective id for an id or a unique id prefix."""
        if self._path(key).exists():
            return key
        matches = sorted(p.stem for p in self.objectives.glob(f"{key}*.json"))
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise ObjectiveNotFound(
                f"no objective matches {key!r} in {self.objectives}; "
                "run 'tack-action status' to list objectives"
            )
        raise ObjectiveNotFound(
            f"{key!r} matches {len(matches)} objectives; give more characters"
        )

    def load(self, objective_id: str) -> Objective:
        path = self._path(self.resolve(objective_id))
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise StateError(f"cannot read objective state {path}: {exc}") from exc
        return Objective.model_validate(data)

    def list(self) -> list[Objective]:
        """Return every saved objective, newest first."""
        found = [self.load(p.stem) for p in self.objectives.glob("*.json")]
        return sorted(found, key=lambda o: o.created_at, reverse=True)

    def save(self, objective: Objective, expected_version: int) -> None:
        self.objectives.mkdir(parents=True, exist_ok=True)
        path = self._path(objective.id)
        with self._locked(objective.id):
            stored = self._stored_version(path)
            if stored != expected_version:
                raise StaleStateError(
                    f"objective {objective.short_id} was saved by another writer "
                    f"(version {stored}, expected {expected_version}); "
                    "reload it and try again"
                )
            objective.version = expected_version + 1
            objective.updated_at = utc_now()
            self._write_atomic(path, objective.model_dump_json(indent=1))

    def _stored_version(self, path: Path) -> int:
        if not path.exists():
            return 0
        try:
            return int(json.loads(path.read_text()).get("version", 0))
        except (OSError, ValueError) as exc:
            raise StateError(f"cannot read objective state {path}: {exc}") from exc

    def _write_atomic(self, path: Path, text: str) -> None:
        tmp = path.with_suffix(f".json.{os.getpid()}.tmp")
        with open(tmp, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def _locked(self, objective_id: str) -> _FileLock:
        return _FileLock(self.objectives / f".{objective_id}.lock", blocking=True)

    def run_lock(self, objective_id: str) -> _FileLock:
        """Return a lock that one process holds while it runs an objective."""
        self.objectives.mkdir(parents=True, exist_ok=True)
        return _FileLock(self.objectives / f".{objective_id}.run", blocking=False)


class _FileLock:
    """An flock on a file; the kernel releases it when its holder dies."""

    def __init__(self, path: Path, *, blocking: bool) -> None:
        self.path = path
        self.blocking = blocking
        self._handle: IO[str] | None = None

    def __enter__(self) -> _FileLock:
        self._handle = open(self.path, "a")
        flags = fcntl.LOCK_EX if self.blocking else fcntl.LOCK_EX | fcntl.LOCK_NB
        try:
            fcntl.flock(self._handle, flags)
        except BlockingIOError:
            self._handle.close()
            raise StateError(
                f"another tack-action process is running this objective "
                f"(lock {self.path}); wait for it to finish or stop it first"
            ) from None
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None
