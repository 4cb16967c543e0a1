"""Pydantic models for blueprint files: the blueprint and its steps.

A blueprint is a list of steps run in order by following each step's
``next``. Unknown keys are rejected, and so is a key that belongs to a
different step type than the step's ``type``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from ..recovery import EXHAUSTED_ACTIONS, RETRY_PROFILES

StepType = Literal["agent", "deterministic", "human", "blueprint_ref"]
Role = Literal["planner", "lead", "builder", "reviewer", "merger", "scout", "pr-writer"]
StepAction = Literal[
    "dispatch_streams",
    "run_quality_gates",
    "signal_merge_ready",
    "merge_queue",
    "create_pr",
    "mark_complete",
    "mark_stream_merged",
]

# Keys every step may carry, and the extra keys each step type allows.
COMMON_STEP_KEYS = frozenset({"id", "type", "next"})
STEP_TYPE_KEYS: dict[str, frozenset[str]] = {
    "agent": frozenset(
        {
            "role",
            "commit",
            "model",
            "messages",
            "message_source",
            "on_fail",
            "max_fix_iterations",
            "tools",
            "optional",
        }
    ),
    "deterministic": frozenset({"action", "retry", "on_fail", "max_fix_iterations"}),
    "human": frozenset(),
    "blueprint_ref": frozenset(
        {"ref", "foreach", "on_work_item_failure", "escalation"}
    ),
}

# Fix loops run this many times when a step sets on_fail but no
# max_fix_iterations.
DEFAULT_MAX_FIX_ITERATIONS = 3
DEFAULT_PROFILE = "balanced"
DEFAULT_ON_EXHAUSTED = "ask_human"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_on_exhausted(value: str | None) -> str | None:
    """Reject an exhaustion mode that recovery does not define."""
    if value is not None and value not in EXHAUSTED_ACTIONS:
        allowed = ", ".join(repr(name) for name in EXHAUSTED_ACTIONS)
        raise ValueError(f"invalid on_exhausted {value!r}; expected one of {allowed}")

    return value


class ToolFilter(_Strict):
    """Tool names an agent step adds to or removes from its runtime's set."""

    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)


class StepRetry(_Strict):
    """Per-step recovery budget and what happens when it runs out."""

    max_attempts: int | None = Field(default=None, ge=1)
    on_exhausted: str | None = None
    human_guidance_mode: str | None = None

    _check_on_exhausted = field_validator("on_exhausted")(check_on_exhausted)


class Escalation(_Strict):
    """How much context a failed work item's escalation carries."""

    context: Literal["full", "minimal", "error_only"] = "full"
    include_agent_history: bool = False


class Step(_Strict):
    """One step of a blueprint, whose ``type`` decides which keys apply."""

    id: str = Field(min_length=1)
    type: StepType
    next: str | None = None

    # agent steps
    role: Role | None = None
    commit: Literal["auto", "agent", "none"] | None = None
    model: str | None = None
    messages: dict[str, bool] | None = None
    message_source: str | None = None
    tools: ToolFilter | None = None
    optional: bool | None = None

    # deterministic steps
    action: StepAction | None = None
    retry: StepRetry | None = None

    # agent and deterministic steps
    on_fail: str | None = None
    max_fix_iterations: int | None = Field(default=None, ge=0)

    # blueprint_ref steps
    ref: str | None = None
    foreach: Literal["work_item"] | None = None
    on_work_item_failure: Literal["escalate", "fail"] | None = None
    escalation: Escalation | None = None

    # 1-based line of the step in its file, set by the loader for messages.
    _line: int | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _reject_foreign_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data

        step_type = data.get("type")
        if step_type not in STEP_TYPE_KEYS:
            # The type field's own validation reports an unknown type.
            return data

        allowed = COMMON_STEP_KEYS | STEP_TYPE_KEYS[step_type]
        for key in data:
            if key in allowed or key not in cls.model_fields:
                continue
            owners = [name for name, keys in STEP_TYPE_KEYS.items() if key in keys]
            raise ValueError(
                f"key {key!r} does not apply to a {step_type!r} step "
                f"(it belongs to {' and '.join(owners)} steps); remove it "
                f"or change the step's type"
            )

        return data

    @model_validator(mode="after")
    def _fill_type_defaults(self) -> Step:
        required = {"agent": "role", "deterministic": "action", "blueprint_ref": "ref"}
        key = required.get(self.type)
        if key is not None and getattr(self, key) is None:
            raise ValueError(f"a {self.type!r} step needs the key {key!r}")

        # Defaults that exist only for one step type are filled here, so a
        # step of another type keeps None and dumps without them.
        if self.type == "agent" and self.commit is None:
            object.__setattr__(self, "commit", "auto")
        if self.type == "blueprint_ref" and self.on_work_item_failure is None:
            object.__setattr__(self, "on_work_item_failure", "escalate")

        return self

    @property
    def line(self) -> int | None:
        """The 1-based line where the step starts in its file, if known."""
        return self._line


