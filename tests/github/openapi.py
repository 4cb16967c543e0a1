"""Checking recorded requests against GitHub's published OpenAPI description.

The description comes from the npm package ``@octokit/openapi``, installed by
``.ci/run`` into ``tests/contract/node_modules``. Each request must match a
documented path and method, use only documented query parameters with values
of the documented type, and send a JSON body that the documented request
schema accepts. The schema check covers the JSON Schema keywords GitHub's
description uses for request bodies.
"""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

CONTRACT_DIR = Path(__file__).resolve().parents[1] / "contract"
SPEC_PATH = CONTRACT_DIR / "node_modules/@octokit/openapi/generated/api.github.com.json"
EXAMPLES_PATH = (
    CONTRACT_DIR / "node_modules/@octokit/webhooks-examples/api.github.com/index.json"
)

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


def require_fixture(path: Path) -> Path:
    """Return ``path``, skipping the test when the npm fixtures are missing.

    In CI (``CI=true``) a missing fixture fails instead, so a broken npm
    install cannot pass unnoticed.
    """
    if path.exists():
        return path
    message = (
        f"{path} is missing; run 'npm ci --prefix tests/contract' to install "
        "the GitHub OpenAPI description and webhook examples"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@functools.lru_cache(maxsize=1)
def load_spec() -> dict[str, Any]:
    return json.loads(SPEC_PATH.read_text())


@functools.lru_cache(maxsize=1)
def load_examples() -> dict[str, list[dict[str, Any]]]:
    """Return the webhook example payloads by event name."""
    events = json.loads(EXAMPLES_PATH.read_text())
    return {event["name"]: event["examples"] for event in events}


@functools.lru_cache(maxsize=1)
def _path_patterns() -> list[tuple[re.Pattern[str], str]]:
    patterns = []
    for template in load_spec()["paths"]:
        regex = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        patterns.append((re.compile(regex), template))
    return patterns


def resolve(node: Any, spec: dict[str, Any]) -> Any:
    """Follow ``$ref`` pointers until ``node`` is not a reference."""
    while isinstance(node, dict) and "$ref" in node:
        pointer = node["$ref"].removeprefix("#/").split("/")
        node = spec
        for part in pointer:
            node = node[part]
    return node


def find_operation(method: str, path: str) -> tuple[str, dict[str, Any]] | None:
    """Return the documented path template and operation for a request."""
    spec = load_spec()
    for regex, template in _path_patterns():
        if regex.fullmatch(path):
            operation = spec["paths"][template].get(method.lower())
            if operation is not None:
                return template, operation
    return None


def check_request(
    method: str, path: str, query: dict[str, list[str]], body: Any
) -> list[str]:
    """Return every way the request departs from GitHub's description."""
    spec = load_spec()
    found = find_operation(method, path)
    where = f"{method} {path}"
    if found is None:
        return [f"{where}: no documented operation matches"]
    template, operation = found

    problems = []
    params = [resolve(p, spec) for p in operation.get("parameters", [])]
    declared = {p["name"]: p for p in params if p["in"] == "query"}
    for name, values in query.items():
        param = declared.get(name)
        if param is None:
            problems.append(f"{where}: undocumented query parameter {name!r}")
            continue
        for value in values:
            problems += _check_query_value(where, name, value, param["schema"])

    request_body = resolve(operation.get("requestBody"), spec)
    if body is not None:
        if not request_body:
            problems.append(f"{where}: sends a body but {template} takes none")
        else:
            schema = request_body["content"]["application/json"]["schema"]
            problems += validate(schema, body, f"{where} body")
    elif request_body and request_body.get("required"):
        problems.append(f"{where}: the request body is required")
    return problems


def _check_query_value(
    where: str, name: str, value: str, schema: dict[str, Any]
) -> list[str]:
    kind = schema.get("type")
    if kind == "integer" and not re.fullmatch(r"-?\d+", value):
        return [f"{where}: query {name}={value!r} is not an integer"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: query {name}={value!r} is not one of {schema['enum']}"]
    return []


def validate(schema: Any, value: Any, where: str) -> list[str]:
    """Return the ways ``value`` breaks ``schema`` (OpenAPI 3.0 JSON Schema)."""
    spec = load_spec()
    schema = resolve(schema, spec)
    if not isinstance(schema, dict):
        return []
    if value is None:
        if schema.get("nullable"):
            return []
        if "type" in schema:
            return [f"{where}: null is not allowed"]

    problems: list[str] = []
    for keyword in ("oneOf", "anyOf"):
        if keyword in schema:
            matches = sum(1 for s in schema[keyword] if not validate(s, value, where))
            exactly_one = keyword == "oneOf"
            if matches == 0 or (exactly_one and matches > 1):
                problems.append(f"{where}: matches {matches} of the {keyword} schemas")
    for sub in schema.get("allOf", []):
        problems += validate(sub, value, where)

    kind = schema.get("type")
    if kind is not None and value is not None:
        allowed = _TYPES[kind]
        is_bool = isinstance(value, bool)
        if not isinstance(value, allowed) or (is_bool and kind != "boolean"):
            return problems + [f"{where}: {value!r} is not of type {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, str):
        if len(value) > schema.get("maxLength", len(value)):
            problems.append(f"{where}: longer than {schema['maxLength']}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            problems.append(f"{where}: fewer than {schema['minItems']} items")
        if "items" in schema:
            for index, item in enumerate(value):
                problems += validate(schema["items"], item, f"{where}[{index}]")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                problems.append(f"{where}: missing required property {name!r}")
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                problems += validate(properties[name], item, f"{where}.{name}")
            elif extra is False:
                problems.append(f"{where}: undocumented property {name!r}")
            elif isinstance(extra, dict):
                problems += validate(extra, item, f"{where}.{name}")
    return problems
