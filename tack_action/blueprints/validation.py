"""Checks across the steps of a blueprint and across blueprints.

Each step's own keys are checked when its file is parsed. The checks here
need the whole blueprint or the whole loaded set: step ids, ``next`` and
``on_fail`` targets, ``ref`` targets, nesting depth, and whether the
``next`` chain ends.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import BlueprintError
from .model import Blueprint, Step

# Tack's default for agents.max_depth: how deep blueprint_ref steps may nest.
MAX_REF_DEPTH = 2


def validate_blueprints(
    blueprints: Mapping[str, Blueprint], *, max_depth: int = MAX_REF_DEPTH
) -> None:
    """Raise BlueprintError listing every problem in the loaded blueprints."""
    problems: list[str] = []
    for blueprint_id in sorted(blueprints):
        blueprint = blueprints[blueprint_id]
        problems.extend(_check_steps(blueprint, blueprints))
        problems.extend(_check_next_chains(blueprint))

    problems.extend(_check_ref_graph(blueprints, max_depth))

    if problems:
        raise BlueprintError("\n".join(problems))


def locate(blueprint: Blueprint, step: Step | None = None) -> str:
    """Return a message prefix naming the file, line, blueprint and step."""
    if step is None:
        return f"{blueprint.source}: blueprint {blueprint.id!r}"

    where = blueprint.source
    if step.line is not None:
        where = f"{where}:{step.line}"

    return f"{where}: blueprint {blueprint.id!r}, step {step.id!r}"


def _check_steps(
    blueprint: Blueprint, blueprints: Mapping[str, Blueprint]
) -> list[str]:
    problems = []
    ids = blueprint.step_ids()
    known = ", ".join(repr(i) for i in dict.fromkeys(ids))

    seen: set[str] = set()
    for step in blueprint.steps:
        if step.id in seen:
            problems.append(
                f"{locate(blueprint, step)}: duplicate step id; step ids must be "
                f"unique within a blueprint, so rename one of them"
            )
        seen.add(step.id)

        for key in ("next", "on_fail"):
            target = getattr(step, key)
            if target is not None and target not in ids:
                problems.append(
                    f"{locate(blueprint, step)}: {key} names the missing step "
                    f"{target!r}; use one of {known}"
                )

        if step.ref is not None and step.ref not in blueprints:
            loaded = ", ".join(repr(i) for i in sorted(blueprints))
            problems.append(
                f"{locate(blueprint, step)}: ref names the missing blueprint "
                f"{step.ref!r}; refs use a blueprint's id, not a filename, and the "
                f"loaded ids are {loaded}"
            )

    return problems


def _check_next_chains(blueprint: Blueprint) -> list[str]:
    # Following next from any step (on_fail can jump into the middle) must
    # reach a step without next. Missing targets are reported elsewhere.
    by_id = {step.id: step for step in reversed(blueprint.steps)}
    checked: set[str] = set()
    problems = []

    for start in blueprint.steps:
        path: list[str] = []
        current: Step | None = start
        while current is not None and current.id not in checked | set(path):
            path.append(current.id)
            current = by_id.get(current.next) if current.next is not None else None

        if current is not None and current.id in path:
            problems.append(
                _describe_loop(blueprint, by_id, path[path.index(current.id) :])
            )
        checked.update(path)

    return problems


def _describe_loop(
    blueprint: Blueprint, by_id: dict[str, Step], loop: list[str]
) -> str:
    closing = by_id[loop[-1]]
    chain = " -> ".join([*loop, loop[0]])
    entry = blueprint.entry().id

    return (
        f"{locate(blueprint, closing)}: no reachable end: next {closing.next!r} "
        f"closes the loop {chain}, so a run that reaches it never gets to a step "
        f"without next (the entry step is {entry!r}); end the flow with a step "
        f"that has no next and use on_fail for loops back"
    )


def _check_ref_graph(blueprints: Mapping[str, Blueprint], max_depth: int) -> list[str]:
    problems = []
    reported_cycles: set[frozenset[str]] = set()

    for blueprint_id in sorted(blueprints):
        blueprint = blueprints[blueprint_id]
        for step in blueprint.steps:
            if step.ref is None or step.ref not in blueprints:
                continue

            chain = _deepest_chain(blueprints, [blueprint.id, step.ref])
            if chain[-1] in chain[:-1]:
                # A cycle is reported once, at a step of a blueprint inside it.
                cycle = frozenset(chain)
                if chain[-1] != chain[0] or cycle in reported_cycles:
                    continue
                reported_cycles.add(cycle)
                problems.append(
                    f"{locate(blueprint, step)}: blueprint_ref cycle "
                    f"{' -> '.join(chain)}; a blueprint may not reference itself "
                    f"directly or through others, so remove one of these refs"
                )
            elif len(chain) - 1 > max_depth:
                problems.append(
                    f"{locate(blueprint, step)}: blueprint_ref nesting "
                    f"{' -> '.join(chain)} is {len(chain) - 1} levels deep, more "
                    f"than the maximum of {max_depth} (agents.max_depth); flatten "
                    f"the chain"
                )

    return problems


def _deepest_chain(blueprints: Mapping[str, Blueprint], chain: list[str]) -> list[str]:
    # Return the longest ref chain that starts with ``chain``. A chain that
    # revisits a blueprint stops there, so its last id marks the cycle.
    last = chain[-1]
    if last in chain[:-1]:
        return chain

    longest = chain
    for ref in blueprints[last].refs():
        if ref not in blueprints:
            continue
        candidate = _deepest_chain(blueprints, [*chain, ref])
        if candidate[-1] in candidate[:-1]:
            return candidate
        if len(candidate) > len(longest):
            longest = candidate

    return longest
