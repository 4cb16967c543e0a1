"""Relay callbacks as one stream of orchestration events.

Sandboxes post progress and completion to the relay; a background thread
long-polls the objective's channel and turns each callback into a watch line.
Callbacks are hints only: completion is always confirmed from the sandbox
itself, so a lost callback costs latency, never correctness.
"""

from __future__ import annotations

import logging
import os
import threading

from .config import TackConfig
from .context import RunContext
from .errors import TackError
from .relay_client import ActionsOIDCToken, RelayClient, StaticToken

log = logging.getLogger(__name__)

# Seconds one long-poll waits; below common proxy idle timeouts.
POLL_WAIT_S = 20


def relay_url(config: TackConfig) -> str:
    """Return the relay base URL: ``$TACK_RELAY_URL`` or ``daemon.external_url``."""
    return (os.environ.get("TACK_RELAY_URL") or config.daemon.external_url).rstrip("/")


def make_relay(config: TackConfig) -> RelayClient | None:
    """Return a relay client when a relay is configured and the job can sign in.

    In GitHub Actions the job proves itself with its OIDC token, minted for
    the relay's URL as audience. Elsewhere ``$TACK_RELAY_TOKEN`` is a static
    token from the relay's ``RELAY_API_TOKENS``.
    """
    url = relay_url(config)
    if not url:
        return None
    if os.environ.get("ACTIONS_ID_TOKEN_REQUEST_URL"):
        return RelayClient(url, ActionsOIDCToken.from_env(os.environ, audience=url))
    token = os.environ.get("TACK_RELAY_TOKEN")
    if token:
        return RelayClient(url, StaticToken(token))
    log.warning(
        "relay %s is configured but no credential is available; set "
        "TACK_RELAY_TOKEN or grant the job id-token: write. Polling sandboxes only.",
        url,
    )
    return None


def open_channel(ctx: RunContext) -> None:
    """Open this run's relay channel and remember it in the state.

    Opening is idempotent for one job, so every run opens it again. A job that
    signs in with its OIDC token owns only the channel of its own run id and
    attempt, so a later run (``/tack approve``, ``/tack resume``) gets a new
    channel and reads it from the start. Events left unread on the previous
    channel are only hints, which the sandbox state already confirms.
    """
    if ctx.relay is None:
        return
    try:
        info = ctx.relay.open_channel(run=ctx.objective.id)
    except TackError as exc:
        log.warning("relay channel could not be opened; polling only: %s", exc)
        ctx.relay = None
        return
    with ctx.locked() as objective:
        if objective.relay_channel != info.channel:
            if objective.relay_channel:
                log.info(
                    "relay channel %s replaces %s for this run",
                    info.channel,
                    objective.relay_channel,
                )
            objective.relay_channel = info.channel
            objective.relay_cursor = 0


class RelayListener:
    """A daemon thread that turns relay callbacks into watch lines."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="relay", daemon=True)

    def __enter__(self) -> RelayListener:
        if self.ctx.relay is not None and self.ctx.objective.relay_channel:
            self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()

    def _run(self) -> None:
        ctx = self.ctx
        assert ctx.relay is not None and ctx.objective.relay_channel
        channel = ctx.objective.relay_channel
        after = ctx.objective.relay_cursor
        while not self._stop.is_set():
            try:
                page = ctx.relay.poll(channel, after, wait=POLL_WAIT_S)
            except TackError as exc:
                log.warning("relay poll failed on channel %s: %s", channel, exc)
                self._stop.wait(5)
                continue
            for event in page.events:
                self._show(event.type, event.sandbox, event.data)
                after = event.seq
            if page.events:
                with ctx.locked() as objective:
                    objective.relay_cursor = after
            if page.channel_state != "open":
                return

    def _show(self, kind: str, sandbox: str, data: object) -> None:
        details = data if isinstance(data, dict) else {}
        agent = details.get("agent") or sandbox
        if kind == "agent.progress":
            for line in (details.get("lines") or [])[-5:]:
                log.debug("relay %s: %s", agent, line)
        elif kind == "agent.finished":
            status = details.get("status", "finished")
            self.ctx.emit(f"relay: {agent} {status}")
