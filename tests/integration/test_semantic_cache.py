"""The semantic answer cache on the stack (a chat instance with it on, the emulator's embeddings):
paraphrases of answered questions are served from it (≥ 80% of the committed paraphrase set),
near-misses that need another answer are not (≤ 2%); it says so in `usage`; answers made with a
user's private context are served to that user only; conversation turns never take part; an
idempotent tool's answer lives no longer than the tool's TTL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LocalStack, start_function
from tests.integration.test_agent_tools import sse_events

DATA = Path(__file__).resolve().parents[1] / "data"
ROWS = [json.loads(line) for line in (DATA / "paraphrases.jsonl").open()]


@pytest.fixture
def chat(stack: LocalStack) -> Iterator[str]:
    url, process = start_function(stack.settings, "chat", NGX_SEMANTIC_CACHE_ENABLED="true")
    yield url
    process.terminate()
    process.wait(10)


async def ask(
    client: httpx.AsyncClient, url: str, stack: LocalStack, message: str, user: str, **extra: Any
) -> dict[str, Any]:
    response = await client.post(
        f"{url}/v1/chat", json={"message": message, **extra}, headers=stack.auth(user)
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def kept(stack: LocalStack, count: int) -> None:
    """Wait until ``count`` answers are kept (they are written off the request's path)."""
    import redis.asyncio

    probe = redis.asyncio.Redis.from_url(stack.redis_url)
    for _ in range(100):
        keys = [k async for k in probe.scan_iter(match="ngx:sem:*:a:*")]
        if len(keys) >= count:
            break
        await asyncio.sleep(0.05)
    await probe.aclose()
    assert len(keys) >= count


async def test_paraphrases_hit_and_near_misses_do_not(stack: LocalStack, chat: str) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        originals = {}
        for row in ROWS:
            body = await ask(client, chat, stack, row["question"], "alice")
            assert body["usage"]["cached"] is False and body["usage"]["semantic_similarity"] is None
            originals[row["question"]] = body["text"]
        await kept(stack, len(ROWS))
        calls = stack.model_calls()["calls"]
        hits = wrong = false_hits = 0
        similarities = []
        for row in ROWS:
            for paraphrase in row["paraphrases"]:
                body = await ask(client, chat, stack, paraphrase, "bob")  # another user: shared
                if body["usage"]["semantic_similarity"] is not None:
                    hits += 1
                    similarities.append(body["usage"]["semantic_similarity"])
                    assert body["usage"]["cached"] is True
                    assert body["usage"]["input_tokens"] == body["usage"]["output_tokens"] == 0
                    wrong += body["text"] != originals[row["question"]]
            for near_miss in row["near_misses"]:
                body = await ask(client, chat, stack, near_miss, "carol")
                false_hits += body["usage"]["semantic_similarity"] is not None
        paraphrases = sum(len(r["paraphrases"]) for r in ROWS)
        near_misses = sum(len(r["near_misses"]) for r in ROWS)
    hit_rate, false_rate = hits / paraphrases, false_hits / near_misses
    print(
        f"semantic cache: {hits}/{paraphrases} paraphrases hit ({hit_rate:.0%}), "
        f"{false_hits}/{near_misses} near-misses hit ({false_rate:.0%}), "
        f"similarity of hits {min(similarities):.3f}–{max(similarities):.3f}"
    )
    assert hit_rate >= 0.8 and false_rate <= 0.02 and wrong == 0
    served = stack.model_calls()["calls"]["gemini-2.5-flash"]["GenerateContent"]
    model_made = served - calls["gemini-2.5-flash"]["GenerateContent"]
    assert model_made == paraphrases - hits + near_misses - false_hits  # a hit makes no call


async def test_a_hit_on_the_stream_says_so(stack: LocalStack, chat: str) -> None:
    stream, process = start_function(stack.settings, "stream", NGX_SEMANTIC_CACHE_ENABLED="true")
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            first = await ask(client, chat, stack, "How do I merge two tags?", "alice")
            await kept(stack, 1)
            response = await client.post(
                f"{stream}/v1/chat:stream",
                json={"message": "How can I merge two tags?"},
                headers=stack.auth("bob"),
            )
    finally:
        process.terminate()
        process.wait(10)
    events = sse_events(response.text)
    names = [name for name, _ in events]
    assert names == ["meta", "delta", "usage", "done"], names
    usage = dict(events)["usage"]
    assert usage["cached"] is True and usage["semantic_similarity"] >= 0.85
    assert dict(events)["delta"]["text"] == first["text"]


async def test_private_context_is_served_to_its_owner_only(
    stack: LocalStack, chat: str, tmp_path: Path
) -> None:
    private = tmp_path / "drawer.md"
    private.write_text("# Where my recovery codes are\n\nMy recovery codes are in the blue drawer.")
    done = stack.agentctl("corpus", "ingest", str(private), "--visibility", "user:alice")
    assert done.returncode == 0, done.stderr
    await asyncio.sleep(0.6)  # past the instance's corpus refresh
    async with httpx.AsyncClient(timeout=30) as client:
        question = {"retrieval": "auto"}
        mine = await ask(client, chat, stack, "Where are my recovery codes?", "alice", **question)
        assert mine["sources"] and "drawer" in mine["sources"][0]["snippet"]
        await kept(stack, 1)
        again = await ask(
            client, chat, stack, "Where can I find my recovery codes?", "alice", **question
        )
        theirs = await ask(
            client, chat, stack, "Where can I find my recovery codes?", "bob", **question
        )
    assert again["usage"]["semantic_similarity"] is not None
    assert again["sources"] == mine["sources"]  # what it cited comes with it
    assert theirs["usage"]["semantic_similarity"] is None
    assert all("drawer" not in s["snippet"] for s in theirs["sources"])


async def test_conversation_turns_never_take_part(stack: LocalStack, chat: str) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        await ask(client, chat, stack, "How do I merge two tags?", "alice")
        await kept(stack, 1)
        first = await ask(client, chat, stack, "Hello there", "alice")
        turn = await ask(
            client,
            chat,
            stack,
            "How can I merge two tags?",
            "alice",
            conversation_id=first["conversation_id"],
        )
        hot = await ask(client, chat, stack, "How can I merge two tags?", "alice", temperature=1.2)
    assert turn["usage"]["semantic_similarity"] is None  # it has a history
    assert hot["usage"]["semantic_similarity"] is None  # not deterministic enough to share


async def test_an_idempotent_tools_answer_lives_no_longer_than_the_tool_ttl(
    stack: LocalStack, chat: str
) -> None:
    import redis.asyncio

    async with httpx.AsyncClient(timeout=30) as client:
        body = await ask(client, chat, stack, "What is the status of order A-1234?", "alice")
        assert body["tool_calls"][0]["name"] == "order_status"
        await kept(stack, 1)
        again = await ask(client, chat, stack, "What's the status of order A-1234?", "alice")
    probe = redis.asyncio.Redis.from_url(stack.redis_url)
    [key] = [k async for k in probe.scan_iter(match="ngx:sem:*:a:*")]
    ttl = await probe.ttl(key)
    await probe.aclose()
    assert 0 < ttl <= 30  # order_status's cache_ttl_s
    assert again["usage"]["semantic_similarity"] is not None
    assert again["tool_calls"] == []  # no tool ran for this answer


async def test_a_question_naming_personal_data_is_answered_from_its_askers_entries_only(
    stack: LocalStack, chat: str
) -> None:
    """Its answer may repeat what the question said: kept for the asker, never shared."""
    async with httpx.AsyncClient(timeout=30) as client:
        await ask(client, chat, stack, "I am maria@example.com and cannot sign in", "alice")
        await kept(stack, 1)
        again = await ask(
            client, chat, stack, "I'm maria@example.com and I cannot sign in", "alice"
        )
        theirs = await ask(client, chat, stack, "I am john@example.com and cannot sign in", "bob")
        same = await ask(client, chat, stack, "I am maria@example.com and cannot sign in", "bob")
    import redis.asyncio

    probe = redis.asyncio.Redis.from_url(stack.redis_url)
    print(sorted([k async for k in probe.scan_iter(match="ngx:sem:*")]))
    await probe.aclose()
    assert again["usage"]["semantic_similarity"] is not None
    assert theirs["usage"]["semantic_similarity"] is None
    assert same["usage"]["semantic_similarity"] is None
