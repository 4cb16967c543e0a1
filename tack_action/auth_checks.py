"""``tack-action auth test``: one cheap authenticated call per provider.

Each check tells a wrong key, an expired or forbidden key, no network and
rate limiting apart, because each needs a different fix. Server messages are
quoted only with the secret replaced, and a 401 body is never quoted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import Enum
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from .auth import canonical_provider, check_known_provider, entry_key, stored_secret
from .credentials import (
    credentials_path,
    load_credentials,
)

logger = logging.getLogger(__name__)

HTTP_TIMEOUT_SECONDS = 15.0
DEFAULT_DAYTONA_API_URL = "https://app.daytona.io/api"
DEFAULT_GITHUB_API_URL = "https://api.github.com"


@dataclass(frozen=True)
class ModelEndpoint:
    """The cheapest authenticated request of one model provider's API."""

    base_url_env: str
    default_base_url: str
    path: str
    key_header: str
    key_prefix: str = ""
    extra_headers: tuple[tuple[str, str], ...] = ()


# Each base URL follows the convention of the provider's own SDK, so the same
# override works for both: OpenAI-style bases include /v1, the others do not.
MODEL_ENDPOINTS = {
    "anthropic": ModelEndpoint(
        "ANTHROPIC_BASE_URL",
        "https://api.anthropic.com",
        "/v1/models?limit=1",
        "x-api-key",
        extra_headers=(("anthropic-version", "2023-06-01"),),
    ),
    "openai": ModelEndpoint(
        "OPENAI_BASE_URL",
        "https://api.openai.com/v1",
        "/models",
        "Authorization",
        "Bearer ",
    ),
    "gemini": ModelEndpoint(
        "GOOGLE_GEMINI_BASE_URL",
        "https://generativelanguage.googleapis.com",
        "/v1beta/models?pageSize=1",
        "x-goog-api-key",
    ),
    "groq": ModelEndpoint(
        "GROQ_BASE_URL",
        "https://api.groq.com",
        "/openai/v1/models",
        "Authorization",
        "Bearer ",
    ),
    "mistral": ModelEndpoint(
        "MISTRAL_BASE_URL",
        "https://api.mistral.ai",
        "/v1/models",
        "Authorization",
        "Bearer ",
    ),
    "xai": ModelEndpoint(
        "XAI_BASE_URL",
        "https://api.x.ai/v1",
        "/models",
        "Authorization",
        "Bearer ",
    ),
}


# Testing.


class Failure(str, Enum):
    """The kind of ``auth test`` failure. Each kind needs a different fix."""

    NOT_CONFIGURED = "not configured"
    WRONG_KEY = "wrong key"
    EXPIRED_OR_FORBIDDEN = "expired or forbidden"
    NO_NETWORK = "no network"
    RATE_LIMITED = "rate limited"
    NO_PUSH_PERMISSION = "no push permission"
    UNEXPECTED_RESPONSE = "unexpected response"


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one authenticated test call."""

    provider: str
    failure: Failure | None
    message: str
    details: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether the credential worked."""
        return self.failure is None


def check_credential(
    provider: str,
    *,
    path: str | Path | None = None,
    daytona_api_url: str | None = None,
    repo_dir: str | Path | None = None,
) -> CheckResult:
    """Make one lightweight authenticated call with a stored credential.

    ``daytona_api_url`` is ``sandbox.daytona.api_url`` from the config, if set.
    ``repo_dir`` is where the GitHub check reads the ``origin`` remote; it
    defaults to the working directory.
    """
    provider = canonical_provider(provider)
    target = Path(path) if path is not None else credentials_path()
    check_known_provider(provider, target)
    credentials = load_credentials(target)
    secret = stored_secret(credentials, provider)
    if not secret:
        return CheckResult(
            provider,
            Failure.NOT_CONFIGURED,
            f"{target} has no {entry_key(provider)} entry. "
            f"Run `tack-action auth add {provider}` first.",
        )

    if provider == "daytona":
        api_url = (
            daytona_api_url
            or os.environ.get("DAYTONA_API_URL")
            or DEFAULT_DAYTONA_API_URL
        )
        result = check_daytona(secret, api_url)
    elif provider == "github":
        host = credentials.git.host if credentials.git is not None else "github.com"
        result = check_github(secret, host, Path(repo_dir or Path.cwd()))
    else:
        result = check_model_provider(provider, secret)
    return _scrubbed(result, secret)


