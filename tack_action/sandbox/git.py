"""Git operations inside a sandbox, run through ``Sandbox.exec``.

Every function works on any provider because it only runs shell commands in
the sandbox's workdir. Arguments are quoted with ``shlex.quote`` because branch
names and paths come from planner output. Each invocation overrides the
repository config that could run a program of the agent's choosing (hooks,
fsmonitor, credential helpers, signing programs, the ``ext::`` transport), and
an agent can rewrite ``.git/config`` at will.

Credentials travel only in the environment of a single invocation, as built by
``auth_env``, never in a remote URL or a file.
"""

from __future__ import annotations

import base64
import logging
import re
import shlex
from collections.abc import Iterable

from ..errors import GitError
from .base import ExecResult, Sandbox

logger = logging.getLogger(__name__)

# Seconds any one git command may take before the sandbox kills it.
GIT_TIMEOUT_S = 600.0

# Characters of diff text handed to an agent, the size Tack gives its PR writer.
DIFF_MAX_CHARS = 16000

_HARDENING = (
    "-c core.hooksPath=/dev/null",
    "-c core.fsmonitor=false",
    "-c credential.helper=",
    "-c commit.gpgSign=false",
    "-c protocol.ext.allow=never",
)

# Exit code recorded in a GitError for an argument rejected before git ran.
NOT_RUN = -1


def auth_env(token: str) -> dict[str, str]:
    """Build the environment that authenticates one git invocation to GitHub.

    The header goes to whatever host the remote resolves to, so pass it only
    with the remote's URL given explicitly (``remote=``): an agent can point
    ``origin`` elsewhere, and network functions reject ``url.*.insteadOf``.
    """
    if not token or any(char in token for char in "\r\n"):
        raise ValueError(
            "The GitHub token is empty or contains a line break; check the "
            "token the job was given."
        )
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode("ascii")
    return {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "http.extraHeader",
        "GIT_CONFIG_VALUE_0": f"AUTHORIZATION: basic {basic}",
    }


def clone(sandbox: Sandbox, origin: str, *, env: dict[str, str] | None = None) -> None:
    """Clone ``origin`` into the sandbox's workdir, which must be empty."""
    _git(sandbox, ["clone", "--", origin, "."], env=env)


def checkout_new_branch(sandbox: Sandbox, branch: str, start_point: str) -> None:
    """Create ``branch`` at ``start_point`` and check it out."""
    _check_refs(branch, start_point)
    _git(sandbox, ["checkout", "--no-track", "-b", branch, start_point])


def checkout(sandbox: Sandbox, branch: str) -> None:
    """Check out an existing branch."""
    _check_refs(branch)
    _git(sandbox, ["checkout", branch, "--"])


def current_branch(sandbox: Sandbox) -> str:
    """Return the checked-out branch name, or ``HEAD`` when HEAD is detached."""
    return _git(sandbox, ["rev-parse", "--abbrev-ref", "HEAD"]).output.strip()


def head_sha(sandbox: Sandbox, ref: str = "HEAD") -> str:
    """Return the commit sha that ``ref`` points at."""
    _check_refs(ref)
    result = _git(sandbox, ["rev-parse", "--verify", "-q", f"{ref}^{{commit}}"])
    return result.output.strip()


def has_uncommitted_changes(sandbox: Sandbox) -> bool:
    """Return whether the checkout has staged, unstaged or untracked changes."""
    return bool(_git(sandbox, ["status", "--porcelain"]).output.strip())


def commit_all(
    sandbox: Sandbox, message: str, *, author_name: str, author_email: str
) -> str | None:
    """Stage and commit every change. Return the new sha, or None if clean."""
    _git(sandbox, ["add", "--all"])
    staged = _git(sandbox, ["diff", "--cached", "--quiet"], check=False)
    if staged.exit_code == 0:
        return None
    if staged.exit_code != 1:
        raise GitError(_command(["diff", "--cached"]), staged.exit_code, staged.output)

    _git(
        sandbox,
        ["commit", "-q", "--no-verify", "-m", message],
        env=_identity_env(author_name, author_email),
    )
    return head_sha(sandbox)


def fetch(
    sandbox: Sandbox,
    refspecs: list[str] | None = None,
    *,
    env: dict[str, str] | None = None,
    remote: str = "origin",
) -> None:
    """Fetch ``refspecs`` (or the remote's default refspecs) from ``remote``."""
    _check_url_rewrites(sandbox, env)
    _git(sandbox, ["fetch", "--no-tags", "--", remote, *(refspecs or [])], env=env)


