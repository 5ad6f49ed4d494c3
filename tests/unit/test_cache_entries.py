"""Cache keys and entries: what changes a key, compression, and the size limit."""

from __future__ import annotations

from dataclasses import replace

from shared.llm.cache import decode, encode, is_cacheable, request_key
from shared.llm.flights import replay
from shared.llm.policy import CachePolicy
from shared.llm.types import LlmRequest, LlmResult, Turn

BASE = LlmRequest(turns=(Turn(role="user", text="hi"),), system_instruction="sys")


def test_key_covers_model_contents_system_parameters_and_scope() -> None:
    key = request_key(BASE, "m1")
    assert key.startswith("ngx:c:default:")
    variants = [
        request_key(BASE, "m2"),
        request_key(replace(BASE, turns=(Turn(role="user", text="hi!"),)), "m1"),
        request_key(replace(BASE, system_instruction="other"), "m1"),
        request_key(replace(BASE, temperature=0.3), "m1"),
        request_key(replace(BASE, max_output_tokens=5), "m1"),
        request_key(replace(BASE, cache_scope="alice"), "m1"),
        request_key(replace(BASE, template_version="v2"), "m1"),
    ]
    assert key not in variants and len(set(variants)) == len(variants)
    assert request_key(replace(BASE, subject="bob"), "m1") == key  # the payer does not matter


def test_cacheable_policy() -> None:
    assert is_cacheable(BASE, 0.4)
    assert not is_cacheable(replace(BASE, temperature=0.9), 0.4)
    assert not is_cacheable(replace(BASE, side_effect_tools=True), 0.4)


def test_entries_round_trip_and_compress_above_threshold() -> None:
    policy = CachePolicy(compress_min_bytes=1024, max_entry_bytes=64 * 1024)
    small = LlmResult(text="short answer", model="m", output_tokens=2)
    large = replace(small, text="word " * 2000)
    small_entry, large_entry = encode(small, policy, 1), encode(large, policy, 1)
    assert small_entry is not None and small_entry.startswith(b"1:J")
    assert large_entry is not None and large_entry.startswith(b"1:Z")
    assert len(large_entry) < len(large.text) / 5
    assert decode(small_entry) == small and decode(large_entry) == large


def test_entries_above_the_maximum_are_refused() -> None:
    policy = CachePolicy(compress_min_bytes=10**9, max_entry_bytes=2048)
    assert encode(LlmResult(text="x" * 4096, model="m"), policy, 1) is None


def test_replay_rebuilds_the_text_exactly() -> None:
    result = LlmResult(text="one two  three four five six seven eight nine ten.", model="m")
    chunks = replay(result)
    assert "".join(c.text for c in chunks) == result.text
    assert chunks[-1].finish_reason == "STOP" and len(chunks) == 2
