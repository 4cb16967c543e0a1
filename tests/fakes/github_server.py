"""A fake GitHub: the REST endpoints the Action uses, plus git smart HTTP.

It runs on 127.0.0.1 in a thread and builds every absolute URL (object
``url`` fields, ``Link`` pagination headers, ``clone_url``) from its own
bound address, as PyGithub requires. Field names, status codes and
pagination follow GitHub's REST API.

``/{owner}/{repo}.git`` serves a bare repository through ``git http-backend``
run as a CGI program. Both the API and git require the token: the API in an
``Authorization: token|Bearer`` header, git as HTTP basic auth with the token
as password, which is what ``tack_action.sandbox.git.auth_env`` sends.

Every request is recorded in ``requests`` for assertions, and ``fail`` queues
faults such as a 502 before or after the request takes effect.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from flask import Flask, Response, request
from werkzeug.serving import make_server


@dataclass
class RecordedRequest:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    status: int = 0


@dataclass
class Fault:
    """A queued failure for requests matching ``method`` and ``path`` (a regex)."""

    method: str
    path: str
    status: int = 502
    times: int = 1
    # True: the request takes effect, then the client still sees the error.
    after: bool = False


@dataclass
class User:
    login: str
    id: int
    type: str = "User"


@dataclass
class RepoState:
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    permissions: dict[str, str] = field(default_factory=dict)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeGitHub:
    """The fake server; use as a context manager or call ``start``/``stop``."""

    def __init__(
        self,
        root: Path,
        *,
        owner: str = "octo-org",
        repo: str = "widgets",
        token: str = "ghs_faketoken0123456789",
        identity: str = "github-actions[bot]",
        user_endpoint: bool = False,
    ) -> None:
        self.root = Path(root)
        self.owner = owner
        self.name = repo
        self.token = token
        self.identity = identity
        # GITHUB_TOKEN gets 403 from GET /user; a PAT gets its user.
        self.user_endpoint = user_endpoint
        self.state = RepoState()
        self.users: dict[str, User] = {}
        self.requests: list[RecordedRequest] = []
        self.git_requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self.hooks: list[Callable[[RecordedRequest], None]] = []
        self._ids = itertools.count(1000)
        self._numbers = itertools.count(1)
        self._lock = threading.RLock()
        self.add_user(identity, type="Bot")
        self.app = self._build_app()
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
        )

    # Lifecycle and setup

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def clone_url(self) -> str:
        return f"{self.url}/{self.full_name}.git"

    @property
    def bare_path(self) -> Path:
        return self.root / self.owner / f"{self.name}.git"

    def start(self) -> FakeGitHub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def add_user(self, login: str, *, type: str = "User", permission: str = "") -> User:
        user = User(login=login, id=next(self._ids), type=type)
        self.users[login] = user
        if permission:
            self.state.permissions[login] = permission
        return user

    def publish_repo(self, source: Path) -> Path:
        """Serve a bare clone of the git repository at ``source``."""
        self.bare_path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "clone", "-q", "--bare", str(source), str(self.bare_path)],
            check=True,
        )
        subprocess.run(
            ["git", "-C", str(self.bare_path), "config", "http.receivepack", "true"],
            check=True,
        )
        return self.bare_path

    def add_issue(
        self, title: str, body: str, *, author: str, labels: list[str] | None = None
    ) -> dict[str, Any]:
        with self._lock:
            number = next(self._numbers)
            issue = {
                "number": number,
                "title": title,
                "body": body,
                "user": author,
                "labels": list(labels or []),
                "state": "open",
                "created_at": _now(),
            }
            self.state.issues[number] = issue
            return issue

    def add_comment(self, number: int, body: str, *, author: str) -> dict[str, Any]:
        with self._lock:
            comment_id = next(self._ids)
            comment = {
                "id": comment_id,
                "issue": number,
                "body": body,
                "user": author,
                "created_at": _now(),
                "updated_at": _now(),
            }
            self.state.comments[comment_id] = comment
            return comment

    def fail(
        self,
        method: str,
        path: str,
        *,
        status: int = 502,
        times: int = 1,
        after: bool = False,
    ) -> None:
        """Queue ``times`` failures for requests matching ``method`` and ``path``."""
        self.faults.append(Fault(method.upper(), path, status, times, after))

    def on_request(self, hook: Callable[[RecordedRequest], None]) -> None:
        """Call ``hook`` with each authorized API request before handling it."""
        self.hooks.append(hook)

    # Views for assertions

    def comments_on(self, number: int) -> list[dict[str, Any]]:
        with self._lock:
            return [c for c in self.state.comments.values() if c["issue"] == number]

    def calls(self, method: str, pattern: str) -> list[RecordedRequest]:
        return [
            r
            for r in self.requests
            if r.method == method and re.fullmatch(pattern, r.path)
        ]

    # JSON shapes

    def _user(self, login: str) -> dict[str, Any]:
        user = self.users.get(login) or self.add_user(login)
        return {
            "login": user.login,
            "id": user.id,
            "node_id": f"U_{user.id}",
            "type": user.type,
            "site_admin": False,
            "url": f"{self.url}/users/{user.login}",
            "html_url": f"{self.url}/{user.login}",
        }

    def _repo_json(self) -> dict[str, Any]:
        owner = self._user(self.owner)
        owner["type"] = "Organization"
        return {
            "id": 4242,
            "node_id": "R_4242",
            "name": self.name,
            "full_name": self.full_name,
            "private": False,
            "owner": owner,
            "html_url": f"{self.url}/{self.full_name}",
            "url": f"{self.url}/repos/{self.full_name}",
            "clone_url": self.clone_url,
            "default_branch": "main",
            "permissions": {"admin": False, "push": True, "pull": True},
        }

    def _label(self, name: str) -> dict[str, Any]:
        return {
            "id": abs(hash(name)) % 100000,
            "name": name,
            "color": "ededed",
            "url": f"{self.url}/repos/{self.full_name}/labels/{name}",
            "default": False,
        }

    def _issue_json(self, issue: dict[str, Any]) -> dict[str, Any]:
        base = f"{self.url}/repos/{self.full_name}/issues/{issue['number']}"
        return {
            "id": 70000 + issue["number"],
            "number": issue["number"],
            "title": issue["title"],
            "body": issue["body"],
            "state": issue["state"],
            "user": self._user(issue["user"]),
            "labels": [self._label(name) for name in issue["labels"]],
            "url": base,
            "html_url": f"{self.url}/{self.full_name}/issues/{issue['number']}",
            "comments_url": f"{base}/comments",
            "labels_url": f"{base}/labels{{/name}}",
            "repository_url": f"{self.url}/repos/{self.full_name}",
            "comments": len(self.comments_on(issue["number"])),
            "created_at": issue["created_at"],
            "updated_at": issue["created_at"],
            "author_association": "NONE",
        }

    def _comment_json(self, comment: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": comment["id"],
            "node_id": f"IC_{comment['id']}",
            "body": comment["body"],
            "user": self._user(comment["user"]),
            "url": f"{self.url}/repos/{self.full_name}/issues/comments/{comment['id']}",
            "html_url": (
                f"{self.url}/{self.full_name}/issues/{comment['issue']}"
                f"#issuecomment-{comment['id']}"
            ),
            "issue_url": f"{self.url}/repos/{self.full_name}/issues/{comment['issue']}",
            "created_at": comment["created_at"],
            "updated_at": comment["updated_at"],
            "author_association": "NONE",
        }

    def _pull_json(self, pull: dict[str, Any]) -> dict[str, Any]:
        number = pull["number"]
        return {
            "id": 90000 + number,
            "number": number,
            "state": pull["state"],
            "title": pull["title"],
            "body": pull["body"],
            "draft": pull["draft"],
            "user": self._user(self.identity),
            "url": f"{self.url}/repos/{self.full_name}/pulls/{number}",
            "html_url": f"{self.url}/{self.full_name}/pull/{number}",
            "head": {
                "ref": pull["head"],
                "label": f"{self.owner}:{pull['head']}",
                "sha": pull["head_sha"],
                "repo": self._repo_json(),
            },
            "base": {
                "ref": pull["base"],
                "label": f"{self.owner}:{pull['base']}",
                "sha": pull["base_sha"],
                "repo": self._repo_json(),
            },
            "maintainer_can_modify": pull["maintainer_can_modify"],
            "created_at": pull["created_at"],
            "updated_at": pull["created_at"],
        }

    # The app

    def _build_app(self) -> Flask:
        app = Flask("fake_github")
        prefix = "/repos/<owner>/<repo>"

        @app.before_request
        def check() -> Response | None:
            return self._before()

        @app.after_request
        def record_status(response: Response) -> Response:
            return self._after(response)

        @app.get("/user")
        def get_user() -> Response:
            if not self.user_endpoint:
                return self._error(403, "Resource not accessible by integration")
            return self._json(self._user(self.identity))

        @app.get(prefix)
        def get_repo(owner: str, repo: str) -> Response:
            return self._json(self._repo_json())

        @app.post(f"{prefix}/issues")
        def create_issue(owner: str, repo: str) -> Response:
            data = request.get_json()
            if not data.get("title"):
                return self._error(422, "Validation Failed")
            issue = self.add_issue(
                data["title"],
                data.get("body") or "",
                author=self.identity,
                labels=data.get("labels") or [],
            )
            return self._json(self._issue_json(issue), 201)

        @app.get(f"{prefix}/issues/<int:number>")
        def get_issue(owner: str, repo: str, number: int) -> Response:
            issue = self.state.issues.get(number)
            if issue is None:
                return self._error(404, "Not Found")
            return self._json(self._issue_json(issue))

        @app.patch(f"{prefix}/issues/<int:number>")
        def edit_issue(owner: str, repo: str, number: int) -> Response:
            issue = self.state.issues.get(number)
            if issue is None:
                return self._error(404, "Not Found")
            data = request.get_json() or {}
            with self._lock:
                for key in ("title", "body", "state"):
                    if key in data:
                        issue[key] = data[key]
                if "labels" in data:
                    names = [
                        item["name"] if isinstance(item, dict) else item
                        for item in data["labels"]
                    ]
                    issue["labels"] = list(dict.fromkeys(names))
            return self._json(self._issue_json(issue))

        @app.get(f"{prefix}/issues/<int:number>/comments")
        def list_comments(owner: str, repo: str, number: int) -> Response:
            if number not in self.state.issues:
                return self._error(404, "Not Found")
            items = [self._comment_json(c) for c in self.comments_on(number)]
            return self._paginate(items)

        @app.post(f"{prefix}/issues/<int:number>/comments")
        def create_comment(owner: str, repo: str, number: int) -> Response:
            if number not in self.state.issues:
                return self._error(404, "Not Found")
            body = (request.get_json() or {}).get("body")
            if not isinstance(body, str) or not body:
                return self._error(422, "Validation Failed")
            if len(body) > 65536:
                return self._error(
                    422, "Body is too long (maximum is 65536 characters)"
                )
            comment = self.add_comment(number, body, author=self.identity)
            return self._json(self._comment_json(comment), 201)

        @app.get(f"{prefix}/issues/comments/<int:comment_id>")
        def get_comment(owner: str, repo: str, comment_id: int) -> Response:
            comment = self.state.comments.get(comment_id)
            if comment is None:
                return self._error(404, "Not Found")
            return self._json(self._comment_json(comment))

        @app.patch(f"{prefix}/issues/comments/<int:comment_id>")
        def edit_comment(owner: str, repo: str, comment_id: int) -> Response:
            comment = self.state.comments.get(comment_id)
            if comment is None:
                return self._error(404, "Not Found")
            if comment["user"] != self.identity:
                return self._error(403, "Must have admin rights to Repository.")
            body = (request.get_json() or {}).get("body")
            if not isinstance(body, str) or len(body) > 65536:
                return self._error(422, "Validation Failed")
            with self._lock:
                comment["body"] = body
                comment["updated_at"] = _now()
            return self._json(self._comment_json(comment))

        @app.get(f"{prefix}/issues/<int:number>/labels")
        def list_labels(owner: str, repo: str, number: int) -> Response:
            issue = self.state.issues[number]
            return self._paginate([self._label(n) for n in issue["labels"]])

        @app.post(f"{prefix}/issues/<int:number>/labels")
        def add_labels(owner: str, repo: str, number: int) -> Response:
            issue = self.state.issues.get(number)
            if issue is None:
                return self._error(404, "Not Found")
            data = request.get_json()
            names = data.get("labels") if isinstance(data, dict) else data
            with self._lock:
                for name in names or []:
                    if name not in issue["labels"]:
                        issue["labels"].append(name)
            return self._json([self._label(n) for n in issue["labels"]])

        @app.delete(f"{prefix}/issues/<int:number>/labels/<path:name>")
        def remove_label(owner: str, repo: str, number: int, name: str) -> Response:
            issue = self.state.issues.get(number)
            if issue is None or name not in issue["labels"]:
                return self._error(404, "Label does not exist")
            with self._lock:
                issue["labels"].remove(name)
            return self._json([self._label(n) for n in issue["labels"]])

        @app.get(f"{prefix}/collaborators/<login>/permission")
        def permission(owner: str, repo: str, login: str) -> Response:
            if login not in self.users:
                return self._error(404, "Not Found")
            level = self.state.permissions.get(login, "read")
            reported = "write" if level == "maintain" else level
            return self._json(
                {"permission": reported, "role_name": level, "user": self._user(login)}
            )

        @app.get(f"{prefix}/pulls")
        def list_pulls(owner: str, repo: str) -> Response:
            state = request.args.get("state", "open")
            head = request.args.get("head")
            base = request.args.get("base")
            items = []
            for pull in self.state.pulls.values():
                if state != "all" and pull["state"] != state:
                    continue
                if head and f"{self.owner}:{pull['head']}" != head:
                    continue
                if base and pull["base"] != base:
                    continue
                items.append(self._pull_json(pull))
            return self._paginate(items)

        @app.post(f"{prefix}/pulls")
        def create_pull(owner: str, repo: str) -> Response:
            data = request.get_json() or {}
            head, base = data.get("head"), data.get("base")
            if not data.get("title") or not head or not base:
                return self._error(422, "Validation Failed")
            head_sha = self._branch_sha(head)
            base_sha = self._branch_sha(base)
            if head_sha is None or base_sha is None:
                return self._error(422, "Validation Failed", field="head")
            with self._lock:
                for pull in self.state.pulls.values():
                    if pull["head"] == head and pull["state"] == "open":
                        return self._error(
                            422,
                            "Validation Failed",
                            detail=f"A pull request already exists for "
                            f"{self.owner}:{head}.",
                        )
                number = next(self._numbers)
                pull = {
                    "number": number,
                    "title": data["title"],
                    "body": data.get("body") or "",
                    "head": head,
                    "base": base,
                    "head_sha": head_sha,
                    "base_sha": base_sha,
                    "draft": bool(data.get("draft", False)),
                    "maintainer_can_modify": bool(data.get("maintainer_can_modify")),
                    "state": "open",
                    "created_at": _now(),
                }
                self.state.pulls[number] = pull
            return self._json(self._pull_json(pull), 201)

        @app.route("/<owner>/<repo>.git/<path:rest>", methods=["GET", "POST"])
        def git_http(owner: str, repo: str, rest: str) -> Response:
            return self._git(owner, repo, rest)

        return app

    # Request handling helpers

    def _before(self) -> Response | None:
        path = request.path
        body: Any = None
        if request.data and request.mimetype == "application/json":
            body = json.loads(request.data)
        record = RecordedRequest(
            method=request.method,
            path=path,
            query=parse_qs(request.query_string.decode()),
            body=body,
        )
        if ".git/" in path:
            self.git_requests.append(record)
            return None
        self.requests.append(record)
        if not self._authorized():
            return self._error(401, "Bad credentials")
        for hook in list(self.hooks):
            hook(record)
        fault = self._take_fault(request.method, path)
        if fault is None:
            return None
        if fault.after:
            # Let the request take effect, then replace the response.
            request.environ["fake.fault"] = fault
            return None
        return self._error(fault.status, "Server Error")

    def _after(self, response: Response) -> Response:
        fault = request.environ.get("fake.fault")
        if fault is not None:
            response = self._error(fault.status, "Server Error")
        target = self.git_requests if ".git/" in request.path else self.requests
        for record in reversed(target):
            if record.path == request.path and record.status == 0:
                record.status = response.status_code
                break
        return response

    def _authorized(self) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        return scheme.lower() in ("token", "bearer") and value == self.token

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if (
                    fault.times > 0
                    and fault.method == method
                    and re.fullmatch(fault.path, path)
                ):
                    fault.times -= 1
                    return fault
        return None

    def _json(self, data: Any, status: int = 200) -> Response:
        return Response(json.dumps(data), status=status, mimetype="application/json")

    def _error(self, status: int, message: str, **extra: str) -> Response:
        data: dict[str, Any] = {
            "message": message,
            "documentation_url": "https://docs.github.com/rest",
            "status": str(status),
        }
        if extra:
            data["errors"] = [{"resource": "PullRequest", "code": "custom", **extra}]
        return self._json(data, status)

    def _paginate(self, items: list[Any]) -> Response:
        per_page = min(int(request.args.get("per_page", 30)), 100)
        page = max(int(request.args.get("page", 1)), 1)
        last = max((len(items) + per_page - 1) // per_page, 1)
        response = self._json(items[(page - 1) * per_page : page * per_page])
        links = []
        args = {k: v for k, v in request.args.items() if k != "page"}
        base = f"{self.url}{request.path}"
        if page < last:
            links.append(
                f'<{base}?{urlencode({**args, "page": page + 1})}>; rel="next"'
            )
            links.append(f'<{base}?{urlencode({**args, "page": last})}>; rel="last"')
        if page > 1:
            links.append(f'<{base}?{urlencode({**args, "page": 1})}>; rel="first"')
            links.append(
                f'<{base}?{urlencode({**args, "page": page - 1})}>; rel="prev"'
            )
        if links:
            response.headers["Link"] = ", ".join(links)
        return response

    def _branch_sha(self, branch: str) -> str | None:
        result = subprocess.run(
            [
                "git",
                "-C",
                str(self.bare_path),
                "rev-parse",
                "--verify",
                "-q",
                f"refs/heads/{branch}",
            ],
            capture_output=True,
            text=True,
        )
        return result.stdout.strip() if result.returncode == 0 else None

    def branch_sha(self, branch: str) -> str | None:
        """Return the sha of ``branch`` in the served repository, or None."""
        return self._branch_sha(branch)

    # git smart HTTP

    def _git(self, owner: str, repo: str, rest: str) -> Response:
        if (owner, repo) != (self.owner, self.name):
            return Response("Repository not found.\n", status=404)
        if not self._git_authorized():
            return Response(
                "Authentication required\n",
                status=401,
                headers={"WWW-Authenticate": 'Basic realm="GitHub"'},
            )
        env = {
            "PATH": "/usr/bin:/bin",
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": request.method,
            "PATH_INFO": f"/{owner}/{repo}.git/{rest}",
            "QUERY_STRING": request.query_string.decode(),
            "CONTENT_TYPE": request.headers.get("Content-Type", ""),
            "REMOTE_USER": "x-access-token",
            "REMOTE_ADDR": "127.0.0.1",
            "GIT_CONFIG_NOSYSTEM": "1",
        }

        encoding = request.headers.get("Content-Encoding")
        if encoding:
            env["HTTP_CONTENT_ENCODING"] = encoding
        protocol = request.headers.get("Git-Protocol")
        if protocol:
            env["GIT_PROTOCOL"] = protocol
        data = request.get_data()
        env["CONTENT_LENGTH"] = str(len(data))

        result = subprocess.run(
            ["git", "http-backend"], input=data, env=env, capture_output=True
        )

        head, _, body = result.stdout.partition(b"\r\n\r\n")
        status = 200
        headers = {}
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers[name] = value.strip()
        return Response(body, status=status, headers=headers)

    def _git_authorized(self) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(value).decode()
        except ValueError:
            return False
        _, _, password = decoded.partition(":")
        return password == self.token
