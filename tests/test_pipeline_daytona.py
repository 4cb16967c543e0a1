"""The core pipeline on the daytona provider: the real SDK against the fake server."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tack_action.demo import demo_script
from tack_action.model import Objective, ObjectiveStatus, StreamStatus
from tack_action.orchestrator import Orchestrator, build_context, create_objective
from tack_action.sandbox import git as sandbox_git
from tack_action.state import FileStateStore
from tests.fakes.daytona_server import FakeDaytonaServer, RecordedRequest

from .helpers import cli_command, git, make_repo, plan_text

pytestmark = [
    pytest.mark.slow,
    # Polling-only mode keeps the SDK from waiting on the Socket.IO events the
    # fake does not serve; the SDK warns that the mode is deprecated.
    pytest.mark.filterwarnings("ignore:Polling-only mode:DeprecationWarning"),
]

CANARY = "ghs_canaryTOKENdoNotLeak0123456789"
CANARY_FORMS = (
    CANARY,
    base64.b64encode(f"x-access-token:{CANARY}".encode()).decode(),
)
CREATE = r"^/api/sandbox$"
_ENV_PREFIXES = ("TACK_", "GITHUB_", "DAYTONA_")


@dataclass
class DemoRun:
    """One finished three-stream objective and everything it left behind."""

    fake: FakeDaytonaServer
    repo: Path
    objective: Objective
    expected_tree: str
    watch: str
    log_text: str


def daytona_env(fake: FakeDaytonaServer, cwd: Path) -> dict[str, str]:
    """Return the environment variables a run against ``fake`` needs."""
    return {
        "DAYTONA_API_KEY": fake.api_key,
        "DAYTONA_USE_DEPRECATED_POLLING": "true",
        "NO_PROXY": "127.0.0.1,localhost",
        "GITHUB_TOKEN": CANARY,
        "HOME": str(cwd),
        "XDG_STATE_HOME": str(cwd / "state-home"),
        "GIT_CONFIG_NOSYSTEM": "1",
    }


def daytona_repo(root: Path, script: dict, fake: FakeDaytonaServer) -> Path:
    """Create a sample repository configured for the fake Daytona server."""
    config = {
        "sandbox": {"provider": "daytona", "daytona": {"api_url": fake.api_url}},
    }
    return make_repo(root, script, config=config)


def final_files(script: dict) -> dict[str, str]:
    """Return each file the builders write, as the last attempt leaves it."""
    files: dict[str, str] = {}
    for attempts in script.get("builders", {}).values():
        for attempt in attempts:
            files.update(attempt.get("files", {}))
    return files


def expected_tree(repo: Path, files: dict[str, str], workdir: Path) -> str:
    """Return the tree id of ``main`` plus ``files``, built in a fresh clone."""
    clone = workdir / "expected"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    for path, content in files.items():
        target = clone / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    git(clone, "add", "-A")
    return git(clone, "write-tree")


def merged_tree(repo: Path, objective: Objective) -> str:
    return git(repo, "rev-parse", f"{objective.merge_branch}^{{tree}}")


def creates(fake: FakeDaytonaServer) -> list[dict]:
    return [request.json() for request in fake.requests_matching("POST", CREATE)]


def creates_with(fake: FakeDaytonaServer, **labels: str) -> list[dict]:
    wanted = {f"tack.{key}": value for key, value in labels.items()}
    return [
        body
        for body in creates(fake)
        if all(body["labels"].get(k) == v for k, v in wanted.items())
    ]


def carries_canary(request: RecordedRequest) -> bool:
    text = request.text() + json.dumps(request.headers) + request.path
    return any(form in text for form in CANARY_FORMS)


def is_git_invocation(request: RecordedRequest) -> bool:
    """Tell whether the request is one git exec with the token only in its env."""
    if request.method != "POST" or not request.path.endswith("/process/execute"):
        return False
    body = request.json()
    in_command = any(form in body["command"] for form in CANARY_FORMS)
    return "git " in body["command"] and not in_command


def files_with_canary(root: Path) -> list[Path]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            if any(form.encode() in data for form in CANARY_FORMS):
                found.append(path)
    return found


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    root = tmp_path_factory.mktemp("daytona-demo")
    cwd = root / "cwd"
    cwd.mkdir()
    watch = io.StringIO()
    log_stream = io.StringIO()
    handler = logging.StreamHandler(log_stream)
    handler.setLevel(logging.DEBUG)
    root_logger = logging.getLogger()
    previous_level = root_logger.level

    with pytest.MonkeyPatch.context() as patch, FakeDaytonaServer(root / "sbx") as fake:
        for name in list(os.environ):
            if name.startswith(_ENV_PREFIXES):
                patch.delenv(name)
        for name, value in daytona_env(fake, cwd).items():
            patch.setenv(name, value)
        patch.chdir(cwd)
        script = demo_script()
        repo = daytona_repo(root / "work", script, fake)
        store = FileStateStore(root / "state")
        root_logger.addHandler(handler)
        root_logger.setLevel(logging.DEBUG)
        try:
            created = create_objective("Add textkit helpers", repo, store)
            ctx = build_context(
                created, store, git_env=sandbox_git.auth_env(os.environ["GITHUB_TOKEN"])
            )
            ctx.out = watch
            orchestrator = Orchestrator(ctx)
            orchestrator.run()
            objective = orchestrator.approve()
        finally:
            root_logger.removeHandler(handler)
            root_logger.setLevel(previous_level)
        tree = expected_tree(repo, final_files(script), root)
        yield DemoRun(
            fake, repo, objective, tree, watch.getvalue(), log_stream.getvalue()
        )


def test_daytona_demo_completes_with_expected_tree(demo_run: DemoRun) -> None:
    objective = demo_run.objective

    assert objective.status is ObjectiveStatus.COMPLETED
    assert merged_tree(demo_run.repo, objective) == demo_run.expected_tree


def test_daytona_demo_creates_one_sandbox_per_stream(demo_run: DemoRun) -> None:
    fake = demo_run.fake
    objective = demo_run.objective
    plan = objective.plan

    assert len(creates_with(fake, role="builder")) == len(plan.streams) == 3
    for stream in plan.streams:
        assert len(creates_with(fake, role="builder", stream=stream.id)) == 1
    assert len(creates_with(fake, role="merger")) == 1
    assert len(creates_with(fake, role="planner")) == 1
    assert len(creates(fake)) == 5


def test_daytona_demo_names_and_labels_sandboxes(demo_run: DemoRun) -> None:
    objective = demo_run.objective
    short = objective.short_id
    by_stream = {
        body["labels"].get("tack.stream"): body for body in creates(demo_run.fake)
    }

    for stream in objective.plan.streams:
        body = by_stream[stream.id]
        assert body["name"] == f"tack-{short}-{stream.slug}"
        assert body["labels"]["tack.objective"] == objective.id
        assert body["labels"]["tack.repo"] == objective.repo
    merger = creates_with(demo_run.fake, role="merger")[0]
    assert merger["name"] == f"tack-{short}-merge"
    assert merger["labels"]["tack.repo"] == objective.repo


def test_daytona_demo_fix_loop_reuses_sandbox(demo_run: DemoRun) -> None:
    objective = demo_run.objective
    counter = objective.plan.stream("add-word-frequency-counter")
    gate_failures = [
        a for a in objective.ledger if a.failure_kind == "quality_gate_failure"
    ]

    assert len(gate_failures) == 1
    assert gate_failures[0].sandbox_id == counter.sandbox_id
    assert len(creates_with(demo_run.fake, stream=counter.id)) == 1
    builder_runs = [
        request
        for request in demo_run.fake.requests_matching("POST", r"/process/session/")
        if f"TACK_STREAM_ID={counter.id}" in request.text()
        and "TACK_AGENT_ROLE=builder" in request.text()
    ]
    assert len(builder_runs) == 2
    assert {r.path.split("/")[2] for r in builder_runs} == {counter.sandbox_id}


def test_daytona_demo_deletes_sandboxes_when_done(demo_run: DemoRun) -> None:
    deleted = {
        r.path.split("/")[3]
        for r in demo_run.fake.requests_matching("DELETE", r"^/api/sandbox/")
    }
    created_ids = {s.sandbox_id for s in demo_run.objective.plan.streams} | {
        demo_run.objective.merger_sandbox_id
    }

    assert demo_run.fake.sandboxes == {}
    assert created_ids <= deleted


def test_daytona_demo_token_only_in_git_requests(demo_run: DemoRun) -> None:
    carrying = [r for r in demo_run.fake.requests if carries_canary(r)]
    leaks = [f"{r.method} {r.path}" for r in carrying if not is_git_invocation(r)]

    assert carrying, "the run sent no authenticated git request at all"
    assert leaks == []


def test_daytona_demo_token_not_logged(demo_run: DemoRun) -> None:
    assert "tack-" in demo_run.log_text
    for form in CANARY_FORMS:
        assert form not in demo_run.log_text
        assert form not in demo_run.watch


def test_daytona_demo_logs_api_calls(demo_run: DemoRun) -> None:
    per_sandbox: dict[str, int] = {}
    for request in demo_run.fake.requests:
        parts = request.path.split("/")
        if len(parts) > 3 and parts[1] == "toolbox":
            per_sandbox[parts[2]] = per_sandbox.get(parts[2], 0) + 1
        elif len(parts) > 3 and parts[2] == "sandbox":
            per_sandbox[parts[3]] = per_sandbox.get(parts[3], 0) + 1
    streams = {s.sandbox_id: s.slug for s in demo_run.objective.plan.streams}
    counts = {slug: per_sandbox.get(sid, 0) for sid, slug in streams.items()}
    print(f"\nDaytona API calls: {len(demo_run.fake.requests)} per objective")
    print("per stream sandbox:", json.dumps(counts))

    assert all(count > 0 for count in counts.values())
    assert sum(counts.values()) < len(demo_run.fake.requests)


# Kill, stop and delete.


@pytest.fixture
def fake(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeDaytonaServer]:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    with FakeDaytonaServer(tmp_path / "sbx") as server:
        for name, value in daytona_env(server, cwd).items():
            monkeypatch.setenv(name, value)
        yield server


def _stream(title: str, scope: list[str]) -> dict:
    return {
        "title": title,
        "description": f"Implement {title.lower()}.",
        "file_scope": scope,
        "dependencies": [],
    }


def _slow_script(seconds: float) -> dict:
    """Two streams; the first builder run of ``add-notes`` sleeps ``seconds``."""
    notes = {"NOTES.md": "# Notes\n\nSlow stream.\n"}
    return {
        "builders": {
            "add-notes": [{"files": notes, "sleep": seconds}, {"files": notes}],
            "add-readme-line": [
                {"files": {"README.md": "# textkit\n\nReadme line.\n"}}
            ],
        },
    }


def _start_cli(
    tmp_path: Path, repo: Path, fake: FakeDaytonaServer
) -> subprocess.Popen[bytes]:
    plan_file = tmp_path / "plan.md"
    plan_file.write_text(
        plan_text(
            [
                _stream("Add notes", ["NOTES.md"]),
                _stream("Add readme line", ["README.md"]),
            ]
        )
    )
    args = ["plan", "Add notes", "--repo", str(repo), "--plan-file", str(plan_file)]
    return subprocess.Popen(
        cli_command(tmp_path / "state", *args, "--approve"),
        cwd=Path.cwd(),
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _wait_for_builder(
    fake: FakeDaytonaServer, process: subprocess.Popen[bytes], slug: str
) -> str:
    """Wait until the builder of ``slug`` runs and return its sandbox id."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for request in fake.requests_matching("POST", r"/process/session/tack/exec$"):
            text = request.text()
            if "TACK_AGENT_ROLE=builder" in text and f"TACK_STREAM_SLUG={slug}" in text:
                return request.path.split("/")[2]
        if process.poll() is not None:
            output = process.stdout.read().decode() if process.stdout else ""
            raise AssertionError(f"the run ended before the builder started:\n{output}")
        time.sleep(0.05)
    raise AssertionError(f"the builder of {slug!r} never started")