def _scrubbed(result: CheckResult, secret: str) -> CheckResult:
    # Server messages and SDK errors are quoted in results; none may carry
    # the secret back to the terminal.
    def scrub(text: str) -> str:
        return text.replace(secret, "[redacted]")

    return CheckResult(
        result.provider,
        result.failure,
        scrub(result.message),
        tuple(scrub(line) for line in result.details),
    )


def check_model_provider(provider: str, api_key: str) -> CheckResult:
    """List models with the provider's API key, the cheapest authenticated call."""
    endpoint = MODEL_ENDPOINTS[provider]
    base = os.environ.get(endpoint.base_url_env) or endpoint.default_base_url
    url = base.rstrip("/") + endpoint.path
    headers = {endpoint.key_header: endpoint.key_prefix + api_key}
    headers.update(endpoint.extra_headers)

    try:
        response = _get(url, headers)
    except httpx.TransportError as exc:
        return _network_failure(provider, url, exc, endpoint.base_url_env)

    if response.status_code == 200:
        return CheckResult(provider, None, f"the key can list models at {base}.")

    # Gemini rejects an invalid key with 400 and reason API_KEY_INVALID.
    # NOTE: xAI's 400 "Incorrect API key provided" is taken from its error
    # output as users report it, not from a published reference.
    wrong_key_markers = ("API_KEY_INVALID", "Incorrect API key")
    if response.status_code == 400 and any(
        marker in response.text for marker in wrong_key_markers
    ):
        return _wrong_key(provider, url, response)
    return _http_failure(provider, url, response)


def check_daytona(api_key: str, api_url: str) -> CheckResult:
    """List at most one sandbox with the daytona SDK."""
    # The SDK costs about a second to import, so only this check loads it.
    from daytona import (
        Daytona,
        DaytonaAuthenticationError,
        DaytonaConfig,
        DaytonaConnectionError,
        DaytonaError,
        DaytonaForbiddenError,
        DaytonaRateLimitError,
        DaytonaTimeoutError,
        ListSandboxesQuery,
    )

    url = f"{api_url.rstrip('/')}/sandbox"
    try:
        client = Daytona(DaytonaConfig(api_key=api_key, api_url=api_url))
        first_page = client.list(ListSandboxesQuery(limit=1))
        found = next(iter(first_page), None)
    except DaytonaAuthenticationError:
        return CheckResult(
            "daytona",
            Failure.WRONG_KEY,
            f"{url} answered 401 Unauthorized, so the API key is wrong or was "
            "revoked. Store a valid key with `tack-action auth add daytona`.",
        )
    except DaytonaForbiddenError as exc:
        return CheckResult(
            "daytona",
            Failure.EXPIRED_OR_FORBIDDEN,
            f"{url} answered 403 Forbidden: {exc.message}. The key has expired "
            "or lacks the permission to list sandboxes; create a key with "
            "sandbox access in the Daytona dashboard.",
        )
    except DaytonaRateLimitError as exc:
        wait = _retry_after(exc.headers)
        return CheckResult(
            "daytona",
            Failure.RATE_LIMITED,
            f"{url} answered 429 Too Many Requests{wait}. The key was not checked.",
        )
    except (DaytonaConnectionError, DaytonaTimeoutError) as exc:
        return CheckResult(
            "daytona",
            Failure.NO_NETWORK,
            f"cannot reach {api_url}: {exc.message}. Check the network, or "
            "sandbox.daytona.api_url and DAYTONA_API_URL.",
        )
    except DaytonaError as exc:
        # Refused or dropped connections reach us as a plain DaytonaError
        # raised from urllib3's MaxRetryError.
        cause = _transport_cause(exc)
        if exc.status_code is None and cause is not None:
            return CheckResult(
                "daytona",
                Failure.NO_NETWORK,
                f"cannot reach {api_url}: {cause}. Check the network, or "
                "sandbox.daytona.api_url and DAYTONA_API_URL.",
            )

        status = exc.status_code or "no status"
        return CheckResult(
            "daytona",
            Failure.UNEXPECTED_RESPONSE,
            f"listing sandboxes at {url} failed ({status}): {exc.message}",
        )

    listed = "one sandbox" if found is not None else "no sandboxes"
    return CheckResult("daytona", None, f"the key listed {listed} at {api_url}.")


def _transport_cause(error: BaseException) -> str | None:
    """Return the innermost OS-level reason in an exception chain, if any."""
    import urllib3

    reason: str | None = None
    current: BaseException | None = error
    while current is not None:
        if isinstance(current, OSError) and current.strerror:
            reason = current.strerror
        elif isinstance(current, urllib3.exceptions.HTTPError) and reason is None:
            reason = type(current).__name__
        current = current.__cause__ or current.__context__
    return reason


