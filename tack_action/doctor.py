"""Preflight checks for ``tack-action doctor``.

Each check returns a ``Check`` with a status (pass, warn, fail or skip), a
one-line detail and a fix hint. Checks never print or log a secret: they
name where a credential came from, never its value.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import subprocess
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .config import TackConfig, load_config
from .credentials import Credentials, load_credentials
from .errors import TackError

log = logging.getLogger(__name__)

PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"
DEFAULT_GITHUB_API = "https://api.github.com"
HTTP_TIMEOUT_S = 10.0

_GITHUB_REMOTE = re.compile(
    r"(?:github\.com[:/]|^)(?P<owner>[\w.-]+)/(?P<repo>[\w.-]+?)(?:\.git)?/?$"
)


@dataclass
class Check:
    """The outcome of one preflight check."""

    name: str
    status: str
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        """Return the check as JSON-ready values."""
        return asdict(self)


def run_checks(
    repo: Path, *, github_repo: str | None = None
) -> tuple[list[Check], TackConfig | None]:
    """Run every check for the repository and return them in order."""
    checks: list[Check] = []
    config: TackConfig | None = None
    try:
        config = load_config(repo)
        checks.append(Check("config", PASS, f"provider {config.sandbox.provider!r}"))
    except TackError as exc:
        checks.append(Check("config", FAIL, str(exc), "fix .tack/config.yaml"))

    credentials: Credentials | None = None
    try:
        credentials = load_credentials()
        checks.append(Check("credentials", PASS, f"read {credentials.path}"))
    except TackError as exc:
        fix = "fix credentials.yaml, or run `tack-action auth add`"
        checks.append(Check("credentials", FAIL, str(exc), fix))

    checks.append(check_daytona_auth(config))
    checks.append(check_external_url(config))
    checks.append(check_github_token(repo, credentials, github_repo=github_repo))
    return checks, config


def check_daytona_auth(config: TackConfig | None) -> Check:
    """Check that the Daytona API key resolves and Daytona accepts it."""
    name = "daytona_auth"
    if config is None or config.sandbox.provider != "daytona":
        return Check(name, SKIP, "sandbox.provider is not daytona")

    from .orchestrator import make_provider
    from .sandbox.daytona import DaytonaProvider

    try:
        provider = make_provider(config)
        assert isinstance(provider, DaytonaProvider)
        provider.retry_deadline = 15.0
        provider.find({})
    except TackError as exc:
        fix = (
            "set DAYTONA_API_KEY or run `tack-action auth add daytona`; check "
            "sandbox.daytona.api_url"
        )
        return Check(name, FAIL, str(exc), fix)
    url = config.sandbox.daytona.api_url or "the default Daytona API"
    return Check(name, PASS, f"Daytona at {url} accepted the API key")


def is_loopback(host: str) -> bool:
    """Tell whether ``host`` names this machine (loopback or unspecified)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def probe_health(url: str) -> tuple[bool, str]:
    """GET ``<url>/healthz`` and return (healthy, what happened)."""
    target = url.rstrip("/") + "/healthz"
    try:
        with urllib.request.urlopen(target, timeout=HTTP_TIMEOUT_S) as response:
            return response.status == 200, f"{target} answered {response.status}"
    except urllib.error.HTTPError as exc:
        exc.close()
        return False, f"{target} answered {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return False, f"{target} did not answer: {reason}"


def check_external_url(config: TackConfig | None) -> Check:
    """With daytona, check that daemon.external_url is set, remote and healthy."""
    name = "external_url"
    if config is None or config.sandbox.provider != "daytona":
        return Check(name, SKIP, "sandbox.provider is not daytona")
    url = config.daemon.external_url.strip()
    fix = "set daemon.external_url to the relay's public URL in the user config"
    if not url:
        return Check(name, FAIL, "daemon.external_url is empty", fix)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return Check(name, FAIL, f"daemon.external_url {url!r} is not an http URL", fix)
    if is_loopback(parts.hostname):
        return Check(
            name,
            FAIL,
            f"daemon.external_url {url!r} is loopback, which Daytona sandboxes "
            "cannot reach",
            fix,
        )
    healthy, what = probe_health(url)
    if not healthy:
        return Check(name, FAIL, what, "start the relay, or fix daemon.external_url")
    return Check(name, PASS, what)


def github_repository(repo: Path) -> str | None:
    """Return ``owner/name`` from $GITHUB_REPOSITORY or the origin remote."""
    named = os.environ.get("GITHUB_REPOSITORY")
    if named:
        return named
    result = subprocess.run(
        ["git", "-C", str(repo), "remote", "get-url", "origin"],
        capture_output=True,
        text=True,
    )
    match = _GITHUB_REMOTE.search(result.stdout.strip()) if result.stdout else None
    if match is None or "github.com" not in result.stdout:
        return None
    return f"{match['owner']}/{match['repo']}"


def check_github_token(
    repo: Path, credentials: Credentials | None, *, github_repo: str | None = None
) -> Check:
    """Check that the GitHub token is valid and may push to the repository."""
    name = "github_token"
    token = os.environ.get("GITHUB_TOKEN")
    source = "$GITHUB_TOKEN"
    if not token and credentials is not None:
        try:
            token = credentials.git_token()
        except TackError as exc:
            return Check(name, FAIL, str(exc), "fix git.token in credentials.yaml")
        source = "credentials.yaml git.token"
    fix = "set GITHUB_TOKEN, or run `tack-action auth add github`"
    if not token:
        return Check(name, WARN, "no GitHub token found", fix)
    full_name = github_repo or github_repository(repo)
    if not full_name:
        return Check(
            name,
            SKIP,
            "no GitHub repository: set GITHUB_REPOSITORY or a github.com origin",
        )

    api = os.environ.get("GITHUB_API_URL") or DEFAULT_GITHUB_API
    status, body = _get_json(f"{api.rstrip('/')}/repos/{full_name}", token)
    if status == 401:
        return Check(name, FAIL, f"GitHub rejected the token from {source}", fix)
    if status in (403, 404):
        return Check(
            name,
            FAIL,
            f"the token from {source} cannot read {full_name} (HTTP {status})",
            "give the token access to the repository",
        )
    if status != 200 or not isinstance(body, dict):
        return Check(name, FAIL, f"GitHub answered HTTP {status} for {full_name}", fix)
    if not (body.get("permissions") or {}).get("push"):
        return Check(
            name,
            FAIL,
            f"the token from {source} has no push permission on {full_name}",
            "grant contents: write (workflow permissions) or use a PAT with repo scope",
        )
    return Check(name, PASS, f"the token from {source} can push to {full_name}")


def _get_json(url: str, token: str) -> tuple[int, object]:
    request = urllib.request.Request(
        url,
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "User-Agent": "tack-action-doctor",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code, None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        log.warning("GitHub request to %s failed: %s", url, exc)
        return 0, None
