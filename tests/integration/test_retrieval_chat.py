"""Retrieval in the chat (`retrieval: auto`) on the stack: after the committed corpus is ingested,
a question it answers carries `sources` pointing at the right document (chat, stream, stored
message); an unrelated question gets no sources and no context in the model's prompt."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LocalStack
from tests.integration.test_agent_tools import sse_events

CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus"
PREFIX = "https://help.lumen-notes.example/"


@pytest.fixture
def corpus(stack: LocalStack) -> None:
    done = stack.agentctl("corpus", "ingest", str(CORPUS), "--uri-prefix", PREFIX)
    assert done.returncode == 0, done.stderr


def ask(stack: LocalStack, body: dict[str, Any], user: str = "alice") -> dict[str, Any]:
    response = httpx.post(
        f"{stack.url('chat')}/v1/chat", json=body, headers=stack.auth(user), timeout=30
    )
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def test_an_answered_question_cites_the_right_document(stack: LocalStack, corpus: None) -> None:
    body = ask(stack, {"message": "How do I reset my password?", "retrieval": "auto"})
    assert body["sources"], body
    top = body["sources"][0]
    assert top["uri"] == PREFIX + "reset-password.md"
    assert top["title"] == "Resetting your password" and 0 < top["score"] <= 1
    assert "Forgot password" in top["snippet"] or "reset" in top["snippet"].lower()
    prompt = stack.model_requests()[-1]
    assert prompt["system_instruction_chars"] > 400  # the sources went into the prompt
    stored = httpx.get(
        f"{stack.url('chat')}/v1/conversations/{body['conversation_id']}",
        headers=stack.auth(),
        timeout=10,
    ).json()
    [answer] = [m for m in stored["messages"] if m["role"] == "model"]
    assert answer["sources"][0]["uri"] == top["uri"]


def test_an_unrelated_question_gets_no_sources_and_no_context(
    stack: LocalStack, corpus: None
) -> None:
    plain = ask(stack, {"message": "Tell me a joke", "retrieval": "off"})
    baseline = stack.model_requests()[-1]["system_instruction_chars"]
    body = ask(stack, {"message": "Quantum chromodynamics gluon xylophone", "retrieval": "auto"})
    assert body["sources"] == [] and plain["sources"] == []
    assert stack.model_requests()[-1]["system_instruction_chars"] == baseline


def test_the_stream_sends_sources_before_the_text(stack: LocalStack, corpus: None) -> None:
    response = httpx.post(
        f"{stack.url('stream')}/v1/chat:stream",
        json={"message": "Can I get a refund on my annual plan?", "retrieval": "auto"},
        headers=stack.auth(),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    events = sse_events(response.text)
    names = [n for n, _ in events]
    assert names[:2] == ["meta", "sources"] and "delta" in names
    assert dict(events)["sources"]["sources"][0]["uri"] == PREFIX + "billing.md"


def test_retrieval_off_by_default_calls_no_embedding(stack: LocalStack, corpus: None) -> None:
    before = httpx.get(f"{stack.vertex_admin}/calls", timeout=5).json()["embedded_texts"]
    body = ask(stack, {"message": "How do I reset my password?"})
    assert body["sources"] == []
    after = httpx.get(f"{stack.vertex_admin}/calls", timeout=5).json()["embedded_texts"]
    assert after == before


def test_someone_elses_private_document_is_never_a_source(
    stack: LocalStack, corpus: None, tmp_path: Path
) -> None:
    private = tmp_path / "alice-drawer.md"
    private.write_text("# Where my recovery codes are\n\nMy recovery codes are in the blue drawer.")
    done = stack.agentctl("corpus", "ingest", str(private), "--visibility", "user:alice")
    assert done.returncode == 0, done.stderr
    question = {"message": "Where are my recovery codes?", "retrieval": "auto"}
    mine = ask(stack, question, "alice")
    for _ in range(50):  # the instance loads the new lexical index beside serving the old one
        if mine["sources"][0]["title"] == "Where my recovery codes are":
            break
        time.sleep(0.1)
        mine = ask(stack, {**question, "temperature": 1.0}, "alice")  # not a cached answer
    assert mine["sources"][0]["title"] == "Where my recovery codes are"
    for user in ("bob", "mallory", "carol"):
        theirs = ask(stack, question, user)
        assert all("drawer" not in s["snippet"] for s in theirs["sources"]), user


def test_retrieval_as_a_tool_lets_the_model_look_up_and_cite(
    stack: LocalStack, corpus: None
) -> None:
    question = "Search the help articles: how do I reset my password?"
    body = ask(stack, {"message": question, "retrieval": "tool"})
    [call] = body["tool_calls"]
    assert call["name"] == "retrieve" and call["status"] == "ok"
    assert body["sources"][0]["uri"] == PREFIX + "reset-password.md"
    assert "Forgot password" in body["text"]  # the model answered from the passages
    declared = stack.model_requests()[0]["tools"]
    assert "retrieve" in declared
    response = httpx.post(
        f"{stack.url('stream')}/v1/chat:stream",
        json={"message": question, "retrieval": "tool", "temperature": 1.0},
        headers=stack.auth(),
        timeout=30,
    )
    names = [n for n, _ in sse_events(response.text)]
    assert names.index("tool_result") < names.index("sources") < names.index("delta")


def test_the_retrieve_tool_is_offered_only_with_retrieval_tool(
    stack: LocalStack, corpus: None
) -> None:
    ask(stack, {"message": "Search the help articles about billing", "retrieval": "auto"})
    assert "retrieve" not in stack.model_requests()[-1]["tools"]