def push(
    sandbox: Sandbox,
    local_ref: str,
    remote_branch: str,
    *,
    force: bool = False,
    env: dict[str, str] | None = None,
    remote: str = "origin",
) -> None:
    """Push ``local_ref`` to the branch ``remote_branch`` on ``remote``."""
    _check_refs(local_ref, remote_branch)
    _check_url_rewrites(sandbox, env)
    refspec = f"{'+' if force else ''}{local_ref}:refs/heads/{remote_branch}"
    _git(sandbox, ["push", "--no-verify", "--", remote, refspec], env=env)


def delete_remote_branch(
    sandbox: Sandbox,
    branch: str,
    *,
    env: dict[str, str] | None = None,
    remote: str = "origin",
) -> None:
    """Delete ``branch`` on ``remote``, unless it is already gone."""
    if remote_branch_sha(sandbox, branch, env=env, remote=remote) is None:
        return
    _git(
        sandbox,
        ["push", "--no-verify", "--", remote, f":refs/heads/{branch}"],
        env=env,
    )


def remote_branch_sha(
    sandbox: Sandbox,
    branch: str,
    *,
    env: dict[str, str] | None = None,
    remote: str = "origin",
) -> str | None:
    """Return the sha of ``branch`` on ``remote``, or None if it does not exist."""
    _check_refs(branch)
    _check_url_rewrites(sandbox, env)
    args = ["ls-remote", "--exit-code", "--", remote, f"refs/heads/{branch}"]
    result = _git(sandbox, args, env=env, check=False)

    # ls-remote --exit-code exits with 2 when no ref matches.
    if result.exit_code == 2:
        return None
    if result.exit_code != 0:
        raise GitError(_command(args), result.exit_code, result.output)
    for line in result.output.splitlines():
        sha, _, name = line.partition("\t")
        if name == f"refs/heads/{branch}":
            return sha
    return None


def merge(
    sandbox: Sandbox,
    ref: str,
    *,
    strategy_option: str | None = None,
    message: str | None = None,
    author_name: str,
    author_email: str,
) -> ExecResult:
    """Merge ``ref`` into HEAD with a merge commit and return git's result.

    A conflict is an expected outcome here, so this does not raise: a
    non-zero exit code leaves the merge in progress for the caller to inspect
    or abort.
    """
    _check_refs(ref)
    args = ["merge", "--no-ff", "--no-edit"]
    if strategy_option:
        args += ["-X", strategy_option]
    if message:
        args += ["-m", message]
    args += ["--", ref]
    return _git(
        sandbox, args, env=_identity_env(author_name, author_email), check=False
    )


def merge_in_progress(sandbox: Sandbox) -> bool:
    """Return whether a merge is waiting to be concluded or aborted."""
    args = ["rev-parse", "-q", "--verify", "MERGE_HEAD"]
    return _git(sandbox, args, check=False).exit_code == 0


def abort_merge(sandbox: Sandbox) -> None:
    """Abort the merge in progress and restore the pre-merge state."""
    _git(sandbox, ["merge", "--abort"])


def reset_hard(sandbox: Sandbox, ref: str) -> None:
    """Move HEAD, the index and tracked files to ``ref``."""
    _check_refs(ref)
    _git(sandbox, ["reset", "-q", "--hard", ref, "--"])


def is_ancestor(sandbox: Sandbox, ancestor: str, descendant: str) -> bool:
    """Return whether ``ancestor`` is reachable from ``descendant``."""
    _check_refs(ancestor, descendant)
    args = ["merge-base", "--is-ancestor", ancestor, descendant]
    result = _git(sandbox, args, check=False)
    if result.exit_code in (0, 1):
        return result.exit_code == 0
    raise GitError(_command(args), result.exit_code, result.output)


def changed_files(sandbox: Sandbox, base: str, head: str = "HEAD") -> list[str]:
    """Return the paths that differ between the trees of ``base`` and ``head``."""
    _check_refs(base, head)
    args = ["diff", "--name-only", "--no-renames", "-z", base, head, "--"]
    return _split_nul(_git(sandbox, args).output)


def tracked_files(sandbox: Sandbox) -> set[str]:
    """Return every path in the index."""
    return set(_split_nul(_git(sandbox, ["ls-files", "-z"]).output))


def diff(
    sandbox: Sandbox, base: str, head: str = "HEAD", *, max_chars: int = DIFF_MAX_CHARS
) -> str:
    """Return the diff from ``base`` to ``head``, cut to ``max_chars`` characters."""
    _check_refs(base, head)
    args = ["diff", "--no-color", "--no-ext-diff", "--no-textconv", base, head, "--"]
    text = _git(sandbox, args).output
    if len(text) <= max_chars:
        return text
    return text[:max_chars] + f"\n[diff cut at {max_chars} of {len(text)} characters]\n"


