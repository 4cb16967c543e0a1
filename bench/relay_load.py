"""Measure the relay's callback throughput and end-to-end delivery latency.

For 1, 10 and 100 concurrent channels, one sender per channel posts signed
callbacks back to back for a fixed time while one job per channel long-polls
for them. Latency is from the start of the POST to the moment the job's
long-poll returns the event. The same senders then post the same bodies to a
bare Flask endpoint that only returns 200, under the same gunicorn settings.
The ratio of the two throughputs is the relay's cost.

    .venv/bin/python bench/relay_load.py [--channels 1,10,100] [--seconds 5]
        [--db sqlite|postgresql://...]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
from flask import Flask

from relay import signing

REPO_ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-static-token-0123456789"


def create_bare_app() -> Flask:
    """Build the baseline app: every POST returns 200 and does nothing else."""
    app = Flask(__name__)

    @app.get("/healthz")
    def healthz() -> tuple[str, int]:
        return "ok", 200

    @app.post("/<path:rest>")
    def accept(rest: str) -> tuple[str, int]:
        return '{"ok":true}', 200

    return app


def free_port() -> int:
    """Return a free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_gunicorn(
    app: str, env: dict[str, str], workdir: Path
) -> tuple[subprocess.Popen[bytes], str]:
    """Start gunicorn with the relay's config file and wait for /healthz."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "gunicorn", "-c", "relay/gunicorn.conf.py"]
    command += ["--bind", f"127.0.0.1:{port}", "--pythonpath", str(REPO_ROOT), app]
    log = (workdir / f"gunicorn-{port}.log").open("wb")
    process = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env={**os.environ, **env, "RELAY_PUBLIC_URL": url},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.05)
    os.killpg(process.pid, signal.SIGTERM)
    raise SystemExit(f"gunicorn for {app} did not start; see {log.name}")


def stop_gunicorn(process: subprocess.Popen[bytes]) -> None:
    """Stop the gunicorn process group started above."""
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(30)


def signed_request(secret: str, body: bytes) -> tuple[str, dict[str, str]]:
    """Return a fresh webhook-id and the signed headers for body."""
    webhook_id = uuid.uuid4().hex
    now = int(time.time())
    headers = {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(now),
        "webhook-signature": signing.sign(secret, webhook_id, now, body),
        "Content-Type": "application/json",
    }
    return webhook_id, headers


def run_senders(
    targets: list[tuple[str, str]], seconds: float, sent_at: dict[str, float]
) -> tuple[int, int]:
    """Post to each (url, secret) from its own thread; return (accepted, failed)."""
    body = json.dumps({"type": "agent.progress", "data": {"message": "x"}}).encode()
    counts = [0, 0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def send(url: str, secret: str) -> None:
        ok = failed = 0
        with httpx.Client(timeout=30) as http:
            while time.monotonic() < stop_at:
                webhook_id, headers = signed_request(secret, body)
                sent_at[webhook_id] = time.time()
                response = http.post(url, content=body, headers=headers)
                if response.status_code == 200:
                    ok += 1
                else:
                    failed += 1
        with lock:
            counts[0] += ok
            counts[1] += failed

    threads = [threading.Thread(target=send, args=target) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return counts[0], counts[1]


def read_channel(
    url: str, channel: str, done: threading.Event, received_at: dict[str, float]
) -> None:
    """Long-poll one channel until done is set and nothing more arrives."""
    after = 0
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(timeout=60) as http:
        while True:
            response = http.get(
                f"{url}/v1/runs/{channel}/events",
                params={"after": after, "wait": 2, "limit": 500},
                headers=headers,
            )
            page = response.json()
            now = time.time()
            for event in page["events"]:
                received_at[event["id"]] = now
            after = page["next_after"]
            if done.is_set() and not page["events"]:
                return


def percentile(values: list[float], fraction: float) -> float:
    """Return the value at fraction (0..1) of the sorted values."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))
    return ordered[index]


