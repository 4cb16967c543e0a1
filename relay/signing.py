"""Standard Webhooks signatures and per-sandbox secrets derived from relay keys."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

TOLERANCE_S = 300
SECRET_PREFIX = "whsec_"
TOKEN_PREFIX = "rly1_"


class SignatureError(Exception):
    """A callback's Standard Webhooks headers fail verification."""


def derive_secret(key: bytes, channel: str, sandbox: str) -> str:
    """Derive a sandbox's signing secret, so the database never stores one."""
    raw = hmac.new(key, f"rcb1|{channel}|{sandbox}".encode(), hashlib.sha256)
    return SECRET_PREFIX + base64.b64encode(raw.digest()).decode()


def derive_token(key: bytes, channel: str, sandbox: str) -> str:
    """Derive a sandbox's bearer token for the Tack ``/mail`` call shape."""
    raw = hmac.new(key, f"rcb1-mail|{channel}|{sandbox}".encode(), hashlib.sha256)
    return TOKEN_PREFIX + base64.urlsafe_b64encode(raw.digest()).decode().rstrip("=")


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """Return the ``webhook-signature`` value (``v1,<base64>``) for one attempt."""
    key = _secret_bytes(secret)
    content = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(
    secret: str,
    webhook_id: str,
    timestamp: str,
    signature_header: str,
    body: bytes,
    now: float | None = None,
    tolerance_s: int = TOLERANCE_S,
) -> int:
    """Verify the signature over the raw body and return the signed timestamp.

    Raises SignatureError when a header is missing, the timestamp is outside
    the tolerance, or no v1 signature matches.
    """
    if not webhook_id or not timestamp or not signature_header:
        raise SignatureError(
            "missing webhook-id, webhook-timestamp or webhook-signature header"
        )
    try:
        sent_at = int(timestamp)
    except ValueError as exc:
        raise SignatureError(
            f"webhook-timestamp {timestamp!r} is not Unix seconds"
        ) from exc

    current = time.time() if now is None else now
    if abs(current - sent_at) > tolerance_s:
        raise SignatureError(
            f"webhook-timestamp {sent_at!r} is more than {tolerance_s} s from the "
            "relay's clock; sign each attempt with the current time"
        )

    expected = sign(secret, webhook_id, sent_at, body).split(",", 1)[1]
    # The header is a space-separated list so senders can rotate secrets; any
    # v1 entry that matches is enough.
    for entry in signature_header.split():
        version, _, value = entry.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return sent_at
    raise SignatureError("no v1 signature in webhook-signature matches the body")


def _secret_bytes(secret: str) -> bytes:
    encoded = secret.removeprefix(SECRET_PREFIX)
    return base64.b64decode(encoded)
