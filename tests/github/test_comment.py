"""Rendering the tracking comment and its hidden state block."""

from __future__ import annotations

import base64
import json
import secrets
import zlib

import pytest

from tack_action.errors import StateError
from tack_action.github.comment import (
    RunInfo,
    decode_state,
    encode_state,
    find_objective_id,
    mermaid_diagram,
    next_commands,
    render_comment,
    stored_version,
)
from tack_action.model import (
    Event,
    Objective,
    ObjectiveStatus,
    Plan,
    PlanStatus,
    Stream,
    StreamStatus,
)


def _objective() -> Objective:
    plan = Plan(
        status=PlanStatus.PENDING_APPROVAL,
        streams=[
            Stream(title='Add "quoted" <tag>', slug="add-quoted", file_scope=["a.py"]),
            Stream(
                title="Use it",
                slug="use-it",
                file_scope=["b.py"],
                dependencies=['Add "quoted" <tag>'],
            ),
        ],
        quality_gates=["pytest -q"],
    )
    objective = Objective(description="Add things\n\nmore", repo="x", plan=plan)
    objective.version = 4
    return objective


def test_state_roundtrip() -> None:
    objective = _objective()

    body = render_comment(objective, RunInfo())

    restored = decode_state(body)
    assert restored.model_dump() == objective.model_dump()
    assert stored_version(body) == 4
    assert find_objective_id(body) == objective.id


def test_state_block_is_compressed_json() -> None:
    objective = _objective()

    block = encode_state(objective)

    data = block.split()[-2]
    raw = json.loads(zlib.decompress(base64.b64decode(data)))
    assert raw["id"] == objective.id
    assert "format=1" in block


def test_state_drops_old_events_when_large() -> None:
    objective = _objective()
    # Random text barely compresses, so 300 events overflow the block.
    objective.events = [Event(text=secrets.token_urlsafe(300)) for _ in range(300)]

    restored = decode_state(encode_state(objective))

    assert 0 < len(restored.events) < 300
    assert restored.events[-1].text == objective.events[-1].text


def test_decode_rejects_other_format() -> None:
    body = encode_state(_objective()).replace("format=1", "format=9")

    with pytest.raises(StateError, match="format is 9"):
        decode_state(body)


def test_decode_rejects_corrupt_block() -> None:
    body = "<!-- tack-action:state format=1 version=2 AAAA -->"

    with pytest.raises(StateError, match="corrupt"):
        decode_state(body)


def test_decode_without_block() -> None:
    with pytest.raises(StateError, match="no state block"):
        decode_state("just a comment")


def test_mermaid_escapes_labels() -> None:
    diagram = mermaid_diagram(_objective())

    assert 's0["Add #quot;quoted#quot; #lt;tag#gt;<br/>pending"]:::pending' in diagram
    assert "s0 --> s1" in diagram
    assert "classDef pending" in diagram


def test_mermaid_colours_by_status() -> None:
    objective = _objective()
    objective.plan.streams[0].status = StreamStatus.MERGED
    objective.plan.streams[1].blocked = True

    diagram = mermaid_diagram(objective)

    assert ":::merged" in diagram
    assert ":::blocked" in diagram
    assert "classDef merged fill:#1a7f37" in diagram


def test_comment_escapes_mentions() -> None:
    objective = _objective()
    objective.description = "Ping @octocat"

    body = render_comment(objective, RunInfo())

    assert "@octocat" not in body
    assert "&#64;octocat" in body


def test_comment_shows_cost_and_run() -> None:
    objective = _objective()
    objective.plan.streams[0].cost_usd = 0.5
    objective.plan.streams[1].cost_usd = 0.25

    body = render_comment(objective, RunInfo(url="http://gh/o/r/actions/runs/9"))

    assert "Agent cost so far: $0.75" in body
    assert "Job run: http://gh/o/r/actions/runs/9" in body


@pytest.mark.parametrize(
    ("status", "outcome", "expected"),
    [
        (ObjectiveStatus.PLANNING, "waiting", "/tack approve"),
        (ObjectiveStatus.EXECUTING, "cancelled", "/tack resume"),
        (ObjectiveStatus.COMPLETED, "finished", None),
    ],
)
def test_next_commands_by_status(
    status: ObjectiveStatus, outcome: str, expected: str | None
) -> None:
    objective = _objective()
    objective.status = status

    commands = next_commands(objective, RunInfo(outcome=outcome))

    assert (commands[0] if commands else None) == expected


def test_next_command_names_blocked_stream() -> None:
    objective = _objective()
    objective.status = ObjectiveStatus.BLOCKED
    objective.plan.streams[1].blocked = True

    commands = next_commands(objective, RunInfo(outcome="waiting"))

    assert commands[0] == "/tack retry use-it GUIDANCE"
