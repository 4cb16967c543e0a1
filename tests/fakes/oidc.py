"""A loopback OIDC issuer shaped like GitHub Actions' token service.

It has its own RSA key and serves the discovery document, the JWKS, and the
runner's token request endpoint (ACTIONS_ID_TOKEN_REQUEST_URL), which returns
``{"value": <jwt>}`` for a bearer request token and an ``audience`` parameter.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

REQUEST_TOKEN = "fake-actions-request-token"


def generate_key() -> rsa.RSAPrivateKey:
    """Generate an RSA key for signing test tokens."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class FakeOIDCIssuer:
    """An RS256 issuer on 127.0.0.1 with GitHub Actions-style claims."""

    def __init__(self, claims: dict[str, Any] | None = None) -> None:
        self.key = generate_key()
        self.kid = uuid.uuid4().hex[:16]
        self.claims = {
            "repository": "octo/widgets",
            "repository_id": "1001",
            "repository_owner": "octo",
            "repository_owner_id": "2002",
            "run_id": "3003",
            "run_attempt": "1",
            **(claims or {}),
        }
        self.token_lifetime_s = 300
        self.token_requests = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Return the issuer URL (also the ``iss`` claim)."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def request_url(self) -> str:
        """Return an ACTIONS_ID_TOKEN_REQUEST_URL that already has a query string."""
        return f"{self.url}/token?api-version=2.0"

    def start(self) -> FakeOIDCIssuer:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def jwks(self) -> dict[str, Any]:
        """Return the public key set."""
        jwk = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return {"keys": [jwk]}

    def mint(
        self,
        audience: str,
        lifetime_s: int | None = None,
        issued_at: float | None = None,
        issuer: str | None = None,
        key: rsa.RSAPrivateKey | None = None,
        **claims: Any,
    ) -> str:
        """Mint a signed token; keyword arguments override the default claims."""
        now = int(time.time() if issued_at is None else issued_at)
        lifetime = self.token_lifetime_s if lifetime_s is None else lifetime_s
        payload = {
            **self.claims,
            "iss": issuer or self.url,
            "aud": audience,
            "iat": now,
            "nbf": now - 5,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
            **claims,
        }
        payload = {name: value for name, value in payload.items() if value is not None}
        return jwt.encode(
            payload, key or self.key, algorithm="RS256", headers={"kid": self.kid}
        )

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                parts = urlsplit(self.path)
                if parts.path == "/.well-known/openid-configuration":
                    self._send(
                        200,
                        {
                            "issuer": issuer.url,
                            "jwks_uri": f"{issuer.url}/.well-known/jwks",
                            "id_token_signing_alg_values_supported": ["RS256"],
                        },
                    )
                elif parts.path == "/.well-known/jwks":
                    self._send(200, issuer.jwks())
                elif parts.path == "/token":
                    self._send_token(parse_qs(parts.query))
                else:
                    self._send(404, {"message": "Not Found"})

            def _send_token(self, query: dict[str, list[str]]) -> None:
                expected = f"bearer {REQUEST_TOKEN}"
                if self.headers.get("Authorization", "").lower() != expected.lower():
                    self._send(401, {"message": "Bad credentials"})
                    return
                audience = query.get("audience", [""])[0]
                issuer.token_requests += 1
                self._send(200, {"value": issuer.mint(audience)})

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        return Handler