def diffstat(sandbox: Sandbox, base: str, head: str = "HEAD") -> str:
    """Return ``git diff --stat`` from ``base`` to ``head``."""
    _check_refs(base, head)
    args = ["diff", "--stat", "--no-color", "--no-ext-diff", base, head, "--"]
    return _git(sandbox, args).output


def revert_paths(sandbox: Sandbox, base: str, paths: list[str]) -> None:
    """Restore ``paths`` to their content at ``base``, deleting those it lacks.

    The result is staged but not committed.
    """
    _check_refs(base)
    _check_paths(paths)
    if not paths:
        return

    listed = _git(sandbox, ["ls-tree", "-r", "--name-only", "-z", base, "--", *paths])
    at_base = set(_split_nul(listed.output))
    restore = [path for path in paths if _covers(path, at_base)]
    remove = [path for path in paths if path not in restore]

    if restore:
        _git(sandbox, ["checkout", base, "--", *restore])
    if remove:
        _git(sandbox, ["rm", "-r", "-q", "-f", "--ignore-unmatch", "--", *remove])
        _git(sandbox, ["clean", "-q", "-f", "-d", "--", *remove])


def _covers(path: str, files: set[str]) -> bool:
    prefix = path.rstrip("/") + "/"
    return path in files or any(name.startswith(prefix) for name in files)


def _git(
    sandbox: Sandbox,
    args: list[str],
    *,
    env: dict[str, str] | None = None,
    check: bool = True,
) -> ExecResult:
    """Run one hardened git command in the sandbox's workdir."""
    command = _command(args)
    if env and "GIT_CONFIG_COUNT" in env:
        # Credentialed commands ignore proxies and always verify TLS, even if
        # the environment or a config file the check above cannot read sets them.
        command = command.replace(
            "git ", "git -c http.proxy= -c http.sslVerify=true ", 1
        )
    full_env = {"GIT_TERMINAL_PROMPT": "0", **(env or {})}
    result = sandbox.exec(command, env=full_env, timeout=GIT_TIMEOUT_S)
    if check and result.exit_code != 0:
        raise GitError(command, result.exit_code, result.output)
    logger.debug("ran %s in sandbox %s", command, sandbox.id)
    return result


def _command(args: list[str]) -> str:
    # Pathspecs are taken literally, so a file named "*" or ":(top)x" from
    # planner output means that file and nothing else.
    quoted = " ".join(shlex.quote(arg) for arg in args)
    return f"git --literal-pathspecs {' '.join(_HARDENING)} {quoted}"


def _identity_env(name: str, email: str) -> dict[str, str]:
    return {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
    }


# Repository settings that change where a credentialed request goes or whether
# its TLS is checked. An agent can write any of them into .git/config (or a
# file it includes), so they are rejected before the token is sent.
_UNSAFE_CONFIG = re.compile(
    r"^(url\..*\.(insteadof|pushinsteadof)"
    r"|http\..*"
    r"|remote\..*\.(proxy|proxyauthmethod)"
    r"|core\.(gitproxy|sshcommand|askpass))=",
    re.IGNORECASE,
)


def _check_url_rewrites(sandbox: Sandbox, env: dict[str, str] | None) -> None:
    """Reject repository config that could redirect a credentialed command.

    URL rewrites, any ``http.*`` setting (proxies, TLS verification, CA files,
    resolve overrides) and remote proxies would send the auth header to
    another host or let one read it. Without credentials in ``env`` there is
    nothing to leak.
    """
    if not env:
        return
    args = ["config", "--list", "--includes", "--local"]
    result = _git(sandbox, args, check=False)
    unsafe = [
        line.split("=", 1)[0]
        for line in result.output.splitlines()
        if _UNSAFE_CONFIG.match(line)
    ]
    if unsafe:
        raise GitError(
            _command(args),
            NOT_RUN,
            "The repository config has settings that could send credentials to "
            f"another host: {', '.join(sorted(set(unsafe)))}. Remove them from "
            ".git/config; tack-action never sets them.",
        )


def _check_refs(*refs: str) -> None:
    # A value starting with "-" would be parsed as an option, which quoting
    # does not prevent.
    for ref in refs:
        if not ref or ref.startswith("-") or any(ord(char) < 32 for char in ref):
            raise GitError(
                f"git (argument {ref!r})",
                NOT_RUN,
                f"Invalid ref or branch name {ref!r}: it must be non-empty, must "
                "not start with '-' and must not contain control characters.",
            )


def _check_paths(paths: Iterable[str]) -> None:
    for path in paths:
        parts = path.split("/")
        if not path or path.startswith(("/", "-")) or ".." in parts:
            raise GitError(
                f"git (path {path!r})",
                NOT_RUN,
                f"Invalid repository path {path!r}: use a relative path inside "
                "the repository without '..' components.",
            )


def _split_nul(output: str) -> list[str]:
    return [name for name in output.split("\0") if name]