def check_github(token: str, host: str, repo_dir: Path) -> CheckResult:
    """Read the token's user and scopes, then its push permission on ``origin``."""
    base = _github_api_url(host)
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
    }
    url = f"{base}/user"
    try:
        response = _get(url, headers)
    except httpx.TransportError as exc:
        return _network_failure("github", url, exc, "GITHUB_API_URL")

    # Installation tokens, such as the Actions GITHUB_TOKEN, have no user, so
    # GitHub returns 403 "Resource not accessible by integration".
    if response.status_code == 403 and "by integration" in _server_message(response):
        identity = "the token is a GitHub App installation token"
        details = ["Its permissions are set per repository by the app."]
    elif response.status_code == 200:
        login = _json_field(response, "login") or "an unknown user"
        identity = f"the token belongs to {login}"
        details = [_describe_scopes(response.headers.get("X-OAuth-Scopes"))]
    else:
        return _http_failure("github", url, response)

    origin = _origin_repository(repo_dir, host)
    if isinstance(origin, str):
        details.append(origin)
        return CheckResult("github", None, f"{identity}.", tuple(details))

    owner, name = origin
    url = f"{base}/repos/{owner}/{name}"
    try:
        response = _get(url, headers)
    except httpx.TransportError as exc:
        return _network_failure("github", url, exc, "GITHUB_API_URL")

    if response.status_code == 404:
        return CheckResult(
            "github",
            Failure.NO_PUSH_PERMISSION,
            f"{url} answered 404 Not Found: {identity} but cannot see "
            f"{owner}/{name}. Give the token access to the repository.",
            tuple(details),
        )

    if response.status_code != 200:
        return _http_failure("github", url, response)

    permissions = _json_field(response, "permissions")
    installation = identity.endswith("installation token")
    if not isinstance(permissions, dict) and installation:
        # NOTE: GitHub may leave `permissions` out for installation tokens,
        # whose write access comes from the workflow's `permissions:` block.
        details.append(
            f"GitHub did not report its permissions on {owner}/{name}; the "
            "workflow needs `permissions: contents: write` to push."
        )
        return CheckResult("github", None, f"{identity}.", tuple(details))

    if not isinstance(permissions, dict) or permissions.get("push") is not True:
        return CheckResult(
            "github",
            Failure.NO_PUSH_PERMISSION,
            f"{identity} but cannot push to {owner}/{name}. "
            "Use a token with write access (classic: the repo scope; "
            "fine-grained: Contents read and write).",
            tuple(details),
        )

    details.append(f"It can push to {owner}/{name}.")
    return CheckResult("github", None, f"{identity}.", tuple(details))


def _github_api_url(host: str) -> str:
    configured = os.environ.get("GITHUB_API_URL")
    if configured:
        return configured.rstrip("/")

    if host == "github.com":
        return DEFAULT_GITHUB_API_URL

    # GitHub Enterprise Server serves the REST API under /api/v3.
    return f"https://{host}/api/v3"


def _describe_scopes(header: str | None) -> str:
    # Only classic tokens carry X-OAuth-Scopes; fine-grained tokens and app
    # tokens carry per-repository permissions instead.
    if header is None:
        return (
            "It is a fine-grained or app token, so its permissions are set "
            "per repository."
        )

    scopes = [scope.strip() for scope in header.split(",") if scope.strip()]
    if not scopes:
        return "It is a classic token with no scopes, so it cannot push."

    listed = ", ".join(scopes)
    if "repo" not in scopes:
        return (
            f"It is a classic token with scopes {listed}, without repo, so it "
            "cannot push to private repositories."
        )
    return f"It is a classic token with scopes {listed}."


# Matches scp-like remotes such as git@github.com:octo/widgets.git.
_SCP_REMOTE = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>[^/].*)$")


def parse_remote_url(url: str) -> tuple[str, str, str] | None:
    """Return (host, owner, repository) of an HTTPS, SSH or scp-like git URL."""
    url = url.strip()
    if "://" in url:
        parts = urlsplit(url)
        host = parts.hostname or ""
        path = parts.path
    else:
        match = _SCP_REMOTE.match(url)
        if match is None:
            return None
        host = match["host"]
        path = match["path"]

    segments = [segment for segment in path.strip("/").split("/") if segment]
    if not host or len(segments) != 2:
        return None

    owner, name = segments
    return host.lower(), owner, name.removesuffix(".git")


