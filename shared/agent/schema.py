"""Response schemas: the JSON Schema subset Gemini accepts, checked on the way in and enforced on
the way out.

`check` refuses a request's schema that is too large, too deep, or uses a keyword outside the
subset (naming the keyword and where it is), before any model call. `violations` validates an
answer against an accepted schema, every keyword but ``pattern`` (left to the model: a caller's
regular expression is never run here). The subset is small (types, properties, required, items,
enum, bounds, anyOf), so it is validated here directly: a general JSON Schema library is not in the
runtime image and would add its import to every cold start for keywords that are refused anyway.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

KEYWORDS = frozenset(
    {
        "type",
        "properties",
        "required",
        "items",
        "enum",
        "description",
        "title",
        "format",
        "nullable",
        "minimum",
        "maximum",
        "minItems",
        "maxItems",
        "minLength",
        "maxLength",
        "pattern",
        "anyOf",
        "propertyOrdering",
        "minProperties",
        "maxProperties",
    }
)
TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object", "null"})
MAX_BYTES = 8 * 1024
MAX_DEPTH = 8
MAX_PROPERTIES = 128
_COUNTS = ("minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties")


class SchemaRefused(ValueError):
    """A response schema outside what is accepted; the message names the keyword and path."""


def check(schema: Any) -> None:
    """Raise `SchemaRefused` unless ``schema`` is within the accepted subset and limits."""
    if not isinstance(schema, dict):
        raise SchemaRefused("must be a JSON object (a JSON Schema)")
    size = len(json.dumps(schema, separators=(",", ":")))
    if size > MAX_BYTES:
        raise SchemaRefused(f"is {size} bytes; the limit is {MAX_BYTES}")
    counted = [0]
    _check(schema, "response_schema", 0, counted)


def _check(node: Any, path: str, depth: int, counted: list[int]) -> None:
    if not isinstance(node, dict):
        raise SchemaRefused(f"{path} must be a schema object")
    if depth > MAX_DEPTH:
        raise SchemaRefused(f"{path} nests deeper than {MAX_DEPTH} levels")
    for keyword, value in node.items():
        where = f"{path}.{keyword}"
        if value is None and keyword in KEYWORDS:
            continue  # JSON null: the keyword is unset
        if keyword not in KEYWORDS:
            raise SchemaRefused(f"keyword {keyword!r} at {path} is not supported")
        if keyword == "type":
            kinds = value if isinstance(value, list) else [value]
            if not kinds or not all(isinstance(k, str) and k in TYPES for k in kinds):
                raise SchemaRefused(f"{where} must name types among {', '.join(sorted(TYPES))}")
        elif keyword == "properties":
            if not isinstance(value, dict):
                raise SchemaRefused(f"{where} must be an object")
            counted[0] += len(value)
            if counted[0] > MAX_PROPERTIES:
                raise SchemaRefused(f"more than {MAX_PROPERTIES} properties in all")
            for name, sub in value.items():
                _check(sub, f"{where}.{name}", depth + 1, counted)
        elif keyword == "items":
            _check(value, where, depth + 1, counted)
        elif keyword == "anyOf":
            if not isinstance(value, list) or not value:
                raise SchemaRefused(f"{where} must be a non-empty list of schemas")
            for i, sub in enumerate(value):
                _check(sub, f"{where}[{i}]", depth + 1, counted)
        elif keyword in ("required", "propertyOrdering"):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise SchemaRefused(f"{where} must be a list of property names")
        elif keyword == "enum":
            if not isinstance(value, list) or not value or len(value) > 256:
                raise SchemaRefused(f"{where} must be a list of 1 to 256 values")
            if not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in value):
                raise SchemaRefused(f"{where} values must be strings or numbers")
        elif keyword in _COUNTS:
            integral = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
            if not integral or isinstance(value, bool) or not 0 <= value <= 10_000:
                raise SchemaRefused(f"{where} must be an integer from 0 to 10000")
        elif keyword in ("minimum", "maximum"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SchemaRefused(f"{where} must be a number")
            if not math.isfinite(value) or abs(value) > 1e15:
                raise SchemaRefused(f"{where} must be a finite number within ±1e15")
        elif keyword == "pattern":
            if not isinstance(value, str) or len(value) > 256:
                raise SchemaRefused(f"{where} must be a regular expression of ≤ 256 characters")
            try:
                re.compile(value)
            except re.error:
                raise SchemaRefused(f"{where} is not a regular expression") from None
        elif keyword == "nullable":
            if not isinstance(value, bool):
                raise SchemaRefused(f"{where} must be true or false")
        elif not isinstance(value, str) or len(value) > 256:
            raise SchemaRefused(f"{where} must be text of ≤ 256 characters")


def violations(value: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """Where ``value`` breaks ``schema`` (an accepted one); empty when it conforms."""
    if value is None and schema.get("nullable"):
        return []
    if "anyOf" in schema:
        options = [violations(value, s, path) for s in schema["anyOf"]]
        if not any(not found for found in options):
            return [f"{path}: matches none of anyOf"]
    kinds = schema.get("type")
    if kinds is not None:
        kinds = kinds if isinstance(kinds, list) else [kinds]
        if not any(_is(value, k) for k in kinds):
            return [f"{path}: expected {' or '.join(kinds)}"]
    found: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{path}: not one of the enum values")
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                found.append(f"{path}: missing required {name!r}")
        for name, sub in (schema.get("properties") or {}).items():
            if name in value:
                found += violations(value[name], sub, f"{path}.{name}")
        found += _bounds(len(value), schema, "minProperties", "maxProperties", path, "properties")
    elif isinstance(value, list):
        found += _bounds(len(value), schema, "minItems", "maxItems", path, "items")
        if isinstance(schema.get("items"), dict):
            for i, item in enumerate(value):
                found += violations(item, schema["items"], f"{path}[{i}]")
    elif isinstance(value, str):
        # `pattern` goes to the model and is not re-checked here: a caller's expression run on
        # this service's CPU could be made to backtrack for hours.
        found += _bounds(len(value), schema, "minLength", "maxLength", path, "characters")
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            found.append(f"{path}: below the minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            found.append(f"{path}: above the maximum {schema['maximum']}")
    return found


def _is(value: Any, kind: str) -> bool:
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if kind == "array":
        return isinstance(value, list)
    return isinstance(value, dict)


def _bounds(
    count: int, schema: dict[str, Any], low: str, high: str, path: str, unit: str
) -> list[str]:
    found = []
    if low in schema and count < schema[low]:
        found.append(f"{path}: fewer than {schema[low]} {unit}")
    if high in schema and count > schema[high]:
        found.append(f"{path}: more than {schema[high]} {unit}")
    return found


def parse_answer(text: str, schema: dict[str, Any]) -> tuple[Any, list[str]]:
    """The answer's JSON document and its violations (a parse failure is one)."""
    stripped = text.strip()
    if stripped.startswith("```"):  # a fenced block: take what is inside
        stripped = stripped.strip("`").removeprefix("json").strip()
    try:
        value = json.loads(stripped)
    except json.JSONDecodeError as exc:
        return None, [f"$: not JSON ({exc.msg} at character {exc.pos})"]
    return value, violations(value, schema)
