"""The tracking comment: what it shows and the state it carries.

One comment per objective shows the plan, a Mermaid diagram, gate and recovery
events, the run link, the cost and the next command. Hidden HTML comments hold
the markers that find it again and the objective's saved state, compressed
with zlib and base64-encoded, next to a format version and the state version.
"""

from __future__ import annotations

import base64
import json
import re
import zlib
from dataclasses import dataclass

from ..errors import StateError
from ..model import AttemptStatus, Objective, ObjectiveStatus, PlanStatus, Stream
from ..report import stream_state

# Bumped when the hidden state block changes shape; older blocks are rejected.
STATE_FORMAT = 1

# GitHub rejects comment bodies longer than 65,536 characters.
MAX_COMMENT_CHARS = 65_536
# Room left for the visible part of the comment.
MAX_STATE_CHARS = 48_000

MARKER_PREFIX = "<!-- tack-action:objective "
_MARKER = re.compile(r"<!-- tack-action:objective (?P<id>[0-9a-f-]{36}) -->")
_STATE = re.compile(
    r"<!-- tack-action:state format=(?P<format>\d+) version=(?P<version>\d+) "
    r"(?P<data>[A-Za-z0-9+/=]*) -->"
)

STATUS_ICONS = {
    "planning": "📝",
    "approved": "👍",
    "executing": "🔄",
    "completed": "✅",
    "partial": "🟡",
    "failed": "❌",
    "blocked": "⛔",
    "cancelled": "🚫",
}

# Mermaid class per stream state, with GitHub's Primer colours.
_STATE_STYLES = {
    "pending": "fill:#eaeef2,stroke:#8c959f,color:#24292f",
    "executing": "fill:#ddf4ff,stroke:#0969da,color:#0a3069",
    "completed": "fill:#dafbe1,stroke:#1a7f37,color:#116329",
    "merge_ready": "fill:#dafbe1,stroke:#1a7f37,color:#116329",
    "merging": "fill:#fbefff,stroke:#8250df,color:#512a97",
    "merged": "fill:#1a7f37,stroke:#116329,color:#ffffff",
    "failed": "fill:#ffebe9,stroke:#cf222e,color:#82071e",
    "blocked": "fill:#fff8c5,stroke:#9a6700,color:#4d2d00",
}


@dataclass
class RunInfo:
    """The job run that writes the comment, and how that run ended so far."""

    url: str = ""
    # running, waiting, finished, cancelled, timed-out or error.
    outcome: str = "running"
    detail: str = ""
    issue_number: int | None = None
    pull_request_url: str | None = None


def marker(objective_id: str) -> str:
    """Return the hidden marker that identifies an objective's comment."""
    return f"{MARKER_PREFIX}{objective_id} -->"


def find_objective_id(body: str) -> str | None:
    """Return the objective id in a tracking comment's marker, or None."""
    match = _MARKER.search(body or "")
    return match.group("id") if match else None


def encode_state(objective: Objective) -> str:
    """Return the hidden state block for ``objective``.

    Old watch events go first when the block is too large, because resuming
    never needs them.
    """
    data = objective.model_dump(mode="json")
    events = data.get("events") or []
    keep = len(events)
    while True:
        data["events"] = events[len(events) - keep :] if keep else []
        raw = json.dumps(data, separators=(",", ":")).encode()
        encoded = base64.b64encode(zlib.compress(raw, 9)).decode("ascii")
        if len(encoded) <= MAX_STATE_CHARS:
            break
        if keep == 0:
            raise StateError(
                f"the state of objective {objective.short_id} is "
                f"{len(encoded)} characters compressed, more than the "
                f"{MAX_STATE_CHARS} a tracking comment can hold; reduce the plan "
                "size with planning.max_streams"
            )
        keep //= 2
    return (
        f"<!-- tack-action:state format={STATE_FORMAT} "
        f"version={objective.version} {encoded} -->"
    )


def stored_version(body: str) -> int | None:
    """Return the state version in a comment body, or None if it holds no state."""
    match = _STATE.search(body or "")
    return int(match.group("version")) if match else None


