"""Read agent output line by line into activity, a final message and cost.

This module uses only the Python standard library, because it is uploaded into
sandboxes next to ``runner.py`` and imported there as well as by the runtimes.

One ``TranscriptReader`` understands one output format:

- ``text``: plain lines, as the ``command`` runtime writes them;
- ``claude-code``: ``claude -p --output-format stream-json --verbose`` lines;
- ``codex``: ``codex exec --json`` events;
- ``pi``: ``pi -p --mode json`` session events.

Lines that are not JSON objects in a JSON format, such as warnings a CLI
prints on stderr, are skipped for activity but kept for the final message
when the stream never produced one.
"""

from __future__ import annotations

import json
import math
import re
import shlex

FORMATS = ("text", "claude-code", "codex", "pi")

ACTIVITY_PREFIXES = ("read ", "edit ", "write ", "$ ", "done: ")
ACTIVITY_MAX_CHARS = 200
SUMMARY_MAX_CHARS = 120

# Lines of plain output kept as the final message when no event carried one.
FALLBACK_MESSAGE_LINES = 20

MESSAGES_MARKER = "TACK_MESSAGES:"
DONE_MARKER = "TACK_DONE:"
COST_MARKER = "TACK_COST_USD:"
_MARKERS = (MESSAGES_MARKER, DONE_MARKER, COST_MARKER)

# The runner writes this JSON line before a JSON-format agent's output, so
# that readers outside the sandbox can show paths relative to the checkout.
SESSION_EVENT = "tack.session"

# Claude Code tool names and the activity verb each one maps to.
_CLAUDE_TOOLS = {
    "Read": "read",
    "Edit": "edit",
    "MultiEdit": "edit",
    "NotebookEdit": "edit",
    "Write": "write",
}

# Pi's built-in tools that read or change one file.
_PI_FILE_TOOLS = {"read": "read", "edit": "edit", "write": "write"}

# Codex wraps each command as `bash -lc '<command>'`; the inner command is
# what a reader wants to see.
_SHELL_WRAPPER = re.compile(r"^(?:/usr/bin/|/bin/)?(?:ba|z)?sh -l?c ")


