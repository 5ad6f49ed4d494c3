"""Deterministic function calling, structured answers and confidence for the Vertex AI emulator.

How the emulator decides, given the request (documented in ``docs/agent.md``):

- The newest content holds function responses → the model answers in text that quotes them
  (``Using order_status: {...}``; under a response schema, a conforming document whose strings
  come from them), unless the conversation's newest text starts with ``tool!:``.
- Otherwise, with tools declared and function calling not turned off (mode ``NONE``): a message
  starting with ``tool:NAME {json}`` (several may follow each other) calls exactly those; ``tool!:``
  calls them again at every step (a model that never stops calling tools). Failing that, each
  declared tool is scored by the words of its name (two points each) and the longer words of its
  description (one point each) found in the message; the best-scoring tools with two points or
  more are called, with arguments taken from the message (an id-like token for a string named
  ``…_id``, the message itself for another string, the first number for a number, an enum value
  named in the message).
- A text answer under ``response_json_schema`` is a JSON document conforming to the schema; the
  directive ``[invalid_output]`` makes every answer break the schema, ``[invalid_output_once]``
  only the first (a repair request then succeeds).
- ``avg_logprobs`` is −0.05 unless the message says ``[avg_logprobs=-2.5]``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format

FORCE = re.compile(r"tool(!?):([A-Za-z_][A-Za-z0-9_]*)")
LOGPROBS = re.compile(r"\[avg_logprobs=(-?\d+(?:\.\d+)?)\]")
ID_LIKE = re.compile(r"\b[A-Za-z]*-?\d[\w-]*\b")
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
WORD = re.compile(r"[a-z]{5,}")
STOPWORDS = frozenset({"about", "their", "there", "these", "which", "where", "given", "returns"})
DEFAULT_LOGPROBS = -0.05


@dataclass
class Decision:
    """What the emulated model does with one request."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    text: str | None = None  # set: this exact text (quoted results, or a JSON document)
    avg_logprobs: float = DEFAULT_LOGPROBS


def latest_text(request: Any) -> str:
    """The newest user text of the conversation."""
    for content in reversed(request.contents):
        if content.role in ("user", ""):
            text = "".join(p.text for p in content.parts)
            if text:
                return text
    return ""


def _results(request: Any) -> list[tuple[str, dict[str, Any]]]:
    """The function responses of the newest content, if it holds any."""
    if not request.contents:
        return []
    newest = type(request.contents[-1]).pb(request.contents[-1])
    return [
        (p.function_response.name, json_format.MessageToDict(p.function_response.response))
        for p in newest.parts
        if p.WhichOneof("data") == "function_response"
    ]


def declarations(request: Any) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for tool in request.tools:
        for d in type(tool).pb(tool).function_declarations:
            schema = json_format.MessageToDict(d.parameters_json_schema)
            found.append((d.name, d.description, schema if isinstance(schema, dict) else {}))
    return found


def calling_off(request: Any) -> bool:
    config = type(request.tool_config).pb(request.tool_config).function_calling_config
    return bool(config.mode == 3)  # FunctionCallingConfig.Mode.NONE


def decide(request: Any) -> Decision:
    """The emulated model's move for ``request``."""
    text = latest_text(request)
    logprob = LOGPROBS.search(text)
    decision = Decision(avg_logprobs=float(logprob.group(1)) if logprob else DEFAULT_LOGPROBS)
    declared = {name: (desc, schema) for name, desc, schema in declarations(request)}
    results = _results(request)
    may_call = bool(declared) and not calling_off(request)
    forced = _forced(text, declared)
    if results:
        if may_call and forced and forced[0]:
            decision.calls = forced[1]
        else:
            quoted = "; ".join(
                f"{name}: {json.dumps(response, sort_keys=True)}" for name, response in results
            )
            schema = response_schema(request)
            # A structured answer draws its strings from the results; a plain one quotes them.
            decision.text = (
                f"Using {quoted}" if schema is None else _structured(schema, quoted, request)
            )
        return decision
    if may_call:
        if forced:
            decision.calls = forced[1]
        else:
            decision.calls = _matched(text, declared)
        if decision.calls:
            return decision
    schema = response_schema(request)
    if schema is not None:
        decision.text = _structured(schema, text, request)
    return decision


def function_tokens(request: Any) -> int:
    """Prompt tokens of the function calls and responses in the conversation (JSON words)."""
    total = 0
    for content in request.contents:
        for part in type(content).pb(content).parts:
            kind = part.WhichOneof("data")
            if kind == "function_call":
                total += len(json_format.MessageToJson(part.function_call.args).split()) + 1
            elif kind == "function_response":
                total += len(json_format.MessageToJson(part.function_response.response).split()) + 1
    return total


def function_response_chars(request: Any) -> int:
    """Characters of the function responses the newest content carries (their JSON)."""
    return sum(len(json.dumps(response)) for _, response in _results(request))


