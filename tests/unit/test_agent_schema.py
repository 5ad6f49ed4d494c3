"""The response-schema subset: what is refused (naming the keyword) and how answers are judged."""

from __future__ import annotations

from typing import Any

import pytest

from shared.agent.schema import SchemaRefused, check, parse_answer, violations

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 20},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "mood": {"enum": ["ok", "bad"]},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
        "nick": {"type": "string", "nullable": True},
        "code": {"type": "string", "pattern": "^[A-Z]{2}$"},
    },
    "required": ["name", "age"],
}


def test_a_supported_schema_passes() -> None:
    check(PERSON)
    check({"anyOf": [{"type": "string"}, {"type": ["integer", "null"]}]})


@pytest.mark.parametrize(
    ("schema", "named"),
    [
        ({"$ref": "#/x"}, "'$ref'"),
        (
            {"type": "object", "properties": {"a": {"oneOf": []}}},
            "'oneOf' at response_schema.properties.a",
        ),
        ({"type": "string", "const": "x"}, "'const'"),
        ({"type": "strin"}, "response_schema.type"),
        ({"type": [{}]}, "response_schema.type"),
        ({"type": []}, "response_schema.type"),
        ({"enum": []}, "enum"),
        ({"enum": [True]}, "enum"),
        ({"minItems": -1}, "minItems"),
        ({"minItems": 1.5}, "minItems"),
        ({"maximum": float("inf")}, "maximum"),
        ({"maximum": 1e300}, "maximum"),
        ({"minimum": False}, "minimum"),
        ({"pattern": "("}, "pattern"),
        ({"nullable": "yes"}, "nullable"),
        ({"description": "x" * 257}, "description"),
        ({"required": [1]}, "required"),
        ({"items": []}, "items"),
        ("not an object", "JSON object"),
    ],
)
def test_unsupported_schemas_name_the_keyword(schema: Any, named: str) -> None:
    with pytest.raises(SchemaRefused, match=None) as refused:
        check(schema)
    assert named in str(refused.value)


def test_limits_on_size_depth_and_properties() -> None:
    deep: dict[str, Any] = {"type": "string"}
    for _ in range(10):
        deep = {"type": "object", "properties": {"x": deep}}
    with pytest.raises(SchemaRefused, match="deeper"):
        check(deep)
    with pytest.raises(SchemaRefused, match="bytes"):
        check(
            {
                "description": "d" * 200,
                "properties": {f"p{i}": {"description": "d" * 200} for i in range(60)},
            }
        )
    many = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(129)}}
    with pytest.raises(SchemaRefused, match="128 properties"):
        check(many)


def test_integral_floats_count_as_integers() -> None:
    check({"type": "array", "minItems": 2.0})


def test_a_conforming_answer_has_no_violations() -> None:
    value = {"name": "Ada", "age": 36, "mood": "ok", "tags": ["a"], "nick": None, "code": "FR"}
    assert violations(value, PERSON) == []


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"age": 3}, "missing required 'name'"),
        ({"name": "", "age": 3}, "$.name: fewer than 1 characters"),
        ({"name": "A", "age": 3.5}, "$.age: expected integer"),
        ({"name": "A", "age": True}, "$.age: expected integer"),
        ({"name": "A", "age": 200}, "$.age: above the maximum"),
        ({"name": "A", "age": 1, "mood": "meh"}, "$.mood: not one of the enum values"),
        ({"name": "A", "age": 1, "tags": ["a", "b", "c"]}, "$.tags: more than 2 items"),
        ({"name": "A", "age": 1, "tags": [1]}, "$.tags[0]: expected string"),
        (["not", "an", "object"], "$: expected object"),
    ],
)
def test_violations_say_where(value: Any, problem: str) -> None:
    assert any(problem in found for found in violations(value, PERSON)), violations(value, PERSON)


def test_a_callers_pattern_is_never_run_here() -> None:
    evil = {"type": "string", "pattern": "^(a+)+$"}
    check(evil)  # compiled to refuse a broken one, never matched against an answer
    assert violations("a" * 64 + "!", evil) == []


def test_parse_answer_reads_json_and_fenced_json() -> None:
    assert parse_answer('{"name": "A", "age": 1}', PERSON) == ({"name": "A", "age": 1}, [])
    assert parse_answer('```json\n{"name": "A", "age": 1}\n```', PERSON)[1] == []
    data, problems = parse_answer('{"name": ', PERSON)
    assert data is None and problems[0].startswith("$: not JSON")
