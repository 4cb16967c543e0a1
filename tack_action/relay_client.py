"""Job-side client for the callback relay: open a channel, mint sandbox
credentials and read events from a cursor."""

from __future__ import annotations

import base64
import json
import logging
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from tack_action.errors import TackError

log = logging.getLogger(__name__)

_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class RelayClientError(TackError):
    """The relay rejected a request or stayed unreachable after retries."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TokenSource(Protocol):
    """Something that returns a bearer token for the relay's job API."""

    def token(self, force: bool = False) -> str:
        """Return a valid token; force=True mints a new one where possible."""
        ...


class StaticToken:
    """A fixed bearer token from RELAY_API_TOKENS, for self-hosted and local use."""

    def __init__(self, token: str) -> None:
        self._token = token

    def token(self, force: bool = False) -> str:
        """Return the token."""
        return self._token


class ActionsOIDCToken:
    """GitHub Actions OIDC tokens for the relay's audience, re-minted before expiry.

    GitHub's tokens live about 5 minutes, so a cached token is replaced once it
    is within refresh_margin_s of its ``exp`` claim.
    """

    def __init__(
        self,
        request_url: str,
        request_token: str,
        audience: str,
        refresh_margin_s: float = 60.0,
        http: httpx.Client | None = None,
    ) -> None:
        self.request_url = request_url
        self.audience = audience
        self.refresh_margin_s = refresh_margin_s
        self._request_token = request_token
        self._http = http or httpx.Client(timeout=15)
        self._cached: str | None = None
        self._expires_at = 0.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str], audience: str) -> ActionsOIDCToken:
        """Build from the runner's ACTIONS_ID_TOKEN_REQUEST_* variables."""
        url = environ.get("ACTIONS_ID_TOKEN_REQUEST_URL", "")
        token = environ.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "")
        if not url or not token:
            raise RelayClientError(
                "ACTIONS_ID_TOKEN_REQUEST_URL or ACTIONS_ID_TOKEN_REQUEST_TOKEN is "
                "missing; give the job `permissions: id-token: write`, or use a "
                "static relay token"
            )
        return cls(url, token, audience)

    def token(self, force: bool = False) -> str:
        """Return a cached token, minting a new one when it is about to expire."""
        fresh = time.time() < self._expires_at - self.refresh_margin_s
        if self._cached is not None and fresh and not force:
            return self._cached

        # The request URL already carries a query string.
        url = f"{self.request_url}&audience={quote(self.audience, safe='')}"
        headers = {"Authorization": f"bearer {self._request_token}"}
        try:
            response = self._http.get(url, headers=headers)
            response.raise_for_status()
            value = response.json()["value"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise RelayClientError(
                f"cannot mint a GitHub Actions OIDC token for audience "
                f"{self.audience!r}: {exc}"
            ) from exc
        self._cached = str(value)
        self._expires_at = _jwt_expiry(self._cached)
        log.debug("minted an OIDC token that expires at %d", self._expires_at)
        return self._cached


@dataclass(frozen=True)
class ChannelInfo:
    """A run's relay channel."""

    channel: str
    callback_url: str
    state: str
    expires_at: int
    last_seq: int


@dataclass(frozen=True)
class SandboxCredentials:
    """Credentials a sandbox posts callbacks with; secret and token are secrets."""

    sandbox: str
    callback_url: str
    mail_url: str
    secret: str
    token: str


@dataclass(frozen=True)
class RelayEvent:
    """One callback as the relay stored it."""

    seq: int
    id: str
    sandbox: str
    type: str
    received_at: float
    data: Any


@dataclass(frozen=True)
class EventPage:
    """One long-poll response: events, the next cursor and the channel state."""

    events: list[RelayEvent]
    next_after: int
    channel_state: str


class CursorFile:
    """The last processed seq, kept in a file so a restarted job resumes there."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def load(self) -> int:
        """Return the saved cursor, or 0 when none is saved."""
        try:
            return int(self.path.read_text().strip() or "0")
        except FileNotFoundError:
            return 0

    def save(self, seq: int) -> None:
        """Write the cursor atomically (write a temporary file, then rename)."""
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(f"{seq}\n")
        os.replace(temporary, self.path)


class RelayClient:
    """The CI job's side of the relay protocol, with retries and backoff."""

    def __init__(
        self,
        base_url: str,
        tokens: TokenSource,
        http: httpx.Client | None = None,
        max_attempts: int = 8,
        backoff_s: float = 0.5,
        max_backoff_s: float = 15.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.tokens = tokens
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._sleep = sleep
        self._http = http or httpx.Client(timeout=15)

    def open_channel(self, run: str | None = None) -> ChannelInfo:
        """Open (or reopen, idempotently) this job's channel.

        With OIDC the relay keys the channel on the token's repository, run id
        and attempt and ignores run; a static token must name the run.
        """
        body = {"run": run} if run is not None else {}
        data = self._request("POST", "/v1/runs", json=body)
        return ChannelInfo(
            channel=data["channel"],
            callback_url=data["callback_url"],
            state=data["state"],
            expires_at=int(data["expires_at"]),
            last_seq=int(data["last_seq"]),
        )

    def create_sandbox(
        self, channel: str, name: str | None = None
    ) -> SandboxCredentials:
        """Mint a sandbox's callback URL, signing secret and bearer token."""
        body = {"name": name} if name is not None else {}
        data = self._request("POST", f"/v1/runs/{channel}/sandboxes", json=body)
        return SandboxCredentials(
            sandbox=data["sandbox"],
            callback_url=data["callback_url"],
            mail_url=data["mail_url"],
            secret=data["secret"],
            token=data["token"],
        )

    def poll(
        self, channel: str, after: int, wait: int = 25, limit: int = 100
    ) -> EventPage:
        """Return events after the cursor, waiting up to wait seconds for one."""
        params = {"after": after, "wait": wait, "limit": limit}
        data = self._request(
            "GET",
            f"/v1/runs/{channel}/events",
            params=params,
            timeout=wait + 15,
        )
        events = [
            RelayEvent(
                seq=int(item["seq"]),
                id=item["id"],
                sandbox=item["sandbox"],
                type=item["type"],
                received_at=float(item["received_at"]),
                data=item["data"],
            )
            for item in data["events"]
        ]
        return EventPage(events, int(data["next_after"]), data["channel_state"])

    def iter_events(
        self,
        channel: str,
        cursor: CursorFile | int = 0,
        wait: int = 25,
        stop: Callable[[], bool] | None = None,
    ) -> Iterator[RelayEvent]:
        """Yield events from the cursor until the channel is closed and drained.

        With a CursorFile, each event's seq is saved when the caller asks for
        the next one, so a job that crashes mid-event receives that event again.
        """
        after = cursor.load() if isinstance(cursor, CursorFile) else cursor
        while stop is None or not stop():
            page = self.poll(channel, after, wait=wait)
            for event in page.events:
                yield event
                after = event.seq
                if isinstance(cursor, CursorFile):
                    cursor.save(after)
            if not page.events and page.channel_state != "open":
                return

    def close_channel(self, channel: str) -> None:
        """Close the channel; later callbacks get 410."""
        self._request("DELETE", f"/v1/runs/{channel}")

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def _request(
        self,
        method: str,
        path: str,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        reminted = False
        for attempt in range(1, self.max_attempts + 1):
            headers = {"Authorization": f"Bearer {self.tokens.token(force=reminted)}"}
            try:
                response = self._http.request(
                    method,
                    self.base_url + path,
                    headers=headers,
                    timeout=timeout
                    if timeout is not None
                    else httpx.USE_CLIENT_DEFAULT,
                    **kwargs,
                )
            except httpx.TransportError as exc:
                if attempt == self.max_attempts:
                    raise RelayClientError(
                        f"relay {self.base_url!r} is unreachable after "
                        f"{attempt} attempts: {exc}"
                    ) from exc
                self._back_off(attempt, None, f"{method} {path}: {exc}")
                continue

            if response.status_code == 401 and not reminted:
                # OIDC tokens expire after minutes; mint once more and retry.
                reminted = True
                continue
            if response.status_code in _RETRY_STATUSES and attempt < self.max_attempts:
                retry_after = response.headers.get("Retry-After")
                self._back_off(
                    attempt, retry_after, f"{method} {path}: {response.status_code}"
                )
                continue
            if response.is_success:
                return response.json()
            raise RelayClientError(
                f"relay returned {response.status_code} for {method} {path}: "
                f"{_detail(response)}",
                status=response.status_code,
            )
        raise RelayClientError(
            f"relay kept rejecting {method} {path} after {self.max_attempts} attempts"
        )

    def _back_off(self, attempt: int, retry_after: str | None, reason: str) -> None:
        delay = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
        delay = random.uniform(delay / 2, delay)
        if retry_after is not None and retry_after.isdigit():
            delay = max(delay, float(retry_after))
        log.warning(
            "relay request failed (%s); retry %d in %.1f s", reason, attempt, delay
        )
        self._sleep(delay)


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text))
    except ValueError:
        return response.text[:200]


def _jwt_expiry(token: str) -> float:
    # The relay verifies the signature; here only exp is read, to know when to
    # mint again.
    try:
        payload = token.split(".")[1]
        padded = payload + "=" * (-len(payload) % 4)
        return float(json.loads(base64.urlsafe_b64decode(padded))["exp"])
    except (IndexError, ValueError, KeyError, TypeError) as exc:
        raise RelayClientError(
            "the minted OIDC token has no readable exp claim"
        ) from exc