def _wait_for_merge(state: Path, process: subprocess.Popen[bytes], slug: str) -> None:
    """Wait until the stream ``slug`` is merged, so every sandbox exists."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        objectives = FileStateStore(state).list()
        plan = objectives[0].plan if objectives else None
        if plan and plan.stream(slug).status is StreamStatus.MERGED:
            return
        assert process.poll() is None, "the run ended before the merge"
        time.sleep(0.05)
    raise AssertionError(f"stream {slug!r} was never merged")


def _only_objective(state: Path) -> Objective:
    objectives = FileStateStore(state).list()
    assert len(objectives) == 1
    return objectives[0]


def test_daytona_kill_then_resume_creates_nothing(
    tmp_path: Path, fake: FakeDaytonaServer
) -> None:
    script = _slow_script(60)
    state = tmp_path / "state"
    repo = daytona_repo(tmp_path / "work", script, fake)
    process = _start_cli(tmp_path, repo, fake)
    _wait_for_builder(fake, process, "add-notes")
    _wait_for_merge(state, process, "add-readme-line")
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=10)
    created_before = len(creates(fake))

    resumed = subprocess.run(
        cli_command(
            tmp_path / "state", "resume", _only_objective(tmp_path / "state").id
        ),
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=180,
    )

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert len(creates(fake)) == created_before
    objective = _only_objective(tmp_path / "state")
    assert objective.status is ObjectiveStatus.COMPLETED
    tree = expected_tree(repo, final_files(script), tmp_path)
    assert merged_tree(repo, objective) == tree
    assert fake.sandboxes == {}


def test_daytona_stopped_sandbox_is_started_again(
    tmp_path: Path, fake: FakeDaytonaServer
) -> None:
    script = _slow_script(2)
    repo = daytona_repo(tmp_path / "work", script, fake)
    process = _start_cli(tmp_path, repo, fake)
    sandbox_id = _wait_for_builder(fake, process, "add-notes")

    fake.set_state(sandbox_id, "stopped")
    output = process.communicate(timeout=180)[0].decode()

    assert process.returncode == 0, output
    assert fake.requests_matching("POST", rf"^/api/sandbox/{sandbox_id}/start$")
    assert len(creates(fake)) == 3
    objective = _only_objective(tmp_path / "state")
    tree = expected_tree(repo, final_files(script), tmp_path)
    assert merged_tree(repo, objective) == tree


_BAD_COUNT = "def frequencies(text):\n    return {}\n"
_GOOD_COUNT = (
    "from collections import Counter\n\n"
    "def frequencies(text):\n"
    "    return Counter(w.lower() for w in text.split())\n"
)
_COUNT_TEST = (
    "import unittest\n\nfrom textkit.count import frequencies\n\n\n"
    "class CountTest(unittest.TestCase):\n"
    "    def test_counts(self):\n"
    '        self.assertEqual(frequencies("a A")["a"], 2)\n'
)


def _blocking_script() -> dict:
    return {
        "plan": plan_text(
            [
                _stream("Add counter", ["textkit/count.py", "tests/test_count.py"]),
                _stream("Add readme note", ["README.md"]),
            ]
        ),
        "builders": {
            "add-counter": [
                {
                    "files": {
                        "textkit/count.py": _BAD_COUNT,
                        "tests/test_count.py": _COUNT_TEST,
                    }
                }
            ],
            "add-readme-note": [{"files": {"README.md": "# textkit\n\nNotes.\n"}}],
        },
        "guided": {"add-counter": {"files": {"textkit/count.py": _GOOD_COUNT}}},
    }


def _context(repo_state: Path, objective: Objective, out: io.StringIO):
    store = FileStateStore(repo_state)
    ctx = build_context(objective, store, git_env=sandbox_git.auth_env(CANARY))
    ctx.out = out
    return ctx


def _blocked_run(tmp_path: Path, fake: FakeDaytonaServer) -> tuple[Path, Objective]:
    repo = daytona_repo(tmp_path / "work", _blocking_script(), fake)
    state = tmp_path / "state"
    created = create_objective("Add a counter", repo, FileStateStore(state))
    orchestrator = Orchestrator(_context(state, created, io.StringIO()))
    orchestrator.run()
    return repo, orchestrator.approve()


def test_daytona_blocked_objective_keeps_sandboxes(
    tmp_path: Path, fake: FakeDaytonaServer
) -> None:
    _, blocked = _blocked_run(tmp_path, fake)

    assert blocked.status is ObjectiveStatus.BLOCKED
    kept = {s.sandbox_id for s in blocked.plan.streams} | {blocked.merger_sandbox_id}
    assert kept <= set(fake.sandboxes)
    assert files_with_canary(fake.root) == []
    assert [s.data["env"] for s in fake.sandboxes.values() if s.data["env"]] == []


def test_daytona_deleted_sandbox_is_recreated(
    tmp_path: Path, fake: FakeDaytonaServer
) -> None:
    repo, blocked = _blocked_run(tmp_path, fake)
    gone_id = blocked.plan.stream("add-counter").sandbox_id
    fake.delete_sandbox(fake.sandboxes[gone_id])
    created_before = len(creates(fake))
    out = io.StringIO()

    orchestrator = Orchestrator(_context(tmp_path / "state", blocked, out))
    done = orchestrator.retry("add-counter", "lower-case words")

    assert done.status is ObjectiveStatus.COMPLETED
    assert f"sandbox {gone_id} is gone; recreating it" in out.getvalue()
    assert len(creates(fake)) == created_before + 1
    assert done.plan.stream("add-counter").status is StreamStatus.MERGED
    assert fake.sandboxes == {}