def decode_state(body: str) -> Objective:
    """Return the objective saved in a tracking comment body."""
    match = _STATE.search(body or "")
    if match is None:
        raise StateError(
            "the tracking comment holds no state block; it was edited by hand or "
            "written by another tool, so start again with /tack plan"
        )
    found = int(match.group("format"))
    if found != STATE_FORMAT:
        raise StateError(
            f"the tracking comment's state format is {found!r}, but this version "
            f"of tack-action reads format {STATE_FORMAT}; run the matching "
            "tack-action version or start again with /tack plan"
        )
    try:
        raw = zlib.decompress(base64.b64decode(match.group("data"), validate=True))
        objective = Objective.model_validate_json(raw)
    except (ValueError, zlib.error) as exc:
        raise StateError(
            f"the tracking comment's state block is corrupt ({exc}); start again "
            "with /tack plan"
        ) from exc
    objective.version = int(match.group("version"))
    return objective


def escape_markdown(text: str) -> str:
    """Escape text from agents or issues for one line of Markdown."""
    text = " ".join(str(text).split())
    for char in "\\`*_[]<>|#":
        text = text.replace(char, "\\" + char)
    # An escaped @ still pings in GitHub; an HTML entity does not.
    return text.replace("@", "&#64;")


def _code(text: str) -> str:
    return "`" + str(text).replace("`", "'") + "`"


def _mermaid_label(text: str) -> str:
    text = " ".join(str(text).split())[:60]
    for char, entity in (('"', "#quot;"), ("<", "#lt;"), (">", "#gt;"), ("`", "'")):
        text = text.replace(char, entity)
    return text


def mermaid_diagram(objective: Objective) -> str:
    """Return a Mermaid flowchart of the plan, each stream coloured by status."""
    plan = objective.plan
    if plan is None or not plan.streams:
        return ""
    ids = {stream.title: f"s{index}" for index, stream in enumerate(plan.streams)}
    lines = ["```mermaid", "flowchart TD"]
    used: set[str] = set()
    for stream in plan.streams:
        state = stream_state(stream)
        used.add(state)
        label = f"{_mermaid_label(stream.title)}<br/>{state}"
        lines.append(f'  {ids[stream.title]}["{label}"]:::{state.replace("_", "")}')
    for stream in plan.streams:
        for dependency in stream.dependencies:
            if dependency in ids:
                lines.append(f"  {ids[dependency]} --> {ids[stream.title]}")
    for state in sorted(used):
        style = _STATE_STYLES.get(state, _STATE_STYLES["pending"])
        lines.append(f"  classDef {state.replace('_', '')} {style}")
    lines.append("```")
    return "\n".join(lines)


def _checklist_line(stream: Stream) -> str:
    state = stream_state(stream)
    done = "x" if state == "merged" else " "
    parts = [f"- [{done}] **{escape_markdown(stream.title)}** · {_code(state)}"]
    if stream.file_scope:
        parts.append("files: " + ", ".join(_code(p) for p in stream.file_scope))
    if stream.dependencies:
        parts.append(
            "after: " + ", ".join(escape_markdown(d) for d in stream.dependencies)
        )
    if stream.error:
        parts.append("error: " + escape_markdown(stream.error[:160]))
    return " · ".join(parts)


def stream_table(objective: Objective) -> str:
    """Return a Markdown table of the streams, for the job summary."""
    plan = objective.plan
    if plan is None or not plan.streams:
        return "No plan yet."
    rows = [
        "| Stream | Status | Attempts | Merge | Branch |",
        "| --- | --- | --- | --- | --- |",
    ]
    for stream in plan.streams:
        entry = objective.merge_entry_for(stream.id)
        merge = entry.status.value if entry else "-"
        rows.append(
            f"| {escape_markdown(stream.title)} | {_code(stream_state(stream))} | "
            f"{stream.attempts} | {merge} | {_code(stream.branch or '-')} |"
        )
    return "\n".join(rows)


def total_cost(objective: Objective) -> float | None:
    """Return the summed agent cost in US dollars, or None when none is known."""
    plan = objective.plan
    costs = [s.cost_usd for s in plan.streams if s.cost_usd is not None] if plan else []
    return sum(costs) if costs else None


def next_commands(objective: Objective, run: RunInfo) -> list[str]:
    """Return the commands a maintainer can type next."""
    if run.outcome in ("cancelled", "timed-out", "error") and objective.status in (
        ObjectiveStatus.APPROVED,
        ObjectiveStatus.EXECUTING,
    ):
        return ["/tack resume", "/tack cancel"]
    plan = objective.plan
    status = objective.status
    if status is ObjectiveStatus.PLANNING:
        if plan is not None and plan.status is PlanStatus.PENDING_APPROVAL:
            return ["/tack approve", "/tack reject FEEDBACK"]
        return ["/tack resume", "/tack cancel"]
    if status is ObjectiveStatus.BLOCKED and plan is not None:
        stuck = [s for s in plan.streams if s.blocked] or plan.streams
        return [f"/tack retry {stuck[0].slug} GUIDANCE", "/tack cancel"]
    if status in (ObjectiveStatus.PARTIAL, ObjectiveStatus.FAILED) and plan:
        failed = [s for s in plan.streams if stream_state(s) == "failed"]
        if failed:
            return [f"/tack retry {failed[0].slug} GUIDANCE", "/tack cancel"]
        return ["/tack plan"]
    if status in (ObjectiveStatus.APPROVED, ObjectiveStatus.EXECUTING):
        return ["/tack status", "/tack cancel"]
    return []


