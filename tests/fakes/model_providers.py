"""Loopback fakes of the model providers' model-listing endpoints.

Each fake serves the cheapest authenticated request of one provider (listing
models) with that provider's status codes and body shapes: a valid key gets a
one-model page, a wrong key gets the provider's own rejection. Gemini and xAI
answer a wrong key with 400, the others with 401. Point the provider's base
URL variable (``FakeModelProvider.base_url_env``) at ``base_url``.

Tests inject faults with ``fail_next`` and assert on ``requests``, which
records every request without its key header.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class ProviderShape:
    """The authentication and models response of one provider's API."""

    base_url_env: str
    # Appended to the server URL to form the base URL a client is given;
    # OpenAI-style clients expect the /v1 in the base URL.
    base_suffix: str
    path: str
    key_header: str
    key_prefix: str
    wrong_key_status: int
    wrong_key_body: dict[str, Any]
    models_body: dict[str, Any]


_OPENAI_STYLE_MODELS = {
    "object": "list",
    "data": [{"id": "model-1", "object": "model", "created": 0, "owned_by": "fake"}],
}

SHAPES = {
    "anthropic": ProviderShape(
        "ANTHROPIC_BASE_URL",
        "",
        "/v1/models",
        "x-api-key",
        "",
        401,
        {
            "type": "error",
            "error": {"type": "authentication_error", "message": "invalid x-api-key"},
        },
        {
            "data": [
                {
                    "type": "model",
                    "id": "claude-fake-1",
                    "display_name": "Claude Fake",
                    "created_at": "2025-01-01T00:00:00Z",
                }
            ],
            "has_more": False,
            "first_id": "claude-fake-1",
            "last_id": "claude-fake-1",
        },
    ),
    "openai": ProviderShape(
        "OPENAI_BASE_URL",
        "/v1",
        "/v1/models",
        "Authorization",
        "Bearer ",
        401,
        {
            "error": {
                "message": "Incorrect API key provided.",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
        },
        _OPENAI_STYLE_MODELS,
    ),
    "gemini": ProviderShape(
        "GOOGLE_GEMINI_BASE_URL",
        "",
        "/v1beta/models",
        "x-goog-api-key",
        "",
        400,
        {
            "error": {
                "code": 400,
                "message": "API key not valid. Please pass a valid API key.",
                "status": "INVALID_ARGUMENT",
                "details": [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                    }
                ],
            }
        },
        {
            "models": [{"name": "models/gemini-fake", "displayName": "Gemini Fake"}],
            "nextPageToken": "next",
        },
    ),
    "groq": ProviderShape(
        "GROQ_BASE_URL",
        "",
        "/openai/v1/models",
        "Authorization",
        "Bearer ",
        401,
        {
            "error": {
                "message": "Invalid API Key",
                "type": "invalid_request_error",
                "code": "invalid_api_key",
            }
        },
        _OPENAI_STYLE_MODELS,
    ),
    "mistral": ProviderShape(
        "MISTRAL_BASE_URL",
        "",
        "/v1/models",
        "Authorization",
        "Bearer ",
        401,
        {"message": "Unauthorized", "request_id": "fake"},
        _OPENAI_STYLE_MODELS,
    ),
    "xai": ProviderShape(
        "XAI_BASE_URL",
        "/v1",
        "/v1/models",
        "Authorization",
        "Bearer ",
        400,
        {
            "code": "Client specified an invalid argument",
            "error": "Incorrect API key provided. Obtain an API key from the console.",
        },
        _OPENAI_STYLE_MODELS,
    ),
}


@dataclass
class RecordedRequest:
    """One request as the fake received it, minus the key header."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


@dataclass
class _Fault:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class FakeModelProvider:
    """A threaded HTTP server on 127.0.0.1 that imitates one model provider."""

    def __init__(self, provider: str, api_key: str = "test-key") -> None:
        self.provider = provider
        self.shape = SHAPES[provider]
        self.api_key = api_key
        self.requests: list[RecordedRequest] = []
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), daemon=True
        )

    @property
    def url(self) -> str:
        """Return the server URL, such as ``http://127.0.0.1:PORT``."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        """Return the base URL to put into ``base_url_env``."""
        return self.url + self.shape.base_suffix

    @property
    def base_url_env(self) -> str:
        """Return the environment variable the provider's SDK reads its base from."""
        return self.shape.base_url_env

    def start(self) -> FakeModelProvider:
        """Start serving in a background thread and return self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FakeModelProvider:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def fail_next(
        self,
        status: int,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Fail the next request with ``status``, whatever its key."""
        payload = body if body is not None else {"error": {"message": f"{status}"}}
        with self._lock:
            self._faults.append(_Fault(status, payload, dict(headers or {})))

    def take_fault(self) -> _Fault | None:
        """Consume and return the next injected fault, if any."""
        with self._lock:
            return self._faults.pop(0) if self._faults else None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def fake(self) -> FakeModelProvider:
        return self.server.fake  # type: ignore[attr-defined]

    def do_GET(self) -> None:
        shape = self.fake.shape
        parts = urlsplit(self.path)
        headers = {
            name: value
            for name, value in self.headers.items()
            if name.lower() != shape.key_header.lower()
        }
        self.fake.requests.append(
            RecordedRequest("GET", parts.path, parse_qs(parts.query), headers)
        )

        fault = self.fake.take_fault()
        if fault is not None:
            self._send(fault.status, fault.body, fault.headers)
            return

        if parts.path != shape.path:
            self._send(404, {"error": {"message": f"No route for {parts.path}"}})
            return

        expected = shape.key_prefix + self.fake.api_key
        if self.headers.get(shape.key_header) != expected:
            self._send(shape.wrong_key_status, shape.wrong_key_body)
            return

        self._send(200, shape.models_body)

    def _send(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)
