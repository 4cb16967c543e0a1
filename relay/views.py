"""HTTP routes: health, the job API and the callback API."""

from __future__ import annotations

import hmac
import json
import logging
import re
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request

from relay import signing
from relay.auth import Authenticator, Principal
from relay.config import RelayConfig
from relay.errors import (
    RelayError,
    bad_request,
    gone,
    not_found,
    too_many_requests,
    unauthorized,
)
from relay.limits import RateLimiter, retry_after_seconds
from relay.schemas import parse_callback, parse_mail
from relay.storage import (
    Channel,
    ChannelClosed,
    ChannelNotFound,
    Event,
    QuotaExceeded,
    StorageError,
    Store,
)

log = logging.getLogger(__name__)

bp = Blueprint("relay", __name__)

_SANDBOX = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_WEBHOOK_ID = re.compile(r"^[\x21-\x7e]{1,256}$")
_MAX_LIMIT = 500
_PING_EVERY_S = 15.0


@dataclass
class RelayState:
    """Objects one app instance shares between requests."""

    config: RelayConfig
    store: Store
    auth: Authenticator
    limiter: RateLimiter


def state() -> RelayState:
    """Return the current app's relay state."""
    return current_app.extensions["relay"]


@bp.get("/healthz")
def healthz() -> Response:
    """Return 200 while the process runs, without touching the database."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> Response:
    """Readiness: the database is reachable and writable."""
    try:
        state().store.ping()
    except StorageError as exc:
        log.warning("readiness check failed: %s", exc)
        raise RelayError(503, "not_ready", "the database is not reachable") from exc
    return jsonify(status="ok")


# --- job API -------------------------------------------------------------


@bp.post("/v1/runs")
def open_run() -> tuple[Response, int]:
    """Open the calling job's channel, or return it when it already exists."""
    relay = state()
    principal = _authenticate()
    body = request.get_json(silent=True) if request.content_length else None
    run = body.get("run") if isinstance(body, dict) else None
    owner_key = principal.owner_key(run)

    channel_id = secrets.token_urlsafe(16)
    channel, created = relay.store.open_channel(
        channel_id, owner_key, int(time.time()), relay.config.channel_ttl_s
    )
    g.channel = channel.id
    if created:
        log.info("opened channel %s for %s", channel.id, principal.subject)
    return jsonify(_channel_json(relay.config, channel)), 201 if created else 200


@bp.get("/v1/runs/<channel_id>")
def get_run(channel_id: str) -> Response:
    """Describe one of the caller's channels."""
    relay = state()
    channel = _owned_channel(channel_id, _authenticate())
    return jsonify(_channel_json(relay.config, channel))


@bp.delete("/v1/runs/<channel_id>")
def close_run(channel_id: str) -> Response:
    """Close a channel; later callbacks get 410 and reads still drain it."""
    relay = state()
    _owned_channel(channel_id, _authenticate())
    channel = relay.store.close_channel(channel_id, int(time.time()))
    log.info("closed channel %s at seq %d", channel_id, channel.last_seq)
    return jsonify(_channel_json(relay.config, channel))


@bp.post("/v1/runs/<channel_id>/sandboxes")
def create_sandbox(channel_id: str) -> tuple[Response, int]:
    """Issue a sandbox's callback URL, signing secret and bearer token."""
    relay = state()
    _owned_channel(channel_id, _authenticate())
    body = request.get_json(silent=True) if request.content_length else None
    name = body.get("name") if isinstance(body, dict) else None
    if name is None:
        name = "sb-" + secrets.token_hex(6)
    if not isinstance(name, str) or not _SANDBOX.match(name):
        raise bad_request(
            "invalid_sandbox",
            f"sandbox name {name!r} is invalid; use 1-64 letters, digits, _ or -",
        )

    try:
        kid = relay.store.add_sandbox(
            channel_id,
            name,
            relay.config.current_kid,
            int(time.time()),
            relay.config.sandbox_limit,
        )
    except ChannelClosed as exc:
        raise gone(f"channel {channel_id!r} is closed or expired") from exc
    except QuotaExceeded as exc:
        raise RelayError(
            409,
            "sandbox_limit",
            f"channel {channel_id!r} reached RELAY_SANDBOX_LIMIT="
            f"{relay.config.sandbox_limit}",
        ) from exc
    key = relay.config.callback_keys.get(kid)
    if key is None:
        raise RelayError(
            409,
            "key_retired",
            f"sandbox {name!r} was issued under retired key {kid!r}; use a new name",
        )

    url = f"{relay.config.public_url}/v1/callbacks/{channel_id}/{name}"
    payload = {
        "sandbox": name,
        "callback_url": url,
        "mail_url": url + "/mail",
        "secret": signing.derive_secret(key, channel_id, name),
        "token": signing.derive_token(key, channel_id, name),
    }
    return jsonify(payload), 201


