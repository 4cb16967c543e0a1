"""Job authentication: GitHub Actions OIDC tokens and static bearer tokens."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import threading
from dataclasses import dataclass

import httpx
import jwt

from relay.config import RelayConfig
from relay.errors import RelayError, bad_request, forbidden, unauthorized
from relay.storage import Channel

log = logging.getLogger(__name__)

_RUN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "repository_id", "run_id"]


@dataclass(frozen=True)
class Principal:
    """An authenticated job: which channels it owns and how to name it in logs."""

    kind: str
    subject: str
    owner_prefix: str
    channel_key: str | None = None

    def owner_key(self, run: object) -> str:
        """Return the channel owner key for this job.

        An OIDC job's key comes from its token's claims only; a static token
        names the run itself, inside the token's own namespace.
        """
        if self.channel_key is not None:
            return self.channel_key
        if not isinstance(run, str) or not _RUN.match(run):
            raise bad_request(
                "invalid_run",
                f"run {run!r} is invalid; a static token must send a JSON body "
                'like {"run": "my-run-1"} (letters, digits, ._:- up to 128)',
            )
        return self.owner_prefix + run

    def owns(self, channel: Channel) -> bool:
        """Whether this job may read, extend or close channel."""
        if self.channel_key is not None:
            return hmac.compare_digest(channel.owner_key, self.channel_key)
        return channel.owner_key.startswith(self.owner_prefix)


class Authenticator:
    """Check job bearer tokens against static tokens and OIDC issuers."""

    def __init__(self, config: RelayConfig) -> None:
        self.config = config
        self._clients: dict[str, jwt.PyJWKClient] = {}
        self._lock = threading.Lock()

    def authenticate(self, header: str | None) -> Principal:
        """Return the principal for an Authorization header or raise RelayError."""
        scheme, _, token = (header or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise unauthorized("send Authorization: Bearer <token>")

        for known in self.config.api_tokens:
            if hmac.compare_digest(known.encode(), token.encode()):
                fingerprint = hashlib.sha256(known.encode()).hexdigest()[:12]
                return Principal("token", f"token:{fingerprint}", f"tok:{fingerprint}:")

        if not self.config.oidc_enabled or token.count(".") != 2:
            raise unauthorized("the bearer token is not a known token")
        return self._verify_oidc(token)

    def _verify_oidc(self, token: str) -> Principal:
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError as exc:
            raise unauthorized("the bearer token is not a valid JWT") from exc
        issuer = unverified.get("iss")
        if issuer not in self.config.oidc_issuers:
            raise unauthorized(f"OIDC issuer {issuer!r} is not accepted")

        try:
            key = self._jwks_client(issuer).get_signing_key_from_jwt(token)
        except jwt.PyJWKClientConnectionError as exc:
            raise RelayError(
                503, "oidc_unavailable", f"cannot fetch the JWKS of {issuer!r}"
            ) from exc
        except jwt.PyJWKClientError as exc:
            raise unauthorized(f"no signing key of {issuer!r} matches: {exc}") from exc

        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=["RS256"],
                audience=self.config.public_url,
                issuer=issuer,
                leeway=60,
                options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.InvalidTokenError as exc:
            raise unauthorized(f"OIDC token rejected: {exc}") from exc

        owner_id = str(claims.get("repository_owner_id", ""))
        repo_id = str(claims["repository_id"])
        allowed = (
            owner_id in self.config.allowed_owner_ids
            or repo_id in self.config.allowed_repo_ids
        )
        if not allowed:
            raise forbidden(
                f"repository id {repo_id!r} (owner id {owner_id!r}) is not in "
                "RELAY_ALLOWED_REPO_IDS or RELAY_ALLOWED_OWNER_IDS"
            )

        attempt = str(claims.get("run_attempt", "1"))
        key_text = f"gh:{repo_id}:{claims['run_id']}:{attempt}"
        subject = str(claims.get("repository", repo_id))
        return Principal("oidc", subject, key_text + ":", channel_key=key_text)

    def _jwks_client(self, issuer: str) -> jwt.PyJWKClient:
        with self._lock:
            client = self._clients.get(issuer)
            if client is None:
                client = jwt.PyJWKClient(
                    _discover_jwks_uri(issuer), cache_jwk_set=True, lifespan=300
                )
                self._clients[issuer] = client
            return client


def _discover_jwks_uri(issuer: str) -> str:
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        response = httpx.get(url, timeout=5.0)
        response.raise_for_status()
        jwks_uri = response.json()["jwks_uri"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        log.warning("OIDC discovery failed for issuer %s: %s", issuer, exc)
        raise RelayError(
            503,
            "oidc_unavailable",
            f"cannot read the OIDC discovery document of {issuer!r}",
        ) from exc
    if not isinstance(jwks_uri, str):
        raise RelayError(
            503, "oidc_unavailable", f"discovery of {issuer!r} has no jwks_uri"
        )
    return jwks_uri
