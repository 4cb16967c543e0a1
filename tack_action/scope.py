"""File-scope checks of a builder's changes, and their enforcement.

The builder prompt lists the globs a builder may change. Changes outside
them are always reported to the reviewer; with ``agents.enforce_file_scope`` they are
also reverted to the stream's base commit before the quality gates run.
"""

from __future__ import annotations

import logging

from .errors import GitError
from .gates import in_scope
from .sandbox import git
from .sandbox.base import Sandbox

logger = logging.getLogger(__name__)

# Seconds allowed for `git status` in the sandbox.
STATUS_TIMEOUT_S = 120.0


def changed_paths(sandbox: Sandbox, base_sha: str) -> list[str]:
    """Return every path changed since ``base_sha``, committed or not.

    Includes commits on top of ``base_sha``, staged and unstaged edits, and
    untracked files that ``.gitignore`` does not exclude.
    """
    committed = git.changed_files(sandbox, base_sha, "HEAD")
    result = sandbox.exec(
        "git status --porcelain=v1 -z --untracked-files=all --no-renames",
        timeout=STATUS_TIMEOUT_S,
    )
    if result.exit_code != 0:
        raise GitError("git status", result.exit_code, result.output)

    pending = [entry[3:] for entry in result.output.split("\0") if len(entry) > 3]
    return sorted(set(committed) | set(pending))


def out_of_scope(sandbox: Sandbox, base_sha: str, file_scope: list[str]) -> list[str]:
    """Return the changed paths since ``base_sha`` that no scope glob matches.

    An empty file scope means the whole repository, so nothing is outside it.
    """
    if not file_scope:
        return []
    return [
        path
        for path in changed_paths(sandbox, base_sha)
        if not in_scope(path, file_scope)
    ]


def enforce_file_scope(
    sandbox: Sandbox, base_sha: str, file_scope: list[str]
) -> list[str]:
    """Revert changes outside ``file_scope`` to ``base_sha`` and return their paths.

    Files that did not exist at ``base_sha`` are deleted. The reverted state
    is staged but not committed, so the caller commits it with the rest.
    """
    outside = out_of_scope(sandbox, base_sha, file_scope)
    if not outside:
        return []

    git.revert_paths(sandbox, base_sha, outside)
    logger.info(
        "reverted %d paths outside the file scope in sandbox %s: %s",
        len(outside),
        sandbox.id,
        ", ".join(outside[:10]),
    )
    return outside