class TranscriptReader:
    """Incremental reader of one agent's output in one format."""

    def __init__(self, output_format: str, workdir: str = "") -> None:
        if output_format not in FORMATS:
            raise ValueError(
                f"Unknown agent output format {output_format!r}; use one of "
                f"{', '.join(FORMATS)}."
            )
        self.format = output_format
        self.workdir = workdir.rstrip("/")
        self.final_message = ""
        self.messages: dict[str, str] = {}
        self.cost_usd: float | None = None
        self.done_summary = ""
        self.error = ""
        self._plain_lines: list[str] = []
        self._seen_items: set[str] = set()
        self._pi_cost = 0.0

    def feed(self, line: str) -> list[str]:
        """Read one output line and return the activity lines it produced."""
        line = line.rstrip("\r\n")
        if self.format == "text":
            return self._feed_text(line)

        event = _load_object(line)
        if event is None:
            if line.strip():
                self._keep_plain(line)
            return []
        if event.get("type") == SESSION_EVENT:
            cwd = event.get("cwd")
            if isinstance(cwd, str) and cwd:
                self.workdir = cwd.rstrip("/")
            return []
        if self.format == "claude-code":
            return self._feed_claude(event)
        if self.format == "codex":
            return self._feed_codex(event)
        return self._feed_pi(event)

    def finish(self) -> list[str]:
        """Settle the final message at the end of output; return late activity.

        Without any assistant reply, as when a CLI fails before its first
        request, the last plain lines become the final message.
        """
        if not self.final_message and self._plain_lines:
            self.final_message = "\n".join(self._plain_lines[-FALLBACK_MESSAGE_LINES:])
        return []

    def summary(self) -> str:
        """Return a one-line summary of the session's result."""
        if self.done_summary:
            return self.done_summary
        return _first_line(self.final_message)[:SUMMARY_MAX_CHARS]

    # --- plain text ----------------------------------------------------------

    def _feed_text(self, line: str) -> list[str]:
        stripped = line.strip()
        if stripped.startswith(_MARKERS):
            return self._read_marker(stripped)

        self._keep_plain(line)
        if line.startswith(ACTIVITY_PREFIXES):
            return [line[:ACTIVITY_MAX_CHARS]]
        return []

    def _keep_plain(self, line: str) -> None:
        self._plain_lines.append(line.rstrip())
        if len(self._plain_lines) > 4 * FALLBACK_MESSAGE_LINES:
            del self._plain_lines[:-FALLBACK_MESSAGE_LINES]

    def _read_marker(self, line: str) -> list[str]:
        if line.startswith(DONE_MARKER):
            return [self._done(line[len(DONE_MARKER) :].strip())]
        if line.startswith(MESSAGES_MARKER):
            messages = parse_messages(line[len(MESSAGES_MARKER) :])
            if messages is not None:
                self.messages = messages
            return []
        cost = parse_cost(line[len(COST_MARKER) :])
        if cost is not None:
            self.cost_usd = cost
        return []

    def _read_reply(self, text: str) -> str:
        """Take markers out of an assistant reply and return the rest."""
        remaining = []
        for line in text.splitlines():
            stripped = line.strip()
            if stripped.startswith((MESSAGES_MARKER, DONE_MARKER)):
                self._read_marker(stripped)
            else:
                remaining.append(line)
        return "\n".join(remaining).strip()

    def _done(self, summary: str) -> str:
        self.done_summary = summary[:SUMMARY_MAX_CHARS]
        return f"done: {summary}"[:ACTIVITY_MAX_CHARS]

    # --- Claude Code stream-json ----------------------------------------------

    def _feed_claude(self, event: dict) -> list[str]:
        kind = event.get("type")
        if kind == "system" and event.get("subtype") == "init":
            cwd = event.get("cwd")
            if isinstance(cwd, str) and not self.workdir:
                self.workdir = cwd.rstrip("/")
            return []

        if kind == "assistant":
            return self._claude_message(event.get("message"))

        if kind == "result":
            cost = event.get("total_cost_usd", event.get("cost_usd"))
            if _is_cost(cost):
                self.cost_usd = float(cost)
            result = event.get("result")
            if isinstance(result, str) and result.strip():
                self.final_message = self._read_reply(result)
            if event.get("is_error") or event.get("subtype") != "success":
                self.error = str(event.get("subtype") or "error")
                if isinstance(result, str) and result.strip():
                    self.error = result.strip()[:ACTIVITY_MAX_CHARS]
            return [self._done(self._reply_summary())]
        return []

    def _claude_message(self, message: object) -> list[str]:
        if not isinstance(message, dict):
            return []
        activity = []
        for block in _blocks(message.get("content")):
            if block.get("type") == "text" and isinstance(block.get("text"), str):
                reply = self._read_reply(block["text"])
                if reply:
                    self.final_message = reply
            elif block.get("type") == "tool_use":
                line = self._claude_tool(block)
                if line:
                    activity.append(line)
        return activity

    def _claude_tool(self, block: dict) -> str:
        name = block.get("name")
        arguments = block.get("input")
        if not isinstance(arguments, dict):
            return ""
        if name == "Bash":
            return _command_line(arguments.get("command"))
        verb = _CLAUDE_TOOLS.get(str(name))
        path = arguments.get("file_path") or arguments.get("notebook_path")
        if verb and isinstance(path, str):
            return f"{verb} {self._relative(path)}"[:ACTIVITY_MAX_CHARS]
        return ""

    # --- Codex exec --json ----------------------------------------------------

    def _feed_codex(self, event: dict) -> list[str]:
        kind = event.get("type")
        if kind in ("item.started", "item.updated", "item.completed"):
            return self._codex_item(event.get("item"), kind == "item.completed")

        if kind == "turn.completed":
            return [self._done(self._reply_summary())]
        if kind == "turn.failed":
            error = event.get("error")
            message = error.get("message") if isinstance(error, dict) else None
            self.error = str(message or "the turn failed")[:ACTIVITY_MAX_CHARS]
        elif kind == "error":
            self.error = str(event.get("message") or "error")[:ACTIVITY_MAX_CHARS]
        return []

    def _codex_item(self, item: object, completed: bool) -> list[str]:
        if not isinstance(item, dict):
            return []
        item_type = item.get("type")
        if item_type == "agent_message" and completed:
            text = item.get("text")
            if isinstance(text, str) and text.strip():
                self.final_message = self._read_reply(text)
            return []

        # A command is shown when it starts; a file change once it is applied.
        key = f"{item.get('id')}:{item_type}"
        if item_type == "command_execution" and key not in self._seen_items:
            self._seen_items.add(key)
            command = item.get("command")
            if isinstance(command, str):
                command = _unwrap_shell(command)
            return [_command_line(command)] if command else []
        if item_type == "file_change" and completed and key not in self._seen_items:
            self._seen_items.add(key)
            return self._codex_changes(item.get("changes"))
        return []

    def _codex_changes(self, changes: object) -> list[str]:
        activity = []
        for change in changes if isinstance(changes, list) else []:
            if not isinstance(change, dict) or not isinstance(change.get("path"), str):
                continue
            verb = "write" if change.get("kind") == "add" else "edit"
            activity.append(f"{verb} {self._relative(change['path'])}")
        return [line[:ACTIVITY_MAX_CHARS] for line in activity]

    # --- Pi --mode json -------------------------------------------------------

    def _feed_pi(self, event: dict) -> list[str]:
        kind = event.get("type")
        if kind == "session":
            cwd = event.get("cwd")
            if isinstance(cwd, str) and not self.workdir:
                self.workdir = cwd.rstrip("/")
            return []

        if kind == "tool_execution_start":
            return self._pi_tool(event.get("toolName"), event.get("args"))

        if kind == "message_end":
            return self._pi_message(event.get("message"))

        # Print mode may end without agent_end, so a reply that stops the turn
        # counts as completion too; whichever comes first is reported.
        if kind == "agent_end" and not self.done_summary:
            return [self._done(self._reply_summary())]
        return []

    def _pi_tool(self, name: object, arguments: object) -> list[str]:
        if not isinstance(arguments, dict):
            return []
        if name == "bash":
            line = _command_line(arguments.get("command"))
            return [line] if line else []
        verb = _PI_FILE_TOOLS.get(str(name))
        path = arguments.get("path") or arguments.get("file_path")
        if verb and isinstance(path, str):
            return [f"{verb} {self._relative(path)}"[:ACTIVITY_MAX_CHARS]]
        return []

    def _pi_message(self, message: object) -> list[str]:
        if not isinstance(message, dict) or message.get("role") != "assistant":
            return []
        texts = [
            block["text"]
            for block in _blocks(message.get("content"))
            if block.get("type") == "text" and isinstance(block.get("text"), str)
        ]
        reply = self._read_reply("\n".join(texts))
        if reply:
            self.final_message = reply

        usage = message.get("usage")
        cost = usage.get("cost") if isinstance(usage, dict) else None
        total = cost.get("total") if isinstance(cost, dict) else None
        if _is_cost(total):
            self._pi_cost += float(total)
            self.cost_usd = round(self._pi_cost, 6)

        stop = message.get("stopReason")
        if stop in ("error", "aborted"):
            error = message.get("errorMessage") or f"the model request ended: {stop}"
            self.error = str(error)[:ACTIVITY_MAX_CHARS]
        if stop == "stop" and not self.done_summary:
            return [self._done(self._reply_summary())]
        return []

    # --- helpers ----------------------------------------------------------

    def _reply_summary(self) -> str:
        return self.done_summary or _first_line(self.final_message)

    def _relative(self, path: str) -> str:
        if self.workdir and path.startswith(self.workdir + "/"):
            return path[len(self.workdir) + 1 :]
        return path


def parse_messages(text: str) -> dict[str, str] | None:
    """Return the string entries of a JSON object, or None if it is not one."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    return {key: item for key, item in value.items() if isinstance(item, str)}


def parse_cost(text: str) -> float | None:
    """Return a finite, non-negative number of dollars, or None."""
    try:
        cost = float(text.strip())
    except ValueError:
        return None
    return cost if _is_cost(cost) else None


def _is_cost(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value) and value >= 0


def _load_object(line: str) -> dict | None:
    stripped = line.strip()
    if not stripped.startswith("{"):
        return None
    try:
        value = json.loads(stripped)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _blocks(content: object) -> list[dict]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        return []
    return [block for block in content if isinstance(block, dict)]


def _command_line(command: object) -> str:
    if not isinstance(command, str) or not command.strip():
        return ""
    return f"$ {_first_line(command)}"[:ACTIVITY_MAX_CHARS]


def _unwrap_shell(command: str) -> str:
    match = _SHELL_WRAPPER.match(command)
    if match is None:
        return command
    rest = command[match.end() :]
    try:
        parts = shlex.split(rest)
    except ValueError:
        return rest
    return parts[0] if len(parts) == 1 else rest


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""