@bp.get("/v1/runs/<channel_id>/events")
def list_events(channel_id: str) -> Response:
    """Long-poll for events after a cursor; the cursor is the acknowledgement."""
    relay = state()
    channel = _owned_channel(channel_id, _authenticate())
    after = _int_arg("after", 0, 0, 2**62)
    wait = _int_arg("wait", 0, 0, relay.config.max_wait_s)
    limit = _int_arg("limit", 100, 1, _MAX_LIMIT)

    if wait and channel.is_open(time.time()):
        events = relay.store.wait(
            channel_id, after, limit, wait, relay.config.poll_interval_s
        )
    else:
        events = relay.store.read(channel_id, after, limit)
    channel = relay.store.get_channel(channel_id) or channel

    payload = {
        "events": [_event_json(event) for event in events],
        "next_after": events[-1].seq if events else after,
        "channel_state": channel.public_state(time.time()),
    }
    return jsonify(payload)


@bp.get("/v1/runs/<channel_id>/stream")
def stream_events(channel_id: str) -> Response:
    """Serve events as Server-Sent Events, resuming after Last-Event-ID."""
    relay = state()
    _owned_channel(channel_id, _authenticate())
    header = request.headers.get("Last-Event-ID")
    if header is not None and header.strip().isdigit():
        after = int(header)
    else:
        after = _int_arg("after", 0, 0, 2**62)

    body = _sse_lines(relay, channel_id, after)
    response = Response(body, mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    # nginx buffers responses by default, which would delay events.
    response.headers["X-Accel-Buffering"] = "no"
    return response


def _sse_lines(relay: RelayState, channel_id: str, after: int) -> Iterator[str]:
    # The stream ends after stream_max_s so the client reconnects and its token
    # is checked again; it resumes with Last-Event-ID.
    deadline = time.monotonic() + relay.config.stream_max_s
    yield "retry: 2000\n\n"
    while time.monotonic() < deadline:
        events = relay.store.read(channel_id, after, 100)
        if not events:
            channel = relay.store.get_channel(channel_id)
            if channel is None or not channel.is_open(time.time()):
                yield "event: end\ndata: {}\n\n"
                return
            remaining = deadline - time.monotonic()
            events = relay.store.wait(
                channel_id,
                after,
                100,
                max(0.0, min(_PING_EVERY_S, remaining)),
                relay.config.poll_interval_s,
            )
        if not events:
            yield ": ping\n\n"
        for event in events:
            data = json.dumps(_event_json(event), separators=(",", ":"))
            yield f"id: {event.seq}\nevent: {event.type}\ndata: {data}\n\n"
            after = event.seq


# --- callback API --------------------------------------------------------


@bp.post("/v1/callbacks/<channel_id>/<sandbox>")
def receive_callback(channel_id: str, sandbox: str) -> Response:
    """Store a Standard Webhooks callback and return 200 only after the commit."""
    relay = state()
    g.channel = channel_id
    body = request.get_data(cache=True)
    channel = _open_channel(relay, channel_id)
    key = _sandbox_key(relay, channel, sandbox)

    webhook_id = request.headers.get("webhook-id", "")
    try:
        signing.verify(
            signing.derive_secret(key, channel_id, sandbox),
            webhook_id,
            request.headers.get("webhook-timestamp", ""),
            request.headers.get("webhook-signature", ""),
            body,
        )
    except signing.SignatureError as exc:
        raise RelayError(401, "invalid_signature", str(exc)) from exc
    if not _WEBHOOK_ID.match(webhook_id):
        raise bad_request("invalid_webhook_id", "webhook-id must be 1-256 ASCII chars")

    # Authenticated but invalid bodies count against the rate too, so a
    # runaway sandbox cannot flood the relay with rejected requests.
    _check_rate(relay, channel_id)
    event_type, _ = parse_callback(body)
    seq, duplicate = _store(relay, channel_id, webhook_id, sandbox, event_type, body)
    return jsonify(seq=seq, duplicate=duplicate)


@bp.post("/v1/callbacks/<channel_id>/<sandbox>/mail")
def receive_mail(channel_id: str, sandbox: str) -> Response:
    """Accept Tack's ``POST {TACK_DAEMON_URL}/mail`` with a bearer token."""
    relay = state()
    g.channel = channel_id
    body = request.get_data(cache=True)
    channel = _open_channel(relay, channel_id)
    key = _sandbox_key(relay, channel, sandbox)

    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    expected = signing.derive_token(key, channel_id, sandbox)
    valid = scheme.lower() == "bearer" and hmac.compare_digest(
        token.strip().encode(), expected.encode()
    )
    if not valid:
        raise unauthorized("the bearer token does not match this sandbox")

    _check_rate(relay, channel_id)
    parse_mail(body)
    # Tack's agent sends no message id, so only an Idempotency-Key header
    # makes a retry land on the same event.
    idempotency_key = request.headers.get("Idempotency-Key", "")
    if _WEBHOOK_ID.match(idempotency_key):
        webhook_id = "mail:" + idempotency_key
    else:
        webhook_id = "mail:" + uuid.uuid4().hex
    seq, _ = _store(relay, channel_id, webhook_id, sandbox, "mail", body)
    return jsonify(status="ok", id=seq)


@bp.get("/v1/callbacks/<channel_id>/<sandbox>/health")
def callback_health(channel_id: str, sandbox: str) -> Response:
    """Return 200 for Tack's unauthenticated ``GET {TACK_DAEMON_URL}/health``."""
    return jsonify(status="ok")


# --- helpers -------------------------------------------------------------


def _authenticate() -> Principal:
    principal = state().auth.authenticate(request.headers.get("Authorization"))
    g.principal = principal.subject
    return principal


def _owned_channel(channel_id: str, principal: Principal) -> Channel:
    g.channel = channel_id
    channel = state().store.get_channel(channel_id)
    # Another job's channel answers exactly like a missing one, so ids cannot
    # be probed.
    if channel is None or not principal.owns(channel):
        raise not_found(f"channel {channel_id!r} does not exist")
    return channel


def _open_channel(relay: RelayState, channel_id: str) -> Channel:
    channel = relay.store.get_channel(channel_id)
    if channel is None:
        raise not_found(f"channel {channel_id!r} does not exist")
    if not channel.is_open(time.time()):
        raise gone(f"channel {channel_id!r} is closed or expired; stop sending")
    return channel


def _sandbox_key(relay: RelayState, channel: Channel, sandbox: str) -> bytes:
    kid = relay.store.get_sandbox_kid(channel.id, sandbox)
    key = relay.config.callback_keys.get(kid) if kid is not None else None
    if key is None:
        raise unauthorized(f"sandbox {sandbox!r} has no credentials on this channel")
    return key


def _check_rate(relay: RelayState, channel_id: str) -> None:
    wait_s = relay.limiter.acquire(channel_id)
    if wait_s > 0:
        raise too_many_requests(
            "rate_limited",
            f"channel {channel_id!r} exceeds RELAY_RATE_PER_S="
            f"{relay.config.rate_per_s}",
            retry_after_seconds(wait_s),
        )


def _store(
    relay: RelayState,
    channel_id: str,
    webhook_id: str,
    sandbox: str,
    event_type: str,
    body: bytes,
) -> tuple[int, bool]:
    try:
        result = relay.store.append(
            channel_id,
            webhook_id,
            sandbox,
            event_type,
            body,
            time.time(),
            relay.config.channel_quota,
        )
    except ChannelNotFound as exc:
        raise not_found(f"channel {channel_id!r} does not exist") from exc
    except ChannelClosed as exc:
        raise gone(
            f"channel {channel_id!r} is closed or expired; stop sending"
        ) from exc
    except QuotaExceeded as exc:
        raise too_many_requests(
            "quota_exceeded",
            f"channel {channel_id!r} holds RELAY_CHANNEL_QUOTA="
            f"{relay.config.channel_quota} events",
            relay.config.channel_ttl_s,
        ) from exc
    return result.seq, result.duplicate


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise bad_request(
            "invalid_parameter", f"{name}={raw!r} is not a whole number"
        ) from exc
    if not low <= value <= high:
        raise bad_request(
            "invalid_parameter", f"{name}={value!r} is outside {low}..{high}"
        )
    return value


def _channel_json(config: RelayConfig, channel: Channel) -> dict[str, Any]:
    return {
        "channel": channel.id,
        "callback_url": f"{config.public_url}/v1/callbacks/{channel.id}",
        "state": channel.public_state(time.time()),
        "created_at": channel.created_at,
        "expires_at": channel.expires_at,
        "last_seq": channel.last_seq,
    }


def _event_json(event: Event) -> dict[str, Any]:
    document = json.loads(event.body)
    data = document if event.type == "mail" else document.get("data")
    return {
        "seq": event.seq,
        "id": event.webhook_id,
        "sandbox": event.sandbox,
        "type": event.type,
        "received_at": event.received_at_ms / 1000,
        "data": data,
    }
