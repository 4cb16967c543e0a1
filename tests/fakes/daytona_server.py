"""A fake Daytona control plane and toolbox that the real ``daytona`` SDK talks to.

The server speaks the HTTP shapes that SDK 0.226.1 expects: the control plane
under ``/api`` and the per-sandbox toolbox under ``/toolbox/{sandboxId}``. Each
sandbox is one real directory ``<root>/<sandboxId>`` that doubles as its user
home, and commands run there with bash. Socket.IO is answered with 404, so the
SDK falls back to polling sandbox state.

Snapshots taken from a sandbox (``POST /api/sandbox/{id}/snapshot``) copy its
directory, and a sandbox created from such a snapshot starts with a copy of
it. Snapshots built from an image are recorded as active at once.

Tests inject faults through ``fail_next``, ``delay_next``, ``drop_next``,
``close_websockets`` and ``set_state``, and assert on ``requests``, which
records every request without its Authorization header.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_STDOUT_MARKER = b"\x01\x01\x01"
_STDERR_MARKER = b"\x02\x02\x02"

# Sandbox states in which the toolbox answers; every other state gets the
# daemon's "is the sandbox started?" error, as on the real platform.
_RUNNING_STATES = {"started"}


@dataclass
class RecordedRequest:
    """One request as the fake received it, minus the Authorization header."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """Return the body decoded as JSON."""
        return json.loads(self.body or b"null")

    def text(self) -> str:
        """Return the body decoded as UTF-8, replacing invalid bytes."""
        return self.body.decode("utf-8", "replace")


@dataclass
class _Fault:
    method: str
    pattern: re.Pattern[str]
    count: int
    status: int = 0
    message: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False


@dataclass
class _SessionCommand:
    id: str
    command: str
    process: subprocess.Popen[bytes] | None = None
    exit_code: int | None = None
    # Output chunks in the order the command wrote them, tagged by stream.
    chunks: list[tuple[str, bytes]] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Sandbox:
    data: dict[str, Any]
    directory: Path
    sessions: dict[str, dict[str, _SessionCommand]] = field(default_factory=dict)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


class FakeDaytonaServer:
    """A threaded HTTP server on 127.0.0.1 that imitates Daytona for the SDK."""

    def __init__(self, root: Path, api_key: str = "test-key", page_size: int = 100):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.api_key = api_key
        self.page_size = page_size
        self.close_websockets = False
        self.requests: list[RecordedRequest] = []
        self.sandboxes: dict[str, _Sandbox] = {}
        self.snapshots: dict[str, dict[str, Any]] = {}
        self._faults: list[_Fault] = []
        self._lock = threading.RLock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), daemon=True
        )

    @property
    def url(self) -> str:
        """Return the base URL, such as ``http://127.0.0.1:PORT``."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_url(self) -> str:
        """Return the control-plane URL to give ``DaytonaConfig(api_url=...)``."""
        return f"{self.url}/api"

    def start(self) -> FakeDaytonaServer:
        """Start serving in a background thread and return self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and kill every command still running in a sandbox."""
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            for sandbox in self.sandboxes.values():
                self._kill_sessions(sandbox)

    def __enter__(self) -> FakeDaytonaServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # Fault injection.

    def fail_next(
        self,
        method: str,
        path_pattern: str,
        status: int,
        count: int = 1,
        message: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next ``count`` matching requests with ``status``."""
        fault = _Fault(
            method.upper(),
            re.compile(path_pattern),
            count,
            status=status,
            message=message or f"Injected failure with status {status}",
            headers=dict(headers or {}),
        )
        with self._lock:
            self._faults.append(fault)

    def delay_next(
        self, method: str, path_pattern: str, seconds: float, count: int = 1
    ) -> None:
        """Sleep ``seconds`` before answering the next ``count`` matching requests."""
        fault = _Fault(method.upper(), re.compile(path_pattern), count, delay=seconds)
        with self._lock:
            self._faults.append(fault)

    def drop_next(self, method: str, path_pattern: str, count: int = 1) -> None:
        """Close the connection without a response for the next matching requests."""
        fault = _Fault(method.upper(), re.compile(path_pattern), count, drop=True)
        with self._lock:
            self._faults.append(fault)

    def set_state(self, sandbox_id: str, state: str, **extra: Any) -> None:
        """Force a sandbox into ``state``; leaving ``started`` kills its commands."""
        with self._lock:
            sandbox = self.sandboxes[sandbox_id]
            sandbox.data["state"] = state
            sandbox.data.update(extra)
            sandbox.data["updatedAt"] = _now()
            if state not in _RUNNING_STATES:
                self._kill_sessions(sandbox)

    def requests_matching(
        self, method: str, path_pattern: str = ""
    ) -> list[RecordedRequest]:
        """Return the recorded requests with this method whose path matches."""
        pattern = re.compile(path_pattern)
        return [
            request
            for request in list(self.requests)
            if request.method == method.upper() and pattern.search(request.path)
        ]

    def take_fault(self, method: str, path: str) -> _Fault | None:
        """Consume and return the first fault that matches this request."""
        with self._lock:
            for fault in self._faults:
                if fault.method in (method, "*") and fault.pattern.search(path):
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # Sandbox bookkeeping.

    def create_sandbox(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create a started sandbox from a CreateSandbox request body."""
        sandbox_id = str(uuid.uuid4())
        directory = self.root / sandbox_id
        source = self.snapshot_dir(body.get("snapshot") or "")
        if source.is_dir():
            # A sandbox from a snapshot starts with the snapshot's filesystem.
            shutil.copytree(source, directory, symlinks=True)
        else:
            directory.mkdir(parents=True)
        data = {
            "id": sandbox_id,
            "organizationId": "org-fake",
            "name": body.get("name") or sandbox_id,
            "user": body.get("user") or "daytona",
            "env": dict(body.get("env") or {}),
            "labels": dict(body.get("labels") or {}),
            "public": bool(body.get("public", False)),
            "networkBlockAll": bool(body.get("networkBlockAll", False)),
            "kvm": bool(body.get("kvm", False)),
            "target": body.get("target") or "us",
            "cpu": int(body.get("cpu") or 1),
            "gpu": int(body.get("gpu") or 0),
            "memory": int(body.get("memory") or 1),
            "disk": int(body.get("disk") or 3),
            "snapshot": body.get("snapshot") or "daytonaio/sandbox:fake",
            "state": "started",
            "desiredState": "started",
            "recoverable": False,
            "errorReason": None,
            "autoStopInterval": body.get("autoStopInterval", 15),
            "autoArchiveInterval": body.get("autoArchiveInterval", 10080),
            "autoDeleteInterval": body.get("autoDeleteInterval", -1),
            "toolboxProxyUrl": f"{self.url}/toolbox",
            "createdAt": _now(),
            "updatedAt": _now(),
            "lastActivityAt": _now(),
        }
        with self._lock:
            self.sandboxes[sandbox_id] = _Sandbox(data, directory)
        return data

    def snapshot_dir(self, name: str) -> Path:
        """Return where the files of a snapshot taken from a sandbox are kept."""
        return self.root.parent / f"{self.root.name}-snapshots" / (name or "-")

    def create_snapshot(
        self, name: str, *, image: str | None = None, source: str | None = None
    ) -> dict[str, Any]:
        """Record an active snapshot and return its SnapshotDto."""
        data = {
            "id": str(uuid.uuid4()),
            "organizationId": "org-fake",
            "general": False,
            "name": name,
            "imageName": image or "",
            "state": "active",
            "size": None,
            "entrypoint": ["sleep", "infinity"],
            "cpu": 1,
            "gpu": 0,
            "mem": 1,
            "disk": 3,
            "errorReason": None,
            "createdAt": _now(),
            "updatedAt": _now(),
            "lastUsedAt": None,
            "sourceSandboxId": source,
        }
        with self._lock:
            self.snapshots[name] = data
        return data

    def lookup_snapshot(self, id_or_name: str) -> dict[str, Any] | None:
        """Return the snapshot with this id or name, or None."""
        with self._lock:
            for data in self.snapshots.values():
                if id_or_name in (data["id"], data["name"]):
                    return data
        return None

    def lookup(self, id_or_name: str) -> _Sandbox | None:
        """Return the sandbox with this id or name, or None."""
        with self._lock:
            if id_or_name in self.sandboxes:
                return self.sandboxes[id_or_name]
            for sandbox in self.sandboxes.values():
                if sandbox.data["name"] == id_or_name:
                    return sandbox
        return None

    def delete_sandbox(self, sandbox: _Sandbox) -> None:
        """Remove a sandbox, its commands and its directory."""
        with self._lock:
            self._kill_sessions(sandbox)
            self.sandboxes.pop(sandbox.data["id"], None)
        shutil.rmtree(sandbox.directory, ignore_errors=True)

    def _kill_sessions(self, sandbox: _Sandbox) -> None:
        # Sessions live in the daemon's memory, so a stop loses them.
        for commands in sandbox.sessions.values():
            for command in commands.values():
                if command.process is not None and command.process.poll() is None:
                    os.killpg(command.process.pid, signal.SIGKILL)
        sandbox.sessions.clear()

    def command_env(self, sandbox: _Sandbox, extra: dict[str, str] | None) -> dict:
        """Build the environment a command in this sandbox sees."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(sandbox.directory),
            "LANG": "C.UTF-8",
            # Every real sandbox has a private /tmp.
            "TMPDIR": str(sandbox.directory / ".tmp"),
        }
        (sandbox.directory / ".tmp").mkdir(exist_ok=True)
        env.update(sandbox.data["env"])
        env.update(extra or {})
        return env

    def resolve(self, sandbox: _Sandbox, path: str) -> Path:
        """Resolve a sandbox path; relative paths start at the user home."""
        candidate = Path(path)
        if not candidate.is_absolute():
            candidate = sandbox.directory / candidate
        return candidate


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeDaytona/0.226"

    def log_message(self, format: str, *args: Any) -> None:
        # Test output stays quiet; the request log is on the server object.
        return

    @property
    def fake(self) -> FakeDaytonaServer:
        return self.server.fake  # type: ignore[attr-defined]

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # Plumbing.

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self,
        status: int,
        payload: Any = None,
        *,
        raw: bytes | None = None,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        if raw is None:
            raw = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        if raw:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(raw)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)

    def _error(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        body: dict[str, Any] = {
            "statusCode": status,
            "message": message,
            "path": self.path,
            "timestamp": _now(),
        }
        if code:
            body["code"] = code
            body["source"] = "DAYTONA_DAEMON"
        self._send(status, body, headers=headers)

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        path = parts.path
        query = parse_qs(parts.query)
        body = self._read_body()
        headers = {
            name: value
            for name, value in self.headers.items()
            if name.lower() != "authorization"
        }
        self.fake.requests.append(RecordedRequest(method, path, query, headers, body))

        fault = self.fake.take_fault(method, path)
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        if fault is not None and fault.drop:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault is not None and fault.status:
            self._error(fault.status, fault.message, headers=fault.headers)
            return

        if path.startswith("/api/socket.io"):
            self._error(404, "Socket.IO is not served by this fake")
            return
        if self.headers.get("Authorization") != f"Bearer {self.fake.api_key}":
            self._error(401, "Invalid credentials")
            return

        try:
            if path.startswith("/api/"):
                self._control_plane(method, path[len("/api") :], query, body)
            elif path.startswith("/toolbox/"):
                self._toolbox(method, path[len("/toolbox/") :], query, body)
            else:
                self._error(404, f"No route for {method} {path}")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # Control plane.

    def _control_plane(
        self, method: str, path: str, query: dict[str, list[str]], body: bytes
    ) -> None:
        fake = self.fake
        if method == "POST" and path == "/sandbox":
            request = json.loads(body or b"{}")
            if request.get("name") and fake.lookup(request["name"]) is not None:
                self._error(409, f"Sandbox with name {request['name']} already exists")
                return
            self._send(200, fake.create_sandbox(request))
            return
        if method == "GET" and path == "/sandbox":
            self._list(query)
            return
        if path == "/snapshots" or path.startswith("/snapshots/"):
            self._snapshots(method, path, query, body)
            return

        match = re.fullmatch(r"/sandbox/([^/]+)(/.*)?", path)
        if not match:
            self._error(404, f"No route for {method} /api{path}")
            return
        sandbox = fake.lookup(match.group(1))
        if sandbox is None:
            self._error(404, f"Sandbox {match.group(1)} not found")
            return
        action = match.group(2) or ""
        data = sandbox.data

        if method == "GET" and action == "":
            self._send(200, data)
        elif method == "DELETE" and action == "":
            fake.delete_sandbox(sandbox)
            data["state"] = "destroyed"
            self._send(200, data)
        elif method == "POST" and action in ("/start", "/recover"):
            data["state"] = "started"
            data["errorReason"] = None
            data["recoverable"] = False
            data["lastActivityAt"] = _now()
            self._send(200, data)
        elif method == "POST" and action == "/stop":
            fake.set_state(data["id"], "stopped")
            self._send(200, data)
        elif method == "POST" and action == "/snapshot":
            name = json.loads(body)["name"]
            if name in fake.snapshots:
                self._error(409, f"Snapshot with name {name} already exists")
                return
            target = fake.snapshot_dir(name)
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(sandbox.directory, target, symlinks=True)
            fake.create_snapshot(name, source=data["id"])
            self._send(200, data)
        elif method == "POST" and action == "/last-activity":
            data["lastActivityAt"] = _now()
            self._send(201)
        elif method == "PUT" and action == "/labels":
            data["labels"] = dict(json.loads(body)["labels"])
            self._send(200, {"labels": data["labels"]})
        elif method == "POST" and re.fullmatch(
            r"/auto(stop|archive|delete)/-?\d+", action
        ):
            kind, minutes = re.fullmatch(r"/auto(\w+)/(-?\d+)", action).groups()
            data[f"auto{kind.capitalize()}Interval"] = int(minutes)
            self._send(200, data)
        else:
            self._error(404, f"No route for {method} /api{path}")

    def _snapshots(
        self, method: str, path: str, query: dict[str, list[str]], body: bytes
    ) -> None:
        fake = self.fake
        if method == "POST" and path == "/snapshots":
            request = json.loads(body or b"{}")
            if request.get("name") in fake.snapshots:
                self._error(409, f"Snapshot with name {request['name']} already exists")
                return
            image = request.get("imageName")
            self._send(200, fake.create_snapshot(request["name"], image=image))
            return
        if method == "GET" and path == "/snapshots":
            items = list(fake.snapshots.values())
            self._send(
                200, {"items": items, "total": len(items), "page": 1, "totalPages": 1}
            )
            return
        match = re.fullmatch(r"/snapshots/([^/]+)(/activate)?", path)
        data = fake.lookup_snapshot(match.group(1)) if match else None
        if data is None:
            self._error(404, f"Snapshot {path.rsplit('/', 1)[-1]} not found")
            return
        if method == "GET" and match.group(2) is None:
            self._send(200, data)
        elif method == "DELETE" and match.group(2) is None:
            with fake._lock:
                fake.snapshots.pop(data["name"], None)
            shutil.rmtree(fake.snapshot_dir(data["name"]), ignore_errors=True)
            self._send(200)
        elif method == "POST" and match.group(2):
            data["state"] = "active"
            self._send(200, data)
        else:
            self._error(404, f"No route for {method} /api{path}")

    def _list(self, query: dict[str, list[str]]) -> None:
        wanted = json.loads(query.get("labels", ["{}"])[0])
        limit = int(query.get("limit", [self.fake.page_size])[0])
        start = int(query.get("cursor", ["0"])[0] or 0)
        with self.fake._lock:
            matches = [
                sandbox.data
                for sandbox in self.fake.sandboxes.values()
                if all(sandbox.data["labels"].get(k) == v for k, v in wanted.items())
            ]
        page = matches[start : start + limit]
        end = start + len(page)
        next_cursor = str(end) if end < len(matches) else None
        self._send(200, {"items": page, "nextCursor": next_cursor})

    # Toolbox.

    def _toolbox(
        self, method: str, path: str, query: dict[str, list[str]], body: bytes
    ) -> None:
        sandbox_id, _, rest = path.partition("/")
        sandbox = self.fake.lookup(sandbox_id)
        if sandbox is None:
            self._error(404, f"Sandbox {sandbox_id} not found")
            return
        if sandbox.data["state"] not in _RUNNING_STATES:
            self._error(
                400,
                f"Sandbox {sandbox_id} is {sandbox.data['state']}. "
                "Is the Sandbox started?",
            )
            return
        sandbox.data["lastActivityAt"] = _now()
        route = "/" + rest

        if method == "GET" and route in ("/work-dir", "/user-home-dir"):
            self._send(200, {"dir": str(sandbox.directory)})
        elif method == "POST" and route == "/process/execute":
            self._execute(sandbox, json.loads(body))
        elif method == "POST" and route == "/process/session":
            session_id = json.loads(body)["sessionId"]
            if session_id in sandbox.sessions:
                self._error(409, f"Session {session_id} already exists")
                return
            sandbox.sessions[session_id] = {}
            self._send(201)
        elif route.startswith("/process/session/"):
            self._session(sandbox, method, route[len("/process/session/") :], query)
        elif method == "POST" and route == "/files/bulk-upload":
            self._upload(sandbox, body)
        elif method == "POST" and route == "/files/bulk-download":
            self._download(sandbox, json.loads(body)["paths"])
        else:
            self._error(404, f"No toolbox route for {method} {route}")

    def _execute(self, sandbox: _Sandbox, request: dict[str, Any]) -> None:
        cwd = self.fake.resolve(sandbox, request.get("cwd") or str(sandbox.directory))
        timeout = request.get("timeout") or None
        try:
            completed = subprocess.run(
                ["bash", "-c", request["command"]],
                cwd=cwd,
                env=self.fake.command_env(sandbox, request.get("envs")),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                start_new_session=True,
            )
        except subprocess.TimeoutExpired:
            self._error(
                408,
                f"Command timed out after {timeout} seconds",
                code="PROCESS_EXECUTION_TIMEOUT",
            )
            return
        except (FileNotFoundError, NotADirectoryError):
            self._error(400, f"Working directory {str(cwd)!r} does not exist")
            return
        output = completed.stdout.decode("utf-8", "replace")
        self._send(200, {"exitCode": completed.returncode, "result": output})

    def _session(
        self,
        sandbox: _Sandbox,
        method: str,
        route: str,
        query: dict[str, list[str]],
    ) -> None:
        session_id, _, rest = route.partition("/")
        commands = sandbox.sessions.get(session_id)
        if commands is None:
            self._error(404, f"Session {session_id} not found")
            return
        if method == "DELETE" and rest == "":
            del sandbox.sessions[session_id]
            self._send(204)
            return
        if method == "GET" and rest == "":
            listed = [_command_json(command) for command in commands.values()]
            self._send(200, {"sessionId": session_id, "commands": listed})
            return
        if method == "POST" and rest == "exec":
            self._session_exec(sandbox, commands)
            return

        match = re.fullmatch(r"command/([^/]+)(/logs)?", rest)
        command = commands.get(match.group(1)) if match else None
        if command is None:
            self._error(404, f"Command {rest} not found in session {session_id}")
            return
        if match.group(2) is None:
            self._send(200, _command_json(command))
        elif query.get("follow") == ["true"]:
            self._stream_logs(command)
        else:
            self._send(200, _logs_json(command))

    def _session_exec(
        self, sandbox: _Sandbox, commands: dict[str, _SessionCommand]
    ) -> None:
        request = json.loads(self._last_body())
        command = _SessionCommand(id=str(uuid.uuid4()), command=request["command"])
        command.process = subprocess.Popen(
            ["bash", "-c", request["command"]],
            cwd=sandbox.directory,
            env=self.fake.command_env(sandbox, None),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        commands[command.id] = command
        _collect_output(command)
        if request.get("runAsync") or request.get("async"):
            self._send(202, {"cmdId": command.id})
            return
        command.done.wait()
        logs = _logs_json(command)
        logs.update(cmdId=command.id, exitCode=command.exit_code)
        self._send(200, logs)

    def _last_body(self) -> bytes:
        return self.fake.requests[-1].body if self.fake.requests else b"{}"

    def _stream_logs(self, command: _SessionCommand) -> None:
        key = self.headers.get("Sec-WebSocket-Key", "")
        accept = base64.b64encode(hashlib.sha1((key + _WS_GUID).encode()).digest())
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept.decode())
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True

        if self.fake.close_websockets:
            self._ws_close(1011, "injected close")
            return
        sent = 0
        while True:
            finished = command.done.is_set()
            chunks = command.chunks[sent:]
            for stream, data in chunks:
                marker = _STDOUT_MARKER if stream == "stdout" else _STDERR_MARKER
                self._ws_frame(0x2, marker + data)
            sent += len(chunks)
            if finished and sent == len(command.chunks):
                break
            time.sleep(0.02)
        self._ws_close(1000, "")

    def _ws_frame(self, opcode: int, payload: bytes) -> None:
        header = bytearray([0x80 | opcode])
        if len(payload) < 126:
            header.append(len(payload))
        elif len(payload) < 65536:
            header.append(126)
            header += len(payload).to_bytes(2, "big")
        else:
            header.append(127)
            header += len(payload).to_bytes(8, "big")
        self.wfile.write(bytes(header) + payload)
        self.wfile.flush()

    def _ws_close(self, code: int, reason: str) -> None:
        self._ws_frame(0x8, code.to_bytes(2, "big") + reason.encode())
        # Wait briefly for the client's close reply so the close is clean.
        self.connection.settimeout(1.0)
        try:
            self.connection.recv(1024)
        except OSError:
            pass

    def _upload(self, sandbox: _Sandbox, body: bytes) -> None:
        content_type = self.headers.get("Content-Type", "")
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + body
        )
        paths: dict[str, str] = {}
        files: dict[str, bytes] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True) or b""
            index = re.fullmatch(r"files\[(\d+)\]\.(path|file)", name or "")
            if index is None:
                continue
            if index.group(2) == "path":
                paths[index.group(1)] = payload.decode()
            else:
                files[index.group(1)] = payload
        for index, data in files.items():
            target = self.fake.resolve(sandbox, paths[index])
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        self._send(200)

    def _download(self, sandbox: _Sandbox, paths: list[str]) -> None:
        boundary = uuid.uuid4().hex
        parts = []
        for requested in paths:
            target = self.fake.resolve(sandbox, requested)
            if target.is_file():
                head = (
                    f'Content-Disposition: form-data; name="file"; '
                    f'filename="{requested}"\r\n'
                    "Content-Type: application/octet-stream\r\n\r\n"
                )
                parts.append(head.encode() + target.read_bytes())
            else:
                error = {
                    "message": f"File not found: {requested}",
                    "statusCode": 404,
                    "code": "FILE_NOT_FOUND",
                }
                head = (
                    f'Content-Disposition: form-data; name="error"; '
                    f'filename="{requested}"\r\n'
                    "Content-Type: application/json\r\n\r\n"
                )
                parts.append(head.encode() + json.dumps(error).encode())
        raw = b"".join(f"--{boundary}\r\n".encode() + p + b"\r\n" for p in parts)
        raw += f"--{boundary}--\r\n".encode()
        self._send(
            200, raw=raw, content_type=f"multipart/form-data; boundary={boundary}"
        )


def _collect_output(command: _SessionCommand) -> None:
    """Start threads that copy a command's stdout and stderr into its chunks."""
    process = command.process
    assert process is not None and process.stdout and process.stderr
    lock = threading.Lock()

    def copy(stream_name: str, pipe: Any) -> None:
        for data in iter(lambda: os.read(pipe.fileno(), 65536), b""):
            with lock:
                command.chunks.append((stream_name, data))

    readers = [
        threading.Thread(target=copy, args=("stdout", process.stdout), daemon=True),
        threading.Thread(target=copy, args=("stderr", process.stderr), daemon=True),
    ]
    for reader in readers:
        reader.start()

    def wait() -> None:
        for reader in readers:
            reader.join()
        command.exit_code = process.wait()
        process.stdout.close()
        process.stderr.close()
        command.done.set()

    threading.Thread(target=wait, daemon=True).start()


def _command_json(command: _SessionCommand) -> dict[str, Any]:
    exit_code = command.exit_code if command.done.is_set() else None
    return {"id": command.id, "command": command.command, "exitCode": exit_code}


def _logs_json(command: _SessionCommand) -> dict[str, str]:
    chunks = list(command.chunks)
    stdout = b"".join(data for stream, data in chunks if stream == "stdout")
    stderr = b"".join(data for stream, data in chunks if stream == "stderr")
    output = b"".join(data for _, data in chunks)
    return {
        "output": output.decode("utf-8", "replace"),
        "stdout": stdout.decode("utf-8", "replace"),
        "stderr": stderr.decode("utf-8", "replace"),
    }
