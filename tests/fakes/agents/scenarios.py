"""Transcripts that the fake ``claude``, ``codex`` and ``pi`` executables replay.

We wrote these from the public descriptions of each CLI's machine-readable
output, not from captured sessions, so field sets are the commonly documented
ones and real CLIs add more:

- Claude Code ``claude -p --output-format stream-json --verbose``: a ``system``
  ``init`` event with ``cwd``, ``assistant`` messages whose content holds
  ``text`` and ``tool_use`` blocks (Read, Edit, Write, Bash), ``user`` messages
  with ``tool_result`` blocks, and a final ``result`` event with
  ``total_cost_usd``.
- Codex ``codex exec --json``: ``thread.started``, ``turn.started``,
  ``item.started`` / ``item.completed`` with ``command_execution``,
  ``file_change``, ``reasoning`` and ``agent_message`` items, and
  ``turn.completed`` with token ``usage``.
- Pi ``pi -p --mode json``: ``session``, ``agent_start``, ``turn_start``,
  ``message_start`` / ``message_update`` / ``message_end`` (assistant messages
  with ``toolCall`` blocks and ``usage.cost.total``), ``tool_execution_start``
  / ``tool_execution_end``, ``turn_end`` and ``agent_end``.

Environment variables select the behaviour:

- ``FAKE_AGENT_SCENARIO``: ``success`` (default), ``malformed`` (garbage lines
  mixed in), ``crash`` (dies mid-stream with exit 3), ``hang`` (stops writing
  and sleeps), ``printenv`` (the final reply contains the whole environment).
- ``FAKE_AGENT_TRANSCRIPT``: a file whose lines are printed instead; ``{cwd}``
  is replaced by the working directory.
- ``FAKE_AGENT_FINAL``: the final reply text.
- ``FAKE_AGENT_WRITE``: a repository path the fake really writes, and names
  in its tool calls.
- ``FAKE_AGENT_RECORD``: a file that receives a JSON record of argv, stdin,
  the environment and Pi's projected ``auth.json``.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid

VERSIONS = {
    "claude": "2.0.14 (Claude Code)",
    "codex": "codex-cli 0.46.0",
    "pi": "0.45.3",
}

COSTS = {"claude": 0.0421, "pi": 0.0036}

DEFAULT_FINAL = (
    "Added the endpoint and its test.\n\n"
    'TACK_MESSAGES:{"commit_message": "Add the endpoint", "pr_title": "Endpoint"}'
)


def main(cli: str) -> int:
    """Behave like ``cli``: print a version, or replay a transcript."""
    if sys.argv[1:] == ["--version"]:
        print(VERSIONS[cli])
        return 0

    stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    _record(stdin)
    scenario = os.environ.get("FAKE_AGENT_SCENARIO", "success")
    final = os.environ.get("FAKE_AGENT_FINAL", DEFAULT_FINAL)
    if scenario == "printenv":
        final = "\n".join(f"{k}={v}" for k, v in sorted(os.environ.items()))
        final += "\n" + DEFAULT_FINAL

    path = os.environ.get("FAKE_AGENT_WRITE", "")
    if path:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "a") as handle:
            handle.write("# changed by the fake agent\n")

    transcript = os.environ.get("FAKE_AGENT_TRANSCRIPT")
    if transcript:
        with open(transcript) as handle:
            lines = [line.rstrip("\n") for line in handle]
        lines = [line.replace("{cwd}", os.getcwd()) for line in lines]
    else:
        events = BUILDERS[cli](os.getcwd(), path or "src/app.py", final)
        lines = [json.dumps(event) for event in events]

    if scenario == "malformed":
        lines = _with_garbage(lines)
    if scenario in ("crash", "hang"):
        lines = lines[: max(2, len(lines) // 2)]

    for line in lines:
        print(line, flush=True)

    if scenario == "crash":
        sys.stdout.write('{"type": "assistant", "message": {"content": [{"ty')
        sys.stdout.flush()
        print(f"\nError: {cli} lost its connection to the model API", file=sys.stderr)
        return 3
    if scenario == "hang":
        time.sleep(3600)
    return 0


def _record(stdin: str) -> None:
    target = os.environ.get("FAKE_AGENT_RECORD")
    if not target:
        return
    record = {"argv": sys.argv, "stdin": stdin, "env": dict(os.environ)}
    # Pi reads a projected auth.json from this directory; keep what it held.
    agent_dir = os.environ.get("PI_CODING_AGENT_DIR")
    if agent_dir and os.path.exists(os.path.join(agent_dir, "auth.json")):
        with open(os.path.join(agent_dir, "auth.json")) as handle:
            record["pi_auth"] = handle.read()
    with open(target, "w") as handle:
        json.dump(record, handle)


def _with_garbage(lines: list[str]) -> list[str]:
    garbage = [
        "not json at all",
        "{truncated",
        "[1, 2, 3]",
        '{"type": "assistant", "message": "a string, not an object"}',
        '{"type": "item.completed", "item": null}',
        '{"type": "message_end", "message": {"role": "assistant", "usage": 5}}',
        "",
    ]
    mixed = []
    for index, line in enumerate(lines):
        mixed.append(line)
        mixed.append(garbage[index % len(garbage)])
    return mixed


def claude_events(cwd: str, path: str, final: str) -> list[dict]:
    """Return a Claude Code stream-json session that reads, edits and tests."""
    session = str(uuid.uuid4())
    absolute = os.path.join(cwd, path)

    def assistant(number: int, content: list[dict]) -> dict:
        message = {
            "id": f"msg_0{number}",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": content,
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 120, "output_tokens": 40},
        }
        return {
            "type": "assistant",
            "message": message,
            "parent_tool_use_id": None,
            "session_id": session,
        }

    def result(number: int, text: str) -> dict:
        content = [
            {"type": "tool_result", "tool_use_id": f"toolu_0{number}", "content": text}
        ]
        return {
            "type": "user",
            "message": {"role": "user", "content": content},
            "session_id": session,
        }

    def tool(number: int, name: str, arguments: dict) -> dict:
        return {
            "type": "tool_use",
            "id": f"toolu_0{number}",
            "name": name,
            "input": arguments,
        }

    return [
        {
            "type": "system",
            "subtype": "init",
            "cwd": cwd,
            "session_id": session,
            "tools": ["Bash", "Edit", "Read", "Write"],
            "model": "claude-sonnet-4-5",
            "permissionMode": "bypassPermissions",
            "apiKeySource": "ANTHROPIC_API_KEY",
        },
        assistant(
            1,
            [
                {"type": "text", "text": "I'll read the module first."},
                tool(1, "Read", {"file_path": absolute}),
            ],
        ),
        result(1, "def app():\n    pass\n"),
        assistant(
            2,
            [
                tool(
                    2,
                    "Edit",
                    {
                        "file_path": absolute,
                        "old_string": "pass",
                        "new_string": "return 1",
                    },
                )
            ],
        ),
        result(2, "The file has been updated."),
        assistant(
            3,
            [
                tool(
                    3,
                    "Write",
                    {
                        "file_path": os.path.join(cwd, "tests/test_app.py"),
                        "content": "def test_app(): pass\n",
                    },
                )
            ],
        ),
        result(3, "File created."),
        assistant(
            4,
            [
                tool(
                    4,
                    "Bash",
                    {"command": "python -m pytest -q", "description": "Run the tests"},
                )
            ],
        ),
        result(4, "1 passed"),
        assistant(5, [{"type": "text", "text": final}]),
        {
            "type": "result",
            "subtype": "success",
            "is_error": False,
            "duration_ms": 5120,
            "duration_api_ms": 4300,
            "num_turns": 5,
            "result": final,
            "session_id": session,
            "total_cost_usd": COSTS["claude"],
            "usage": {"input_tokens": 600, "output_tokens": 200},
        },
    ]


def codex_events(cwd: str, path: str, final: str) -> list[dict]:
    """Return a ``codex exec --json`` session that runs commands and edits files."""

    def command(number: int, text: str, output: str) -> list[dict]:
        started = {
            "id": f"item_{number}",
            "type": "command_execution",
            "command": f"bash -lc '{text}'",
            "aggregated_output": "",
            "exit_code": None,
            "status": "in_progress",
        }
        done = {
            **started,
            "aggregated_output": output,
            "exit_code": 0,
            "status": "completed",
        }
        return [
            {"type": "item.started", "item": started},
            {"type": "item.completed", "item": done},
        ]

    changes = [
        {"path": os.path.join(cwd, path), "kind": "update"},
        {"path": os.path.join(cwd, "tests/test_app.py"), "kind": "add"},
    ]
    return [
        {"type": "thread.started", "thread_id": "0199a213-81c0-7800-8aa1-bbab2a035a53"},
        {"type": "turn.started"},
        {
            "type": "item.completed",
            "item": {
                "id": "item_0",
                "type": "reasoning",
                "text": "**Reading the module**",
            },
        },
        *command(1, f"cat {path}", "def app():\n    pass\n"),
        {
            "type": "item.completed",
            "item": {
                "id": "item_2",
                "type": "file_change",
                "changes": changes,
                "status": "completed",
            },
        },
        *command(3, "python -m pytest -q", "1 passed\n"),
        {
            "type": "item.completed",
            "item": {"id": "item_4", "type": "agent_message", "text": final},
        },
        {
            "type": "turn.completed",
            "usage": {
                "input_tokens": 1200,
                "cached_input_tokens": 200,
                "output_tokens": 345,
            },
        },
    ]


def pi_events(cwd: str, path: str, final: str) -> list[dict]:
    """Return a ``pi --mode json`` session with read, edit, write and bash tools."""
    now = 1764800000000
    calls = [
        ("read", {"path": path}),
        ("edit", {"path": path, "oldText": "pass", "newText": "return 1"}),
        ("write", {"path": "tests/test_app.py", "content": "def test_app(): pass\n"}),
        ("bash", {"command": "python -m pytest -q"}),
    ]
    per_message = round(COSTS["pi"] / (len(calls) + 1), 6)

    def assistant(content: list[dict], stop: str) -> dict:
        cost = {
            "input": per_message / 2,
            "output": per_message / 2,
            "cacheRead": 0,
            "cacheWrite": 0,
            "total": per_message,
        }
        return {
            "role": "assistant",
            "content": content,
            "api": "anthropic-messages",
            "provider": "anthropic",
            "model": "claude-sonnet-4-5",
            "usage": {
                "input": 300,
                "output": 60,
                "cacheRead": 0,
                "cacheWrite": 0,
                "totalTokens": 360,
                "cost": cost,
            },
            "stopReason": stop,
            "timestamp": now,
        }

    events: list[dict] = [
        {
            "type": "session",
            "version": 3,
            "id": str(uuid.uuid4()),
            "timestamp": "2026-01-13T00:33:34.702Z",
            "cwd": cwd,
        },
        {"type": "agent_start"},
    ]
    for number, (name, arguments) in enumerate(calls, start=1):
        call_id = f"call_{number}"
        message = assistant(
            [{"type": "toolCall", "id": call_id, "name": name, "arguments": arguments}],
            "toolUse",
        )
        tool_result = {
            "role": "toolResult",
            "toolCallId": call_id,
            "toolName": name,
            "content": [{"type": "text", "text": "ok"}],
            "isError": False,
            "timestamp": now,
        }
        events += [
            {"type": "turn_start"},
            {"type": "message_start", "message": {**message, "content": []}},
            {
                "type": "message_update",
                "message": message,
                "assistantMessageEvent": {"type": "toolcall_end"},
            },
            {"type": "message_end", "message": message},
            {
                "type": "tool_execution_start",
                "toolCallId": call_id,
                "toolName": name,
                "args": arguments,
            },
            {
                "type": "tool_execution_end",
                "toolCallId": call_id,
                "toolName": name,
                "result": {"content": [{"type": "text", "text": "ok"}]},
                "isError": False,
            },
            {"type": "message_start", "message": tool_result},
            {"type": "message_end", "message": tool_result},
            {"type": "turn_end", "message": message, "toolResults": [tool_result]},
        ]
    closing = assistant([{"type": "text", "text": final}], "stop")
    events += [
        {"type": "turn_start"},
        {"type": "message_start", "message": {**closing, "content": []}},
        {
            "type": "message_update",
            "message": closing,
            "assistantMessageEvent": {"type": "text_delta", "delta": final[:10]},
        },
        {"type": "message_end", "message": closing},
        {"type": "turn_end", "message": closing, "toolResults": []},
        {"type": "agent_end", "messages": [closing]},
    ]
    return events


BUILDERS = {"claude": claude_events, "codex": codex_events, "pi": pi_events}
