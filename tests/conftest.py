"""Fixtures shared by every test module."""

from __future__ import annotations

import os

import pytest

_PREFIXES = ("TACK_", "GITHUB_", "DAYTONA_", "RELAY_", "XDG_")


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch, tmp_path_factory) -> None:
    """Keep the developer's own tack, GitHub and Daytona settings out of tests."""
    for name in list(os.environ):
        if name.startswith(_PREFIXES):
            monkeypatch.delenv(name)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
