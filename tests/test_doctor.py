"""Tests for the doctor's preflight checks, against fakes on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tack_action.commands.doctor import doctor
from tack_action.doctor import is_loopback, probe_health
from tests.fakes.daytona_server import FakeDaytonaServer
from tests.fakes.github_server import FakeGitHub

from .helpers import make_repo


def run(repo: Path, *args: str) -> Result:
    return CliRunner().invoke(doctor, ["--repo", str(repo), "--json", *args])


def statuses(result: Result) -> dict[str, dict]:
    return {check["name"]: check for check in json.loads(result.output)}


@pytest.fixture
def fake(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeDaytonaServer]:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with FakeDaytonaServer(tmp_path / "sbx") as server:
        yield server


def daytona_repo(tmp_path: Path, fake: FakeDaytonaServer, external: str) -> Path:
    config = {
        "sandbox": {"provider": "daytona", "daytona": {"api_url": fake.api_url}},
        "daemon": {"external_url": external, "base_branch": "main"},
    }
    return make_repo(tmp_path / "work", {}, config=config)


def test_doctor_local_repo_passes_with_skips(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "work", {})

    result = run(repo)

    assert result.exit_code == 0, result.output
    checks = statuses(result)
    assert checks["config"]["status"] == "pass"
    assert checks["daytona_auth"]["status"] == "skip"
    assert checks["external_url"]["status"] == "skip"
    assert checks["github_token"]["status"] == "warn"


def test_doctor_daytona_key_accepted(
    tmp_path: Path, fake: FakeDaytonaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAYTONA_API_KEY", fake.api_key)
    repo = daytona_repo(tmp_path, fake, "")

    result = run(repo)

    checks = statuses(result)
    assert checks["daytona_auth"]["status"] == "pass"
    assert checks["external_url"]["status"] == "fail"
    assert "empty" in checks["external_url"]["detail"]
    assert result.exit_code == 1


def test_doctor_daytona_bad_key_fails(
    tmp_path: Path, fake: FakeDaytonaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAYTONA_API_KEY", "wrong-key")
    repo = daytona_repo(tmp_path, fake, "")

    result = run(repo)

    check = statuses(result)["daytona_auth"]
    assert check["status"] == "fail"
    assert "rejected the API key" in check["detail"]
    assert "DAYTONA_API_KEY" in check["fix"]


def test_doctor_loopback_external_url_fails(
    tmp_path: Path, fake: FakeDaytonaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAYTONA_API_KEY", fake.api_key)
    repo = daytona_repo(tmp_path, fake, fake.url)

    result = run(repo)

    check = statuses(result)["external_url"]
    assert check["status"] == "fail"
    assert "loopback" in check["detail"]
    assert not fake.requests_matching("GET", "healthz")


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("localhost", True),
        ("127.0.0.2", True),
        ("[::1]", True),
        ("0.0.0.0", True),
        ("relay.example.com", False),
        ("10.0.0.5", False),
    ],
)
def test_is_loopback_classifies_hosts(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        code = self.status if self.path == "/healthz" else 404
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def health_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_probe_health_accepts_200(health_server: ThreadingHTTPServer) -> None:
    url = f"http://127.0.0.1:{health_server.server_address[1]}"

    healthy, what = probe_health(url)

    assert healthy is True
    assert what.endswith("answered 200")


def test_probe_health_rejects_503(
    health_server: ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_Health, "status", 503)
    url = f"http://127.0.0.1:{health_server.server_address[1]}/"

    healthy, what = probe_health(url)

    assert healthy is False
    assert "503" in what


@pytest.fixture
def github(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitHub]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with FakeGitHub(tmp_path / "github") as server:
        monkeypatch.setenv("GITHUB_API_URL", server.url)
        yield server


def test_doctor_github_token_can_push(
    tmp_path: Path, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", github.token)
    repo = make_repo(tmp_path / "work", {})

    result = run(repo, "--github-repo", github.full_name)

    check = statuses(result)["github_token"]
    assert check["status"] == "pass", check
    assert github.token not in result.output


def test_doctor_github_bad_token_fails(
    tmp_path: Path, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_notTheRightToken")
    repo = make_repo(tmp_path / "work", {})

    result = run(repo, "--github-repo", github.full_name)

    check = statuses(result)["github_token"]
    assert check["status"] == "fail"
    assert "rejected the token" in check["detail"]
    assert result.exit_code == 1
