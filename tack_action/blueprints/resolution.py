"""Choosing the blueprint an objective runs when none or one is named."""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import BlueprintError
from .model import Blueprint

_FIX_DEFAULT = (
    "Keep 'default: true' in exactly one blueprint (a file in .tack/blueprints "
    "with the same id overrides a built-in one), or name the blueprint to run "
    "explicitly."
)


def top_level_blueprints(blueprints: Mapping[str, Blueprint]) -> list[Blueprint]:
    """Return the blueprints no other blueprint references, sorted by id."""
    referenced = {
        ref
        for blueprint in blueprints.values()
        for ref in blueprint.refs()
        if ref != blueprint.id
    }

    return [blueprints[i] for i in sorted(blueprints) if i not in referenced]


def resolve_blueprint(
    blueprints: Mapping[str, Blueprint], requested: str | None = None
) -> Blueprint:
    """Return the requested blueprint, the only top-level one, or the default."""
    if requested:
        return _find_requested(blueprints, requested)

    if not blueprints:
        raise BlueprintError(
            "No blueprints are loaded, so there is nothing to run; reinstall "
            "tack-action to restore the built-in blueprints."
        )

    top_level = top_level_blueprints(blueprints)
    if len(top_level) == 1:
        return top_level[0]

    defaults = [blueprints[i] for i in sorted(blueprints) if blueprints[i].default]
    if len(defaults) == 1:
        return defaults[0]

    if not defaults:
        listed = _list_blueprints(top_level)
        raise BlueprintError(
            f"No default blueprint: {len(top_level)} top-level blueprints are "
            f"loaded ({listed}) and none has 'default: true'. {_FIX_DEFAULT}"
        )

    raise BlueprintError(
        f"No default blueprint: {len(defaults)} blueprints have 'default: true' "
        f"({_list_blueprints(defaults)}). {_FIX_DEFAULT}"
    )


def _find_requested(blueprints: Mapping[str, Blueprint], requested: str) -> Blueprint:
    if requested in blueprints:
        return blueprints[requested]

    known = ", ".join(repr(i) for i in sorted(blueprints)) or "none"
    raise BlueprintError(
        f"Blueprint {requested!r} not found; the loaded blueprint ids are {known}. "
        f"A blueprint is named by the 'id' inside its file, not by the filename."
    )


def _list_blueprints(blueprints: list[Blueprint]) -> str:
    return ", ".join(f"{b.id!r} from {b.source}" for b in blueprints)
