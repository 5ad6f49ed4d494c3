"""Which answers the semantic cache may keep, and for whom."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from shared.agent.loop import Answer, CallRecord
from shared.agent.tools import Tool
from shared.llm.types import LlmResult
from shared.semantic_answers import keepable


class Nothing(BaseModel):
    pass


async def _run(arguments: BaseModel, context: Any) -> dict[str, Any]:
    return {}


def tool(name: str, ttl: int | None, private: bool = False) -> Tool:
    return Tool(name, "d", Nothing, _run, cache_ttl_s=ttl, private=private)


def answer(*calls: str, finish: str = "STOP", fallback: bool = False) -> Answer:
    records = tuple(CallRecord(f"c{n}", name, {}, "ok", 1.0, "") for n, name in enumerate(calls))
    result = LlmResult("text", "m", finish_reason=finish, fallback=fallback)
    return Answer(result=result, calls=records)


TOOLS = [tool("weather", 600), tool("orders", 30, private=True), tool("pay", None)]


def test_a_plain_answer_is_kept_shared_for_the_caches_own_lifetime() -> None:
    assert keepable(answer(), TOOLS, False, "user:a") == (None, None)


def test_private_context_keeps_it_for_its_owner_only() -> None:
    assert keepable(answer(), TOOLS, True, "user:a") == ("user:a", None)
    assert keepable(answer("orders"), TOOLS, False, "user:a") == ("user:a", 30)


def test_idempotent_tools_bound_its_lifetime_by_the_shortest_ttl() -> None:
    assert keepable(answer("weather", "orders"), TOOLS, False, "user:a") == ("user:a", 30)
    assert keepable(answer("weather"), TOOLS, False, "user:a") == (None, 600)


def test_never_kept_after_a_non_idempotent_or_unknown_tool_or_a_bad_ending() -> None:
    assert keepable(answer("weather", "pay"), TOOLS, False, "user:a") is None
    assert keepable(answer("gone"), TOOLS, False, "user:a") is None
    assert keepable(answer(finish="MAX_TOKENS"), TOOLS, False, "user:a") is None
    assert keepable(answer(fallback=True), TOOLS, False, "user:a") is None


def test_numbers_and_codes_must_match_beside_the_meaning() -> None:
    from shared.semantic_cache import guard_of

    assert guard_of("What does error E-413 mean?") == guard_of("Error E-413: what is it?")
    assert guard_of("What does error E-413 mean?") != guard_of("What does error E-500 mean?")
    assert guard_of("Status of order A-1234") != guard_of("Status of order A-1243")
    assert guard_of("How do I merge two tags?") == guard_of("Merging two tags, how?")


def test_codes_differing_in_letters_differ_and_long_messages_stay_cheap() -> None:
    import time

    from shared.semantic_cache import guard_of

    assert guard_of("What does error E-413 mean?") != guard_of("What does warning W-413 mean?")
    started = time.perf_counter()
    guard_of("a-" * 8000 + " 1")
    assert time.perf_counter() - started < 0.5  # linear: no backtracking on hostile input
