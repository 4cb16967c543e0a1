"""gunicorn settings for the relay: threaded workers, long-poll friendly.

Run: gunicorn -c relay/gunicorn.conf.py 'relay:create_app()'
"""

from __future__ import annotations

import os
import sys

from tack_action.errors import ConfigError

bind = os.environ.get("RELAY_BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")

# gthread, not gevent: sqlite3 calls block a gevent loop. Each waiting
# long-poll or open SSE stream holds one thread.
worker_class = "gthread"
workers = int(os.environ.get("RELAY_WORKERS", "2"))
threads = int(os.environ.get("RELAY_THREADS", "32"))

# Equal to threads so one worker does not queue long-polls while another
# worker has idle threads. gunicorn warns that this leaves no room for idle
# keep-alive connections, which is the intended trade-off.
worker_connections = threads

# The runtime control socket is not used; gunicornc stays off.
control_socket_disable = True

# For gthread, timeout only detects a worker that stopped heart-beating; the
# long-poll wait (RELAY_MAX_WAIT_S, 25 s) stays below graceful_timeout so
# in-flight polls finish on restart.
timeout = 60
graceful_timeout = 30
keepalive = 5

# SQLite is not fork-safe: every worker builds the app and opens its own
# connection after fork.
preload_app = False

accesslog = None
errorlog = "-"
loglevel = os.environ.get("RELAY_LOG_LEVEL", "info")
forwarded_allow_ips = os.environ.get("RELAY_FORWARDED_ALLOW_IPS", "127.0.0.1")

logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    },
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "stream": "ext://sys.stderr",
        }
    },
    "root": {"level": "WARNING", "handlers": ["stderr"]},
    "loggers": {"relay": {"level": loglevel.upper()}},
}


def on_starting(server: object) -> None:
    """Check RELAY_* settings in the master, so bad config stops start-up once."""
    from relay.config import load_config

    try:
        load_config()
    except ConfigError as exc:
        print(f"relay: invalid configuration: {exc}", file=sys.stderr)
        sys.exit(2)
