"""The emulator's answers are deterministic, sized as asked, and echo on request."""

from __future__ import annotations

from emulator.vertex import textgen


def test_same_key_same_answer_and_different_key_different_answer() -> None:
    first = textgen.answer_words("k1", "hi", 30)
    assert first == textgen.answer_words("k1", "hi", 30)
    assert first != textgen.answer_words("k2", "hi", 30)
    assert len(first) == 30


def test_echo_returns_the_rest_verbatim() -> None:
    assert textgen.answer_words("k", "echo: one two  three", 5) == ["one", "two", "three"]


def test_tokens_are_words() -> None:
    assert textgen.count_tokens(["a b c", " d  "]) == 4
