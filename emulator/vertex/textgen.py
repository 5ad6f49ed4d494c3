"""Deterministic answers and token counts: the same request always gets the same answer.

A token is a whitespace-separated word here; real tokenizers differ, but tests need counts that
are exact and easy to predict. A user message starting with ``echo:`` is answered with the rest
of the message verbatim, which lets tests choose the answer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

_VOCABULARY = """
the model answers with clear steps and checks each result before it moves on to the next
part of the plan while keeping the cost low and the latency short for every user on mobile
networks cloud run scales instances with traffic firestore keeps conversations redis caches
answers vertex gemini streams tokens quickly safely reliably today tomorrow because when
where which how why data agent function request response cache hit miss token budget retry
circuit breaker fallback region project service revision canary traffic metric alert backup
restore verify prune policy window summary history message reply question idea example
simple small large fast slow good better best first second third final answer note
"""
WORDS = tuple(_VOCABULARY.split())

ECHO_PREFIX = "echo:"


def count_tokens(texts: Iterable[str]) -> int:
    """Tokens in the given texts (words)."""
    return sum(len(text.split()) for text in texts)


def answer_words(key: str, last_user_text: str, length: int) -> list[str]:
    """The answer for a request, as tokens; ``key`` identifies the request exactly."""
    stripped = last_user_text.strip()
    if stripped.lower().startswith(ECHO_PREFIX):
        return stripped[len(ECHO_PREFIX) :].split()
    words: list[str] = []
    counter = 0
    while len(words) < length:
        digest = hashlib.blake2b(f"{counter}:{key}".encode(), digest_size=64).digest()
        for i in range(0, len(digest), 2):
            words.append(WORDS[int.from_bytes(digest[i : i + 2], "big") % len(WORDS)])
        counter += 1
    words = words[:length]
    if words:
        words[0] = words[0].capitalize()
        words[-1] += "."
    return words
