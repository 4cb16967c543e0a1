"""The job summary: the run's result as Markdown in ``GITHUB_STEP_SUMMARY``."""

from __future__ import annotations

from ..model import Objective
from .comment import (
    STATUS_ICONS,
    RunInfo,
    escape_markdown,
    mermaid_diagram,
    next_commands,
    stream_table,
    total_cost,
)

# Shown under an error in the job summary; {message} is the error's text.
ERROR_SUMMARY = """### ❌ tack-action stopped with an error

{message}

Likely fixes: check the inputs in the workflow file, the token's
`permissions:` block and `.tack/config.yaml`. The tracking comment on the issue
keeps the saved state, so `/tack resume` continues once the cause is fixed.
See docs/action.md in the tack-action repository for every input.
"""


def render_summary(objective: Objective, run: RunInfo) -> str:
    """Return the job summary for one objective."""
    status = objective.status.value
    icon = STATUS_ICONS.get(status, "")
    title = escape_markdown(objective.description.splitlines()[0][:120])
    lines = [
        f"## {icon} tack: {title}",
        "",
        f"Objective `{objective.short_id}` is **{status}** (this run: {run.outcome}).",
    ]
    if run.detail:
        lines += ["", f"> {escape_markdown(run.detail[:1000])}"]
    pull_request = run.pull_request_url or objective.pull_request_url
    if pull_request:
        lines += ["", f"Pull request: {pull_request}"]
    if run.issue_number is not None:
        lines += ["", f"Issue: #{run.issue_number}"]
    cost = total_cost(objective)
    if cost is not None:
        lines += ["", f"Agent cost: ${cost:.2f}"]
    lines += ["", "### Streams", "", stream_table(objective)]
    diagram = mermaid_diagram(objective)
    if diagram:
        lines += ["", diagram]
    commands = next_commands(objective, run)
    if commands:
        lines += ["", "Next: " + " or ".join(f"`{c}`" for c in commands)]
    return "\n".join(lines) + "\n"


def render_error(message: str) -> str:
    """Return the job summary for a run that stopped with an error."""
    return ERROR_SUMMARY.format(message=escape_markdown(message))