def measure_relay(url: str, channels: int, seconds: float) -> dict[str, float]:
    """Run senders and readers against the relay for one channel count."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    targets = []
    names = []
    with httpx.Client(timeout=30, headers=headers) as http:
        for _ in range(channels):
            opened = http.post(f"{url}/v1/runs", json={"run": uuid.uuid4().hex})
            channel = opened.json()["channel"]
            sandbox = http.post(f"{url}/v1/runs/{channel}/sandboxes", json={}).json()
            targets.append((sandbox["callback_url"], sandbox["secret"]))
            names.append(channel)

    sent_at: dict[str, float] = {}
    received_at: dict[str, float] = {}
    done = threading.Event()
    readers = [
        threading.Thread(target=read_channel, args=(url, name, done, received_at))
        for name in names
    ]
    for reader in readers:
        reader.start()
    started = time.monotonic()
    accepted, failed = run_senders(targets, seconds, sent_at)
    elapsed = time.monotonic() - started
    done.set()
    for reader in readers:
        reader.join()

    latencies = [
        (received_at[key] - sent_at[key]) * 1000
        for key in received_at
        if key in sent_at
    ]
    return {
        "accepted_per_s": accepted / elapsed,
        "failed": failed,
        "delivered": len(latencies),
        "p50_ms": statistics.median(latencies) if latencies else float("nan"),
        "p99_ms": percentile(latencies, 0.99) if latencies else float("nan"),
    }


def measure_bare(url: str, channels: int, seconds: float) -> float:
    """Return requests per second against the bare endpoint."""
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    targets = [(f"{url}/callbacks/{i}", secret) for i in range(channels)]
    started = time.monotonic()
    accepted, _ = run_senders(targets, seconds, {})
    return accepted / (time.monotonic() - started)


def main() -> int:
    """Run the benchmark and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", default="1,10,100")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--db", default="sqlite", help="sqlite or a postgresql:// URL")
    args = parser.parse_args()
    counts = [int(part) for part in args.channels.split(",")]

    workdir = Path(tempfile.mkdtemp(prefix="relay-bench-"))
    db_url = f"sqlite:///{workdir / 'relay.db'}" if args.db == "sqlite" else args.db
    # Every waiting long-poll occupies a thread, so the thread pool must exceed
    # the largest channel count; both servers get the same settings.
    env = {
        "RELAY_CALLBACK_KEYS": "k1:" + base64.b64encode(os.urandom(32)).decode(),
        "RELAY_API_TOKENS": TOKEN,
        "RELAY_DB_URL": db_url,
        "RELAY_RATE_PER_S": "1000000",
        "RELAY_RATE_BURST": "1000000",
        "RELAY_CHANNEL_QUOTA": "100000000",
        "RELAY_POLL_INTERVAL_S": "0.05",
        "RELAY_THREADS": str(max(32, max(counts) + 16)),
        "RELAY_LOG_LEVEL": "warning",
    }
    relay_process, relay_url = start_gunicorn("relay:create_app()", env, workdir)
    bare_process, bare_url = start_gunicorn(
        "bench.relay_load:create_bare_app()", env, workdir
    )
    rows = []
    try:
        for channels in counts:
            result = measure_relay(relay_url, channels, args.seconds)
            bare = measure_bare(bare_url, channels, args.seconds)
            rows.append((channels, result, bare))
    finally:
        stop_gunicorn(relay_process)
        stop_gunicorn(bare_process)

    print(
        f"db={args.db} seconds={args.seconds} workers=2 threads={env['RELAY_THREADS']}"
    )
    print()
    print(
        "| channels | relay accepted/s | bare 200/s | ratio | delivered | "
        "p50 ms | p99 ms | failed |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for channels, result, bare in rows:
        ratio = result["accepted_per_s"] / bare if bare else float("nan")
        print(
            f"| {channels} | {result['accepted_per_s']:.0f} | {bare:.0f} | "
            f"{ratio:.2f} | {result['delivered']:.0f} | {result['p50_ms']:.1f} | "
            f"{result['p99_ms']:.1f} | {result['failed']:.0f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
