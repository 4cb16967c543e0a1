"""A recording forge: the pull request side of GitHub, kept in memory."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RecordingForge:
    """Stores pull requests by head branch and records every call."""

    pulls: dict[str, dict[str, str]] = field(default_factory=dict)
    calls: list[dict[str, str]] = field(default_factory=list)

    def find_or_create_pull_request(
        self, *, head: str, base: str, title: str, body: str
    ) -> str:
        self.calls.append({"head": head, "base": base, "title": title, "body": body})
        if head not in self.pulls:
            number = len(self.pulls) + 1
            self.pulls[head] = {
                "url": f"https://forge.invalid/pull/{number}",
                "title": title,
                "body": body,
                "base": base,
            }
        return self.pulls[head]["url"]
