"""Watch lines and the status report, in Tack's formats."""

from __future__ import annotations

import re
from datetime import datetime

from .model import Event, MergeStatus, Objective, Stream, StreamStatus

# Escape sequences and control characters from agent output or issue text
# could rewrite the terminal (window title, clipboard) or fake extra lines.
_CONTROL = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI sequences such as colours
    r"|\x1b\][^\x07\x1b]*(\x07|\x1b\\)?"  # OSC: title, clipboard
    r"|[\x00-\x08\x0a-\x1f\x7f-\x9f]"  # other control characters
)


def printable(text: str) -> str:
    """Return ``text`` on one line, without escape sequences or control characters."""
    return _CONTROL.sub(" ", text)


def format_watch_line(event: Event, tag: str) -> str:
    """Format ``HH:MM:SS [tag] text`` in local time, as ``tack watch`` prints."""
    try:
        at = datetime.fromisoformat(event.at).astimezone()
        clock = at.strftime("%H:%M:%S")
    except ValueError:
        clock = "--:--:--"
    return f"{clock} [{tag}] {event.text}"


def stream_state(stream: Stream) -> str:
    """Return the stream's status, with ``blocked`` shown for blocked recovery."""
    if stream.blocked:
        return "blocked"
    return stream.status.value


def status_dict(objective: Objective) -> dict[str, object]:
    """Return the objective as the JSON document ``status --json`` prints."""
    streams = []
    plan = objective.plan
    for stream in plan.streams if plan else []:
        entry = objective.merge_entry_for(stream.id)
        streams.append(
            {
                "id": stream.id,
                "title": stream.title,
                "slug": stream.slug,
                "status": stream_state(stream),
                "step": stream.step_id,
                "attempts": stream.attempts,
                "branch": stream.branch,
                "head_sha": stream.head_sha,
                "sandbox_id": stream.sandbox_id,
                "file_scope": stream.file_scope,
                "dependencies": stream.dependencies,
                "merge": entry.status.value if entry else None,
                "merge_tier": entry.tier if entry else None,
                "error": stream.error,
            }
        )
    return {
        "id": objective.id,
        "description": objective.description,
        "status": objective.status.value,
        "plan_status": plan.status.value if plan else None,
        "repo": objective.repo,
        "base_branch": objective.base_branch,
        "merge_branch": objective.merge_branch,
        "merge_head": objective.merge_head,
        "pull_request_url": objective.pull_request_url,
        "streams": streams,
        "ledger": [a.model_dump() for a in objective.ledger],
        "error": objective.error,
    }


def format_status(objective: Objective) -> str:
    """Render the objective and its streams as a plain-text table."""
    lines = [
        f"objective {objective.short_id}  {objective.status.value}",
        f"  {printable(objective.description)}",
        f"  repo {objective.repo}  base {objective.base_branch}",
    ]
    plan = objective.plan
    if plan is None:
        lines.append("  no plan yet")
        return "\n".join(lines)

    lines.append(f"  plan {plan.status.value}, gates: {', '.join(plan.quality_gates)}")
    lines.append("")
    header = f"  {'STREAM':<10} {'STATUS':<12} {'ATTEMPTS':<9} {'MERGE':<9} BRANCH"
    lines.append(header)
    for stream in plan.streams:
        entry = objective.merge_entry_for(stream.id)
        merge = entry.status.value if entry else "-"
        lines.append(
            f"  {stream.id[:8]:<10} {stream_state(stream):<12} "
            f"{stream.attempts:<9} {merge:<9} {stream.branch or '-'}"
        )
        lines.append(f"    {printable(stream.title)}")
        if stream.error:
            lines.append(f"    error: {printable(stream.error)}")

    merged = sum(1 for s in plan.streams if s.status is StreamStatus.MERGED)
    lines.append("")
    lines.append(
        f"  merge branch {objective.merge_branch} "
        f"head {objective.merge_head or '-'} ({merged}/{len(plan.streams)} merged)"
    )
    conflicts = [e for e in objective.merge_entries if e.status is MergeStatus.CONFLICT]
    for entry in conflicts:
        lines.append(f"  conflict: {entry.branch}: {entry.error}")
    if objective.pull_request_url:
        lines.append(f"  pull request {objective.pull_request_url}")
    if objective.error:
        lines.append(f"  error: {objective.error}")
    return "\n".join(lines)
