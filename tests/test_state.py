"""The file state store: atomic saves, optimistic versions and run locks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tack_action.errors import ObjectiveNotFound, StaleStateError, StateError
from tack_action.model import Objective
from tack_action.state import FileStateStore, default_state_dir


def _objective() -> Objective:
    return Objective(description="Add a thing", repo="/tmp/repo")


def test_store_round_trip_increments_version(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path)
    objective = _objective()

    store.save(objective, 0)
    store.save(objective, 1)
    loaded = store.load(objective.id)

    assert loaded.version == 2
    assert loaded.description == "Add a thing"


def test_store_rejects_stale_version(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path)
    objective = _objective()
    store.save(objective, 0)
    other = store.load(objective.id)
    store.save(other, other.version)

    with pytest.raises(StaleStateError, match="another writer"):
        store.save(objective, 1)

    assert store.load(objective.id).version == 2


def test_store_resolves_unique_prefix(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path)
    objective = _objective()
    store.save(objective, 0)

    assert store.resolve(objective.short_id) == objective.id
    with pytest.raises(ObjectiveNotFound, match="no objective matches"):
        store.resolve("zzzz")


def test_store_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path)
    objective = _objective()

    for version in range(5):
        store.save(objective, version)

    names = [p.name for p in (tmp_path / "objectives").iterdir()]
    assert [n for n in names if n.endswith(".tmp")] == []
    saved = json.loads((tmp_path / "objectives" / f"{objective.id}.json").read_text())
    assert saved["version"] == 5


def test_store_reports_corrupt_file(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path)
    objective = _objective()
    store.save(objective, 0)
    (tmp_path / "objectives" / f"{objective.id}.json").write_text("{not json")

    with pytest.raises(StateError, match="cannot read objective state"):
        store.load(objective.id)


def test_run_lock_is_exclusive(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path)

    with store.run_lock("abc"):
        with pytest.raises(StateError, match="another tack-action process"):
            with store.run_lock("abc"):
                pass

    with store.run_lock("abc"):
        pass


def test_default_state_dir_uses_xdg(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))

    assert default_state_dir() == tmp_path / "tack-action"