class BlueprintRetry(_Strict):
    """Blueprint-wide retry profile and the defaults steps fall back to."""

    profile: str = DEFAULT_PROFILE
    default_max_attempts: int | None = Field(default=None, ge=1)
    default_on_exhausted: str | None = None

    _check_on_exhausted = field_validator("default_on_exhausted")(check_on_exhausted)

    @field_validator("profile")
    @classmethod
    def _check_profile(cls, value: str) -> str:
        if value not in RETRY_PROFILES:
            allowed = ", ".join(repr(name) for name in RETRY_PROFILES)
            raise ValueError(
                f"invalid retry profile {value!r}; expected one of {allowed}"
            )
        return value


class Blueprint(_Strict):
    """A named, ordered step machine loaded from one YAML file."""

    id: str = Field(min_length=1)
    name: str = ""
    description: str = ""
    default: bool = False
    retry: BlueprintRetry = Field(default_factory=BlueprintRetry)
    steps: list[Step] = Field(min_length=1)

    # The file the blueprint came from, a path or "builtin:<file>". Only the
    # loader sets it, and the loader rejects a file that contains the key.
    source: str = Field(default="", exclude=True)

    def entry(self) -> Step:
        """Return the step a run of this blueprint starts with."""
        return self.steps[0]

    def step(self, step_id: str) -> Step:
        """Return the step with ``step_id``, or raise KeyError naming the ids."""
        for candidate in self.steps:
            if candidate.id == step_id:
                return candidate

        known = ", ".join(repr(s.id) for s in self.steps)
        raise KeyError(
            f"blueprint {self.id!r} has no step {step_id!r}; its steps are {known}"
        )

    def step_ids(self) -> list[str]:
        """Return the step ids in file order."""
        return [s.id for s in self.steps]

    def refs(self) -> list[str]:
        """Return the blueprint ids this blueprint's blueprint_ref steps name."""
        return [s.ref for s in self.steps if s.ref is not None]

    def actions(self) -> set[str]:
        """Return the deterministic actions this blueprint runs."""
        return {s.action for s in self.steps if s.action is not None}

    def max_attempts(self, step: Step | None = None) -> int:
        """Return the recovery budget for ``step``, or the blueprint's default."""
        if step is not None and step.retry is not None:
            if step.retry.max_attempts is not None:
                return step.retry.max_attempts

        if self.retry.default_max_attempts is not None:
            return self.retry.default_max_attempts

        return RETRY_PROFILES[self.retry.profile]

    def on_exhausted(self, step: Step | None = None) -> str:
        """Return the exhaustion mode for ``step``, or the blueprint's default."""
        if step is not None and step.retry is not None:
            if step.retry.on_exhausted is not None:
                return step.retry.on_exhausted

        if self.retry.default_on_exhausted is not None:
            return self.retry.default_on_exhausted

        return DEFAULT_ON_EXHAUSTED

    def max_fix_iterations(self, step: Step) -> int:
        """Return how often ``step`` may send work back to its on_fail step."""
        if step.on_fail is None:
            return 0

        if step.max_fix_iterations is not None:
            return step.max_fix_iterations

        return DEFAULT_MAX_FIX_ITERATIONS
