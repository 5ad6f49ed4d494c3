"""The OpenAPI document: committed as generated, valid OpenAPI 3.1, built from the registry (a route
without documentation fails the build), one name and schema per parameter, examples that match
their schemas, and every error code listed."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator

from shared import errors, openapi, registry
from shared.contracts import STREAM_EVENTS

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")
# The names generated clients call (clients/typescript): renaming one breaks them.
PUBLIC_OPERATION_IDS = {
    "chat",
    "chatStream",
    "openSession",
    "decideConfirmation",
    "listConversations",
    "getConversation",
    "deleteConversation",
    "rateAnswer",
    "eraseMe",
    "exportMe",
    "listHandoffs",
    "replyHandoff",
    "closeHandoff",
    "getJob",
    "healthz",
    "readyz",
}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return openapi.document()


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """``node``, or what its ``$ref`` points at in the document."""
    ref = node.get("$ref")
    if ref is None:
        return node
    found: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        found = found[part]
    return dict(found)


def validator(doc: dict[str, Any], schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    """A JSON Schema 2020-12 validator of ``schema`` whose ``#/components/…`` references resolve
    in the document (OpenAPI 3.1 schemas are 2020-12)."""
    root = {"allOf": [schema], "components": doc["components"]}
    return jsonschema.Draft202012Validator(
        root, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def examples(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], Any]]:
    """Every example of a request or response body: where, its schema and its value."""
    for path, method, operation in operations(doc):
        bodies = [("request", operation.get("requestBody", {}))]
        bodies += [(status, response) for status, response in operation["responses"].items()]
        for status, body in bodies:
            for media_type, content in body.get("content", {}).items():
                for name, example in content.get("examples", {}).items():
                    where = f"{method.upper()} {path} {status} {media_type} {name}"
                    yield where, content["schema"], example["value"]


def test_committed_document_matches_the_code() -> None:
    assert COMMITTED.read_text() == openapi.render(), "run `make openapi` and commit the result"


def test_the_document_is_valid_openapi_3_1(doc: dict[str, Any]) -> None:
    assert doc["openapi"] == "3.1.0"
    OpenAPIV31SpecValidator(doc).validate()


def test_every_route_of_every_public_function_is_an_operation(doc: dict[str, Any]) -> None:
    assert set(doc["paths"]) == {
        "/v1/chat",
        "/v1/chat:stream",
        "/v1/conversations",
        "/v1/conversations/{conversation_id}",
        "/v1/conversations/{conversation_id}/messages/{message_id}/feedback",
        "/v1/confirmations/{confirmation_id}",
        "/v1/me",
        "/v1/me/export",
        "/v1/jobs/{job_id}",
        "/v1/handoffs",
        "/v1/handoffs/{conversation_id}/messages",
        "/v1/handoffs/{conversation_id}/close",
        "/v1/sessions",
        "/healthz",
        "/readyz",
    }
    for spec in (registry.CHAT, registry.STREAM):
        for route in spec.routes:
            operation = doc["paths"][route.path][route.method.lower()]
            assert operation.get("x-required-scope") == route.scope, route
            assert (operation.get("security") == []) == (route.scope is None or route.websocket)
    assert {op["operationId"] for _, _, op in operations(doc)} == PUBLIC_OPERATION_IDS


def test_servers_name_the_functions_that_serve_each_path(doc: dict[str, Any]) -> None:
    chat, stream = (f"http://127.0.0.1:{s.local_port}" for s in (registry.CHAT, registry.STREAM))
    assert [server["url"] for server in doc["servers"]] == [chat]
    for path in ("/healthz", "/readyz"):  # served by both, documented once
        assert [server["url"] for server in doc["paths"][path]["servers"]] == [chat, stream]
    for path in ("/v1/chat:stream", "/v1/sessions"):
        assert [server["url"] for server in doc["paths"][path]["servers"]] == [stream]
    assert "servers" not in doc["paths"]["/v1/chat"]


def test_a_route_added_to_a_function_without_documentation_fails_the_build(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    widgets = registry.RouteSpec("GET", "/v1/widgets", "list_widgets", "conversations")
    chat = dataclasses.replace(registry.CHAT, routes=(*registry.CHAT.routes, widgets))
    functions = tuple(chat if spec is registry.CHAT else spec for spec in registry.FUNCTIONS)
    monkeypatch.setattr(registry, "FUNCTIONS", functions)
    assert openapi.undocumented() == [
        "GET /v1/widgets (chat: operation 'list_widgets') has no entry in shared.openapi.OPERATIONS"
    ]
    with pytest.raises(openapi.DocumentError, match=r"GET /v1/widgets .*'list_widgets'"):
        openapi.document()


def test_documentation_of_a_route_that_is_gone_fails_the_build(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(openapi.OPERATIONS, "list_widgets", openapi.OPERATIONS["healthz"])
    with pytest.raises(openapi.DocumentError, match=r"OPERATIONS\['list_widgets'\]"):
        openapi.document()


def test_path_parameters_are_named_as_in_the_templates_and_mean_one_thing(
    doc: dict[str, Any],
) -> None:
    schemas: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
    for path, method, operation in operations(doc):
        parameters = [resolve(doc, p) for p in operation.get("parameters", [])]
        in_path = [p["name"] for p in parameters if p["in"] == "path"]
        template = re.findall(r"\{(\w+)\}", path)
        assert sorted(in_path) == sorted(template), f"{method} {path}: {in_path}"
        assert len(set(in_path)) == len(in_path)
        for parameter in parameters:
            key = (parameter["in"], parameter["name"])
            where, schema = schemas.setdefault(key, (f"{method} {path}", parameter["schema"]))
            assert parameter["schema"] == schema, f"{key}: {method} {path} differs from {where}"
    assert ("path", "conversation_id") in schemas  # one name per idea: never {id} or {cid}
    assert not {name for (place, name) in schemas if place == "path"} - {
        "conversation_id",
        "message_id",
        "confirmation_id",
        "job_id",
    }


def test_every_operation_has_examples_of_its_body_and_its_success(doc: dict[str, Any]) -> None:
    for path, method, operation in operations(doc):
        where = f"{method.upper()} {path}"
        for content in operation.get("requestBody", {}).get("content", {}).values():
            assert content.get("examples"), f"{where}: request body without an example"
        success = {s: r for s, r in operation["responses"].items() if s < "400"}
        assert success, f"{where}: no success response"
        for status, response in success.items():
            if status == "101":
                continue  # the WebSocket handshake: no body
            for content in response["content"].values():
                assert content.get("examples"), f"{where} {status}: no example"


def test_every_example_matches_its_schema(doc: dict[str, Any]) -> None:
    seen = 0
    for where, schema, value in examples(doc):
        problems = [e.message for e in validator(doc, schema).iter_errors(value)]
        assert not problems, f"{where}: {problems}"
        if where.split()[3] == "text/event-stream":  # and the event's data its model's schema
            model = STREAM_EVENTS[value["event"]].__name__
            data_schema = {"$ref": f"#/components/schemas/{model}"}
            validator(doc, data_schema).validate(json.loads(value["data"]))
        seen += 1
    assert seen >= 40


def test_a_wrong_example_fails_validation(doc: dict[str, Any]) -> None:
    broken = copy.deepcopy(doc)
    content = broken["paths"]["/v1/conversations"]["get"]["responses"]["200"]["content"]
    page = content["application/json"]["examples"]["page"]["value"]
    page["conversations"][0]["message_count"] = "two"
    failures = [
        where
        for where, schema, value in examples(broken)
        if not validator(broken, schema).is_valid(value)
    ]
    assert failures == ["GET /v1/conversations 200 application/json page"]


def test_every_error_code_is_listed_with_its_status(doc: dict[str, Any]) -> None:
    kinds: list[type[errors.AppError]] = [errors.AppError]
    for kind in kinds:  # walked here, not through errors.catalogue, so a gap there shows too
        kinds.extend(kind.__subclasses__())
    table = doc["components"]["x-error-codes"]
    code_text = doc["components"]["schemas"]["ErrorBody"]["properties"]["code"]["description"]
    for kind in kinds:
        assert table[kind.code]["status"] == kind.status, kind
        assert table[kind.code]["description"], kind
        assert f"| `{kind.code}` | {kind.status} |" in code_text, kind
    assert set(table) == {kind.code for kind in kinds}  # a refinement elsewhere reuses its code


def test_each_error_response_lists_the_codes_of_its_status(doc: dict[str, Any]) -> None:
    statuses = {code: row["status"] for code, row in doc["components"]["x-error-codes"].items()}
    for path, method, operation in operations(doc):
        for status, response in operation["responses"].items():
            if status < "400" or "content" not in response:
                continue
            codes = set(response["content"]["application/json"]["examples"])
            assert codes, f"{method} {path} {status}"
            assert {statuses[code] for code in codes} == {int(status)}, f"{method} {path}"
            assert all(f"`{code}`" in response["description"] for code in codes)
        assert "500" in operation["responses"], f"{method} {path}: the internal error"


def test_routes_answer_the_errors_of_their_kind(doc: dict[str, Any]) -> None:
    chat = doc["paths"]["/v1/chat"]["post"]["responses"]
    assert {"400", "401", "403", "404", "409", "413", "415", "422", "429", "502", "503", "504"} <= (
        set(chat)
    )
    assert set(chat["429"]["content"]["application/json"]["examples"]) == {
        "rate_limited",
        "token_budget_exceeded",
    }
    listing = doc["paths"]["/v1/conversations"]["get"]["responses"]
    assert set(listing) == {"200", "401", "403", "422", "429", "500", "503"}
    assert set(doc["paths"]["/healthz"]["get"]["responses"]) == {"200", "500"}
    assert set(doc["paths"]["/readyz"]["get"]["responses"]) == {"200", "500", "503"}
    assert set(doc["paths"]["/v1/sessions"]["get"]["responses"]) == {"101", "403", "426", "500"}


def test_a_subclass_defined_elsewhere_changes_neither_the_codes_nor_the_document() -> None:
    """Operations code refines `Conflict` (the canary's `Stale`); importing it, as a whole test
    run does, must not add a code or change the committed document."""
    import ops.canary.state  # noqa: F401

    class Refined(errors.Conflict):
        """A test's own refinement."""

    before = [kind.code for kind in errors.catalogue()]
    assert "conflict" in before and len(before) == len(set(before))
    assert COMMITTED.read_text() == openapi.render()