_OUTCOME_TEXT = {
    "running": "🔄 A job is working on this objective now.",
    "waiting": "⏸️ Waiting for a maintainer.",
    "finished": "🏁 The job finished.",
    "cancelled": "⏹️ The job was cancelled; the state below was saved first.",
    "timed-out": "⏱️ The job reached its max-minutes limit; the state below was saved.",
    "error": "💥 The job stopped with an error; the state below was saved.",
}


def _recovery_rows(objective: Objective) -> list[str]:
    if not objective.ledger:
        return []
    plan = objective.plan
    names = {s.id: s.slug for s in plan.streams} if plan else {}
    rows = [
        "",
        "#### Gates and recovery",
        "",
        "| Stream | Failure | Action | Attempt | Status |",
        "| --- | --- | --- | --- | --- |",
    ]
    for attempt in objective.ledger[-20:]:
        stream = names.get(attempt.stream_id or "", "merge")
        status = attempt.status.value
        if attempt.status is AttemptStatus.BLOCKED:
            status = "blocked: needs guidance"
        rows.append(
            f"| {escape_markdown(stream)} | {_code(attempt.failure_kind)} | "
            f"{_code(attempt.action)} | {attempt.attempt_number}/"
            f"{attempt.max_attempts} | {status} |"
        )
    return rows


def _activity(objective: Objective) -> list[str]:
    events = objective.events[-15:]
    if not events:
        return []
    text = "\n".join(f"{e.at[11:19]} {e.text}" for e in events).replace("```", "'''")
    return [
        "",
        "<details><summary>Recent activity</summary>",
        "",
        "```text",
        text,
        "```",
        "",
        "</details>",
    ]


def render_comment(objective: Objective, run: RunInfo) -> str:
    """Return the full tracking comment body, state block included."""
    state_block = encode_state(objective)
    status = objective.status.value
    icon = STATUS_ICONS.get(status, "")
    title = escape_markdown(objective.description.splitlines()[0][:120])
    lines = [
        marker(objective.id),
        f"### {icon} tack: {title}",
        "",
        f"Objective `{objective.short_id}` is **{status}**. "
        + _OUTCOME_TEXT.get(run.outcome, ""),
    ]
    if run.detail:
        lines += ["", f"> {escape_markdown(run.detail[:500])}"]
    plan = objective.plan
    if plan is not None and plan.streams:
        lines += ["", f"#### Plan ({plan.status.value})", ""]
        lines += [_checklist_line(s) for s in plan.streams]
        if plan.quality_gates:
            gates = ", ".join(_code(g) for g in plan.quality_gates)
            lines += ["", f"Quality gates: {gates}"]
        lines += ["", mermaid_diagram(objective)]
    else:
        lines += ["", "The planner has not produced a plan yet."]
    lines += _recovery_rows(objective)

    facts = []
    pull_request = run.pull_request_url or objective.pull_request_url
    if pull_request:
        facts.append(f"Pull request: {pull_request}")
    if objective.merge_head:
        facts.append(
            f"Merge branch: {_code(objective.merge_branch)} at "
            f"{_code(objective.merge_head[:8])}"
        )
    cost = total_cost(objective)
    if cost is not None:
        facts.append(f"Agent cost so far: ${cost:.2f}")
    if run.url:
        facts.append(f"Job run: {run.url}")
    if facts:
        lines += [""] + [f"- {fact}" for fact in facts]

    commands = next_commands(objective, run)
    if commands:
        lines += ["", "Next: " + " or ".join(_code(c) for c in commands)]
    lines += _activity(objective)
    lines += ["", state_block]
    body = "\n".join(lines)
    if len(body) > MAX_COMMENT_CHARS:
        raise StateError(
            f"the tracking comment for objective {objective.short_id} would be "
            f"{len(body)} characters, more than GitHub's {MAX_COMMENT_CHARS}"
        )
    return body
