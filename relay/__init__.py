"""The callback relay: sandboxes post signed callbacks, CI jobs read them back."""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Mapping

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from relay.auth import Authenticator
from relay.config import RelayConfig, load_config
from relay.errors import RelayError
from relay.limits import RateLimiter
from relay.storage import StorageError, open_store
from relay.views import RelayState, bp

log = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}

__all__ = ["create_app", "load_config", "RelayConfig"]


def create_app(config: RelayConfig | Mapping[str, object] | None = None) -> Flask:
    """Build the relay app from RELAY_* variables, overridden by config.

    config is a RelayConfig, or a mapping of settings without the RELAY_ prefix
    (``{"PUBLIC_URL": "https://relay.example"}``). Raises ConfigError naming
    the variable when a setting is missing or invalid.
    """
    settings = config if isinstance(config, RelayConfig) else load_config(None, config)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body
    app.json.sort_keys = False
    if settings.proxy_hops:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=settings.proxy_hops, x_proto=settings.proxy_hops
        )

    store = open_store(settings.db_url, settings.db_pool_size)
    store.migrate()
    app.extensions["relay"] = RelayState(
        config=settings,
        store=store,
        auth=Authenticator(settings),
        limiter=RateLimiter(settings.rate_per_s, settings.rate_burst),
    )
    app.register_blueprint(bp)
    _install_request_log(app)
    _install_error_handlers(app)
    _install_gc(app, settings)

    @app.cli.command("gc")
    def gc_command() -> None:
        """Delete channels older than RELAY_RETENTION_S."""
        deleted = store.gc(int(time.time()), settings.retention_s)
        print(f"deleted {deleted} channels")

    return app


def _install_request_log(app: Flask) -> None:
    @app.before_request
    def assign_request_id() -> None:
        incoming = request.headers.get("X-Request-Id", "")
        g.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        g.started = time.monotonic()
        g.channel = "-"
        g.principal = "-"

    @app.after_request
    def log_request(response: Response) -> Response:
        request_id = g.get("request_id", "-")
        response.headers["X-Request-Id"] = request_id
        elapsed_ms = (time.monotonic() - g.get("started", time.monotonic())) * 1000
        # Only the method, route path and ids are logged: headers, bodies and
        # query strings can carry tokens and callback content.
        log.info(
            "request_id=%s method=%s path=%s status=%d channel=%s principal=%s ms=%.1f",
            request_id,
            request.method,
            request.path,
            response.status_code,
            g.get("channel", "-"),
            g.get("principal", "-"),
            elapsed_ms,
        )
        return response


def _error_response(status: int, code: str, detail: str) -> Response:
    response = jsonify(error=code, detail=detail, request_id=g.get("request_id", "-"))
    response.status_code = status
    return response


def _install_error_handlers(app: Flask) -> None:
    @app.errorhandler(RelayError)
    def relay_error(exc: RelayError) -> Response:
        log.info(
            "request_id=%s channel=%s error=%s status=%d detail=%s",
            g.get("request_id", "-"),
            g.get("channel", "-"),
            exc.code,
            exc.status,
            exc.detail,
        )
        response = _error_response(exc.status, exc.code, exc.detail)
        response.headers.update(exc.headers)
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = _HTTP_CODES.get(status, "http_error")
        if status == 413:
            detail = (
                f"the body exceeds RELAY_MAX_BODY={app.config['MAX_CONTENT_LENGTH']}"
            )
        else:
            detail = exc.description or exc.name
        log.info(
            "request_id=%s channel=%s error=%s status=%d",
            g.get("request_id", "-"),
            g.get("channel", "-"),
            code,
            status,
        )
        response = _error_response(status, code, detail)
        if status == 405 and exc.get_response().headers.get("Allow"):
            response.headers["Allow"] = exc.get_response().headers["Allow"]
        return response

    @app.errorhandler(StorageError)
    def storage_error(exc: StorageError) -> Response:
        log.error(
            "request_id=%s channel=%s storage failed: %s",
            g.get("request_id", "-"),
            g.get("channel", "-"),
            exc,
        )
        return _error_response(503, "storage_unavailable", "the database failed")

    @app.errorhandler(Exception)
    def internal_error(exc: Exception) -> Response:
        log.exception(
            "request_id=%s channel=%s unhandled error",
            g.get("request_id", "-"),
            g.get("channel", "-"),
        )
        return _error_response(500, "internal_error", "the relay hit an internal error")


def _install_gc(app: Flask, settings: RelayConfig) -> None:
    lock = threading.Lock()
    last_run = [0.0]

    @app.teardown_request
    def collect_garbage(_exc: BaseException | None) -> None:
        # Runs at most once per RELAY_GC_INTERVAL_S per process; the request
        # that triggers it pays for one DELETE before its response is sent.
        now = time.monotonic()
        if now - last_run[0] < settings.gc_interval_s or not lock.acquire(False):
            return
        try:
            last_run[0] = now
            app.extensions["relay"].store.gc(int(time.time()), settings.retention_s)
        except Exception:
            log.warning("garbage collection failed", exc_info=True)
        finally:
            lock.release()
