"""The few forge operations the core needs, behind one small interface.

Local runs have no forge: the merge branch is the result. The GitHub Action
supplies an implementation backed by the GitHub API.
"""

from __future__ import annotations

from typing import Protocol


class Forge(Protocol):
    def find_or_create_pull_request(
        self, *, head: str, base: str, title: str, body: str
    ) -> str:
        """Return the URL of the open pull request from ``head``, creating it once."""
