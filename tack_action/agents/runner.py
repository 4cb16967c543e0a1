"""Run one coding agent inside a sandbox and report it to the callback relay.

This file is uploaded into the sandbox with ``transcript.py`` next to it and
run as::

    python3 runner.py --name NAME --format FORMAT --log LOG --exit-file EXIT \
        -- 'AGENT COMMAND'

It needs only the Python 3 standard library. It starts the agent command with
bash, copies the agent's output to its own stdout and to ``--log``, and writes
the agent's exit status to ``--exit-file`` before it exits with that status.

When ``TACK_DAEMON_URL`` and ``TACK_CALLBACK_SECRET`` are both set, it also
posts Standard Webhooks-signed callbacks to ``TACK_DAEMON_URL``: batches of
activity lines as ``agent.progress`` events and one ``agent.finished`` event.
Each post is retried with exponential backoff, a 429 answer's Retry-After is
honoured, and a 410 answer (channel closed) stops all further posts. The
secret is removed from the agent's environment. Callbacks are hints: the
orchestrator confirms completion from the exit status file or the command.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid

if __package__:
    from .transcript import SESSION_EVENT, TranscriptReader
else:  # run as a script inside the sandbox, next to transcript.py
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from transcript import SESSION_EVENT, TranscriptReader  # type: ignore[no-redef]

logger = logging.getLogger("tack-runner")

URL_VARIABLE = "TACK_DAEMON_URL"
SECRET_VARIABLE = "TACK_CALLBACK_SECRET"

# Progress lines sent in one agent.progress event, and the most kept waiting
# while the relay is unreachable; older lines are dropped first.
BATCH_MAX_LINES = 20
PENDING_MAX_LINES = 500

BACKOFF_MAX_S = 30.0
REQUEST_TIMEOUT_S = 10.0

# Statuses worth another attempt; any other 4xx means the event is rejected.
_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class CallbackSender:
    """Posts signed events to one callback URL, with retries."""

    def __init__(self, url: str, secret: str, *, retry_base_s: float = 0.5) -> None:
        self.url = url
        self.retry_base_s = retry_base_s
        self.gone = False
        self._key = base64.b64decode(secret.removeprefix("whsec_"))

    def post(self, event_type: str, data: dict, deadline: float) -> bool:
        """Send one event until it is stored, rejected, gone or past ``deadline``."""
        body = json.dumps({"type": event_type, "data": data}).encode()
        # One id for every attempt, so the relay stores a retried event once.
        webhook_id = f"msg_{uuid.uuid4().hex}"
        attempt = 0
        while not self.gone:
            delay = self._attempt(webhook_id, body, attempt)
            if delay is None:
                return True
            if delay < 0:
                return False
            attempt += 1
            if time.monotonic() + delay > deadline:
                logger.warning(
                    "gave up on %s %s after %d attempts",
                    event_type,
                    webhook_id,
                    attempt,
                )
                return False
            time.sleep(delay)
        return False

    def _attempt(self, webhook_id: str, body: bytes, attempt: int) -> float | None:
        """Post once. Return None on success, -1 to stop, else the retry delay."""
        # Imported here because they slow the runner's start by a tenth of a
        # second, and most sessions without a relay never need them.
        import http.client
        import urllib.error
        import urllib.request

        timestamp = int(time.time())
        content = f"{webhook_id}.{timestamp}.".encode() + body
        digest = hmac.new(self._key, content, hashlib.sha256).digest()
        headers = {
            "Content-Type": "application/json",
            "webhook-id": webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": "v1," + base64.b64encode(digest).decode(),
        }
        request = urllib.request.Request(
            self.url, data=body, headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S):
                return None
        except urllib.error.HTTPError as exc:
            status = exc.code
            retry_after = _retry_after(exc.headers.get("Retry-After"))
            exc.close()
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            logger.info("callback attempt %d failed: %s", attempt + 1, exc)
            return self._backoff(attempt)

        if status == 410:
            logger.warning("the relay channel is closed (410); sending no more")
            self.gone = True
            return -1
        if status not in _RETRY_STATUSES:
            logger.warning("the relay rejected event %s with %d", webhook_id, status)
            return -1
        logger.info("callback attempt %d answered %d", attempt + 1, status)
        if status == 429 and retry_after is not None:
            return min(retry_after, BACKOFF_MAX_S)
        return self._backoff(attempt)

    def _backoff(self, attempt: int) -> float:
        # Full jitter keeps many sandboxes from retrying in step.
        ceiling = min(BACKOFF_MAX_S, self.retry_base_s * 2**attempt)
        return random.uniform(ceiling / 2, ceiling)


class ProgressReporter:
    """Batches activity lines in a thread and posts them, then the final event."""

    def __init__(
        self, sender: CallbackSender, name: str, *, batch_s: float, progress_s: float
    ) -> None:
        self.sender = sender
        self.name = name
        self.batch_s = batch_s
        self.progress_s = progress_s
        self.dropped = 0
        self._pending: list[str] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def add(self, lines: list[str]) -> None:
        """Queue activity lines for the next batch."""
        if not lines:
            return
        with self._lock:
            self._pending.extend(lines)
            overflow = len(self._pending) - PENDING_MAX_LINES
            if overflow > 0:
                del self._pending[:overflow]
                self.dropped += overflow
            full = len(self._pending) >= BATCH_MAX_LINES
        if full:
            self._wake.set()

    def finish(self, data: dict, timeout_s: float) -> bool:
        """Flush queued lines, post the final event and return whether it arrived."""
        with self._lock:
            self._closing = True
        self._wake.set()
        self._thread.join(timeout_s)
        deadline = time.monotonic() + timeout_s
        return self.sender.post("agent.finished", data, deadline)

    def _run(self) -> None:
        while True:
            self._wake.wait(self.batch_s)
            self._wake.clear()
            with self._lock:
                closing = self._closing
            self._flush()
            if closing:
                self._flush()
                return

    def _flush(self) -> None:
        while not self.sender.gone:
            with self._lock:
                batch = self._pending[:BATCH_MAX_LINES]
                del self._pending[:BATCH_MAX_LINES]
            if not batch:
                return
            data = {"agent": self.name, "message": "\n".join(batch), "lines": batch}
            self.sender.post("agent.progress", data, time.monotonic() + self.progress_s)


def run(args: argparse.Namespace) -> int:
    """Run the agent command to its end and return its exit status."""
    url = os.environ.get(URL_VARIABLE, "")
    secret = os.environ.get(SECRET_VARIABLE, "")
    child_env = {k: v for k, v in os.environ.items() if k != SECRET_VARIABLE}

    reporter = None
    if url and secret:
        sender = CallbackSender(url, secret, retry_base_s=args.retry_base)
        reporter = ProgressReporter(
            sender, args.name, batch_s=args.batch_seconds, progress_s=args.final_timeout
        )

    reader = TranscriptReader(args.format, args.workdir)
    stopped = threading.Event()
    exit_code = _run_child(args, child_env, reader, reporter, stopped)
    late = reader.finish()
    _write_exit_file(args.exit_file, exit_code)

    if reporter is not None:
        reporter.add(late)
        status = "succeeded" if exit_code == 0 else "failed"
        if stopped.is_set():
            status = "cancelled"
        data = {
            "agent": args.name,
            "status": status,
            "exit_code": exit_code,
            "summary": reader.summary(),
            "cost_usd": reader.cost_usd,
        }
        # A stopped session gets one quick try, because whoever stopped it
        # may kill this process shortly.
        timeout = (
            min(args.final_timeout, 2.0) if stopped.is_set() else args.final_timeout
        )
        if not reporter.finish(data, timeout):
            logger.warning("the final event for %s was not delivered", args.name)
    return exit_code


# Seconds to keep copying output after the agent exits.
OUTPUT_DRAIN_S = 2.0


def _run_child(
    args: argparse.Namespace,
    env: dict[str, str],
    reader: TranscriptReader,
    reporter: ProgressReporter | None,
    stopped: threading.Event,
) -> int:
    with open(args.log, "ab") as log:
        try:
            child = subprocess.Popen(
                ["bash", "-c", args.command],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        except OSError as exc:
            message = f"tack-runner: cannot start bash: {exc}\n".encode()
            log.write(message)
            sys.stdout.buffer.write(message)
            return 127

        def forward(signum: int, _frame: object) -> None:
            stopped.set()
            if child.poll() is None:
                child.send_signal(signum)

        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, forward)

        if args.format != "text" and args.workdir:
            session = {"type": SESSION_EVENT, "cwd": args.workdir, "agent": args.name}
            line = (json.dumps(session) + "\n").encode()
            log.write(line)
            sys.stdout.buffer.write(line)
            sys.stdout.buffer.flush()

        assert child.stdout is not None
        pipe = child.stdout

        def copy_output() -> None:
            try:
                for raw in iter(pipe.readline, b""):
                    log.write(raw)
                    log.flush()
                    sys.stdout.buffer.write(raw)
                    sys.stdout.buffer.flush()
                    lines = reader.feed(raw.decode("utf-8", "replace"))
                    if reporter is not None:
                        reporter.add(lines)
            except (OSError, ValueError):
                pass  # the runner is exiting and closed the files

        copier = threading.Thread(target=copy_output, name="output", daemon=True)
        copier.start()
        code = child.wait()
        # A background job the agent started (a dev server, "sleep &") keeps
        # the pipe open after the agent exits, so the session ends with the
        # agent itself, after a short wait for the output still in the pipe.
        copier.join(OUTPUT_DRAIN_S)
    # A child killed by a signal reports it the way a shell does.
    return 128 - code if code < 0 else code


def _write_exit_file(path: str, exit_code: int) -> None:
    # Written whole and renamed, so a reader never sees half a number.
    partial = f"{path}.partial"
    with open(partial, "w") as handle:
        handle.write(f"{exit_code}\n")
    os.replace(partial, path)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)

    import email.utils

    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse the runner's command line."""
    parser = argparse.ArgumentParser(prog="tack-runner", description=__doc__)
    parser.add_argument("--name", required=True, help="the agent session's name")
    parser.add_argument(
        "--format",
        default="text",
        choices=("text", "claude-code", "codex", "pi"),
        help="the agent's output format, used to find activity lines",
    )
    parser.add_argument("--log", required=True, help="file for the raw output")
    parser.add_argument("--exit-file", required=True, help="file for the exit status")
    parser.add_argument("--workdir", default="", help="shown paths are relative to it")
    parser.add_argument(
        "--batch-seconds",
        type=float,
        default=2.0,
        help="seconds between progress posts",
    )
    parser.add_argument(
        "--final-timeout",
        type=float,
        default=60.0,
        help="seconds spent retrying one event before giving up",
    )
    parser.add_argument(
        "--retry-base", type=float, default=0.5, help="first retry delay in seconds"
    )
    parser.add_argument("command", help="the agent's shell command, after --")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point inside the sandbox."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    os.makedirs(os.path.dirname(os.path.abspath(args.log)), exist_ok=True)
    logging.basicConfig(
        filename=f"{args.log}.runner",
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
