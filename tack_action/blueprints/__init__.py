"""Blueprints: the YAML step machines that drive an objective and its streams."""

from __future__ import annotations

from .loader import (
    default_user_dir,
    load_blueprints,
    load_builtin_blueprints,
    parse_blueprint,
    read_blueprint_dir,
)
from .model import (
    Blueprint,
    BlueprintRetry,
    Escalation,
    Step,
    StepRetry,
    ToolFilter,
)
from .resolution import resolve_blueprint, top_level_blueprints
from .validation import MAX_REF_DEPTH, validate_blueprints

__all__ = [
    "MAX_REF_DEPTH",
    "Blueprint",
    "BlueprintRetry",
    "Escalation",
    "Step",
    "StepRetry",
    "ToolFilter",
    "default_user_dir",
    "load_blueprints",
    "load_builtin_blueprints",
    "parse_blueprint",
    "read_blueprint_dir",
    "resolve_blueprint",
    "top_level_blueprints",
    "validate_blueprints",
]