def _origin_repository(repo_dir: Path, host: str) -> tuple[str, str] | str:
    """Return (owner, name) of ``origin``, or a sentence saying why it was skipped."""
    try:
        completed = subprocess.run(
            ["git", "remote", "get-url", "origin"],
            cwd=repo_dir,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"Push permission was not checked: git failed to run ({exc})."

    if completed.returncode != 0:
        return (
            f"Push permission was not checked: {repo_dir} is not a git "
            "repository with an origin remote."
        )

    parsed = parse_remote_url(completed.stdout)
    if parsed is None:
        return (
            "Push permission was not checked: the origin URL is not of the "
            "form HOST/OWNER/REPOSITORY."
        )

    origin_host, owner, name = parsed
    if origin_host != host.lower():
        return (
            f"Push permission was not checked: origin is on {origin_host}, "
            f"but the token is for {host}."
        )
    return owner, name


# HTTP helpers shared by the checks.


def _get(url: str, headers: dict[str, str]) -> httpx.Response:
    with httpx.Client(timeout=HTTP_TIMEOUT_SECONDS, follow_redirects=False) as client:
        return client.get(url, headers=headers)


def _status_text(response: httpx.Response) -> str:
    """Return the status code and its standard phrase, such as ``401 Unauthorized``."""
    try:
        phrase = HTTPStatus(response.status_code).phrase
    except ValueError:
        phrase = response.reason_phrase
    return f"{response.status_code} {phrase}"


def _json_field(response: httpx.Response, name: str) -> Any:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get(name) if isinstance(body, dict) else None


def _server_message(response: httpx.Response) -> str:
    """Return the error message from a JSON error body, shortened."""
    try:
        body = response.json()
    except ValueError:
        return ""

    message: Any = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            message = error.get("message")
        elif isinstance(error, str):
            message = error
        message = message or body.get("message") or body.get("detail")

    if not isinstance(message, str):
        return ""
    return message.strip()[:200]


def _wrong_key(provider: str, url: str, response: httpx.Response) -> CheckResult:
    # The 401 body is not quoted: some providers echo part of the key in it.
    return CheckResult(
        provider,
        Failure.WRONG_KEY,
        f"{url} answered {_status_text(response)}, so the "
        f"key is wrong or was revoked. Store a valid key with "
        f"`tack-action auth add {provider}`.",
    )


def _http_failure(provider: str, url: str, response: httpx.Response) -> CheckResult:
    status = response.status_code
    remaining = response.headers.get("X-RateLimit-Remaining")
    # GitHub reports an exhausted primary rate limit as 403 with
    # X-RateLimit-Remaining: 0.
    if status == 429 or (status == 403 and remaining == "0"):
        wait = _retry_after(response.headers)
        return CheckResult(
            provider,
            Failure.RATE_LIMITED,
            f"{url} answered {_status_text(response)}: rate limited"
            f"{wait}. The key was not checked.",
        )

    if status == 401:
        return _wrong_key(provider, url, response)

    detail = _server_message(response)
    detail = f": {detail}" if detail else ""
    if status == 403:
        return CheckResult(
            provider,
            Failure.EXPIRED_OR_FORBIDDEN,
            f"{url} answered 403 Forbidden{detail}. The key has expired or lacks "
            "the permission for this request; create a new one.",
        )

    return CheckResult(
        provider,
        Failure.UNEXPECTED_RESPONSE,
        f"{url} answered {_status_text(response)}{detail}.",
    )


def _network_failure(
    provider: str, url: str, error: httpx.TransportError, base_env: str
) -> CheckResult:
    reason = str(error) or type(error).__name__
    return CheckResult(
        provider,
        Failure.NO_NETWORK,
        f"cannot reach {url}: {reason}. Check the network connection, or "
        f"{base_env} if it points elsewhere.",
    )


def _retry_after(headers: Any) -> str:
    """Return ', retry after N seconds' from Retry-After or X-RateLimit-Reset."""
    lowered = {str(name).lower(): str(value) for name, value in dict(headers).items()}
    value = lowered.get("retry-after", "").strip()
    seconds: float | None = None
    if value.isdigit():
        seconds = float(value)
    elif value:
        with contextlib.suppress(TypeError, ValueError):
            seconds = parsedate_to_datetime(value).timestamp() - time.time()

    reset = lowered.get("x-ratelimit-reset", "").strip()
    if seconds is None and reset.isdigit():
        seconds = float(reset) - time.time()

    if seconds is None:
        return ""
    return f", retry after {max(0, round(seconds))} seconds"
