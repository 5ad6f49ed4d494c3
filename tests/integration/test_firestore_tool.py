"""A firestore_lookup tool reads only the caller's own documents (unless its collection is shared)
and only the declared fields, on the running chat function."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.cloud import firestore

from tests.conftest import LocalStack, start_function

TOOLS = """
[tools.my_orders]
kind = "firestore_lookup"
description = "The caller's own orders, by status or by id."
collection = "orders"
fields = ["status", "total"]

[tools.my_orders.arguments.status]
type = "string"
required = false
enum = ["open", "shipped"]

[tools.my_orders.arguments.id]
type = "string"
required = false

[tools.store_hours]
kind = "firestore_lookup"
description = "Opening hours of the shops."
collection = "shops"
fields = ["city", "hours"]
shared = true
"""


@pytest.fixture
def chat_url(stack: LocalStack, tmp_path: Path) -> Iterator[str]:
    db = firestore.Client(project=stack.settings.project_id)
    orders = db.collection("orders")
    orders.document("alice-1").set(
        {"owner": "user:alice", "status": "open", "total": 12, "card": "4111"}
    )
    orders.document("alice-2").set({"owner": "user:alice", "status": "shipped", "total": 30})
    orders.document("bob-1").set({"owner": "user:bob", "status": "open", "total": 99})
    db.collection("shops").document("paris").set(
        {"owner": "user:ops", "city": "Paris", "hours": "9-18"}
    )
    path = tmp_path / "tools.toml"
    path.write_text(textwrap.dedent(TOOLS))
    url, process = start_function(stack.settings, "chat", NGX_TOOLS_FILE=str(path))
    yield url
    process.kill()


def ask(stack: LocalStack, url: str, user: str, message: str) -> dict[str, Any]:
    response = httpx.post(
        f"{url}/v1/chat", json={"message": message}, headers=stack.auth(user), timeout=30
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def documents(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The documents the model was given (the emulator quotes the function response)."""
    quoted = body["text"].split(": ", 1)[1]
    found: list[dict[str, Any]] = json.loads(quoted)["documents"]
    return found


def test_a_lookup_returns_only_the_callers_documents_and_declared_fields(
    stack: LocalStack, chat_url: str
) -> None:
    alice = ask(stack, chat_url, "alice", 'tool:my_orders {"status": "open"}')
    assert documents(alice) == [{"id": "alice-1", "status": "open", "total": 12}]
    bob = ask(stack, chat_url, "bob", 'tool:my_orders {"status": "open"}')
    assert documents(bob) == [{"id": "bob-1", "status": "open", "total": 99}]


def test_a_lookup_by_id_never_reads_someone_elses_document(
    stack: LocalStack, chat_url: str
) -> None:
    assert documents(ask(stack, chat_url, "alice", 'tool:my_orders {"id": "bob-1"}')) == []
    assert documents(ask(stack, chat_url, "alice", 'tool:my_orders {"id": "alice-2"}')) == [
        {"id": "alice-2", "status": "shipped", "total": 30}
    ]


def test_hostile_ids_are_refused_as_arguments(stack: LocalStack, chat_url: str) -> None:
    for hostile in ("__name__", "../bob-1", "a/b", "x" * 100):
        body = ask(stack, chat_url, "alice", f"tool:my_orders {json.dumps({'id': hostile})}")
        [call] = body["tool_calls"]
        assert call["status"] == "invalid_arguments", (hostile, call)


def test_a_shared_collection_is_read_by_everyone(stack: LocalStack, chat_url: str) -> None:
    body = ask(stack, chat_url, "bob", 'tool:store_hours {"city": "Paris"}')
    assert body["tool_calls"][0]["status"] == "invalid_arguments"  # city is not an argument
    body = ask(stack, chat_url, "bob", "tool:store_hours")
    assert documents(body) == [{"id": "paris", "city": "Paris", "hours": "9-18"}]