def _forced(
    text: str, declared: dict[str, tuple[str, dict[str, Any]]]
) -> tuple[bool, list[tuple[str, dict[str, Any]]]] | None:
    """``tool:`` / ``tool!:`` calls at the start of the message: (again at every step, calls)."""
    stripped = text.strip()
    if not FORCE.match(stripped):
        return None
    calls: list[tuple[str, dict[str, Any]]] = []
    forever = False
    decoder = json.JSONDecoder()
    position = 0
    while (found := FORCE.match(stripped, position)) is not None:
        forever = forever or found.group(1) == "!"
        position = found.end()
        while position < len(stripped) and stripped[position] == " ":
            position += 1
        args: dict[str, Any] = {}
        if stripped[position : position + 1] == "{":
            try:
                parsed, position = decoder.raw_decode(stripped, position)
                args = parsed if isinstance(parsed, dict) else {}
            except ValueError:
                pass
        while position < len(stripped) and stripped[position] in " ;":
            position += 1
        if found.group(2) in declared:
            calls.append((found.group(2), args))
    return forever, calls


def _matched(
    text: str, declared: dict[str, tuple[str, dict[str, Any]]]
) -> list[tuple[str, dict[str, Any]]]:
    lowered = text.lower()
    words = set(re.findall(r"[a-z0-9]+", lowered))
    scores: dict[str, int] = {}
    for name, (description, _) in declared.items():
        score = 2 * sum(1 for part in name.lower().split("_") if part in words)
        keywords = {w for w in WORD.findall(description.lower()) if w not in STOPWORDS}
        score += sum(1 for word in keywords if word in words)
        scores[name] = score
    best = max(scores.values(), default=0)
    if best < 2:
        return []
    return [
        (name, _arguments(text, declared[name][1]))
        for name, score in scores.items()
        if score == best
    ]


def _arguments(text: str, schema: dict[str, Any]) -> dict[str, Any]:
    """Arguments for a declared function, read from the message."""
    args: dict[str, Any] = {}
    lowered = text.lower()
    ids = ID_LIKE.findall(text)
    numbers = NUMBER.findall(text)
    for name, spec in (schema.get("properties") or {}).items():
        if not isinstance(spec, dict):
            continue
        kind = spec.get("type")
        if "enum" in spec:
            named = [v for v in spec["enum"] if str(v).lower() in lowered]
            if named or name in schema.get("required", []):
                args[name] = named[0] if named else spec["enum"][0]
        elif kind == "string" and "id" not in name.split("_"):
            args[name] = LOGPROBS.sub("", text).strip()[: int(spec.get("maxLength", 500))]
        elif kind == "string" and ids:
            args[name] = ids.pop(0)
        elif kind in ("integer", "number") and numbers:
            value = float(numbers.pop(0))
            args[name] = int(value) if kind == "integer" else value
        elif kind == "boolean" and name in schema.get("required", []):
            args[name] = False
        elif name in schema.get("required", []) and kind == "string":
            args[name] = "unknown"
    return args


def response_schema(request: Any) -> dict[str, Any] | None:
    config = type(request.generation_config).pb(request.generation_config)
    if not config.HasField("response_json_schema"):
        return None
    schema = json_format.MessageToDict(config.response_json_schema)
    return schema if isinstance(schema, dict) else None


def _structured(schema: dict[str, Any], text: str, request: Any) -> str:
    """A JSON document conforming to ``schema`` (or, under a directive anywhere in the
    conversation's user texts, one that does not)."""
    repairing = any(c.role == "model" for c in request.contents)
    said = " ".join(p.text for c in request.contents if c.role in ("user", "") for p in c.parts)
    if "[invalid_output]" in said or ("[invalid_output_once]" in said and not repairing):
        return '{"not": "what the schema asks'  # not even JSON
    seed = hashlib.sha256(json.dumps(schema, sort_keys=True).encode() + text.encode()).digest()
    return json.dumps(instance(schema, seed, text), ensure_ascii=False)


def instance(schema: dict[str, Any], seed: bytes, text: str, depth: int = 0) -> Any:
    """A value conforming to ``schema`` (the subset Gemini accepts), chosen by ``seed``."""
    pick = seed[depth % len(seed)]
    if schema.get("anyOf"):
        return instance(schema["anyOf"][0], seed, text, depth + 1)
    if schema.get("enum"):
        return schema["enum"][pick % len(schema["enum"])]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties") or {}
        return {
            name: instance(spec, seed, text, depth + 1 + i)
            for i, (name, spec) in enumerate(properties.items())
            if isinstance(spec, dict)
        }
    if kind == "array":
        found = schema.get("items")
        items: dict[str, Any] = found if isinstance(found, dict) else {}
        low = int(schema.get("minItems", 1))
        high = int(schema.get("maxItems", max(low, 3)))
        count = max(low, min(high, 1 + pick % 3))
        return [instance(items, seed, text, depth + 1 + i) for i in range(count)]
    if kind in ("integer", "number"):
        low = schema.get("minimum", 0)
        high = schema.get("maximum", low + 100)
        value = low + (pick % (int(high - low) + 1) if high > low else 0)
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return bool(pick % 2)
    if kind == "null":
        return None
    return _string(schema, pick, text)


def _string(schema: dict[str, Any], pick: int, text: str) -> str:
    formats = {"date": "2026-12-07", "date-time": "2026-12-07T12:00:00Z", "email": "a@example.com"}
    if schema.get("format") in formats:
        return formats[str(schema["format"])]
    words: list[str] = re.findall(r"[A-Za-z]+", text) or ["answer"]
    value = words[pick % len(words)]
    low = int(schema.get("minLength", 0))
    high = int(schema.get("maxLength", max(low, 64)))
    value = (value * (low // max(len(value), 1) + 1))[: max(low, min(high, len(value)))]
    return value
