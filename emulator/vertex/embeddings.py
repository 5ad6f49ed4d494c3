"""Deterministic text embeddings for the Vertex AI emulator, meaningful enough for retrieval tests.

No model weights can be downloaded here, so an embedding is lexical: each word (lower-cased and
reduced to a crude stem: a plural ``s``, ``-ing`` and ``-ed`` dropped) and each character
trigram of it is hashed to a dimension and a sign, words weighing twice their trigrams, and the sum
is L2-normalised. Function words (articles, auxiliaries, modals, pronouns, question words) carry
no weight, as in a trained model; words that turn a meaning around (``not``, ``no``, ``on``,
``off``, ``before``, ``after``…) do. Texts sharing words and word pieces are near (cosine),
unrelated texts are near orthogonal, and the same text always gets the same vector — the
properties retrieval and the semantic cache are tested on.
"""

from __future__ import annotations

import hashlib
import math
import re

DIMENSIONS = 256
WORD = re.compile(r"[a-z0-9]+")
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "for",
        "from",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "my",
        "of",
        "or",
        "please",
        "s",
        "should",
        "such",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
    ]
)
SUFFIXES = ("ing", "ed", "s")


def stem(word: str) -> str:
    """A crude English stem: ``merging`` → ``merg``, ``clipped`` → ``clip``, ``tags`` → ``tag``."""
    for suffix in SUFFIXES:
        if len(word) > len(suffix) + 2 and word.endswith(suffix) and not word.endswith("ss"):
            word = word[: -len(suffix)]
            if suffix in ("ing", "ed") and word[-1] == word[-2]:
                word = word[:-1]  # a doubled consonant: clipp(ed) → clip
            return word
    return word


def _terms(text: str) -> list[tuple[str, float]]:
    terms: list[tuple[str, float]] = []
    for word in WORD.findall(text.lower()):
        if word in STOPWORDS:
            continue
        word = stem(word)
        terms.append((f"w:{word}", 2.0))
        padded = f"^{word}$"
        terms += [(f"t:{padded[i : i + 3]}", 1.0) for i in range(len(padded) - 2)]
    return terms


def embed(text: str, dimensions: int = DIMENSIONS) -> list[float]:
    """The unit vector of ``text`` (all zeros for a text without words)."""
    vector = [0.0] * dimensions
    for term, weight in _terms(text):
        digest = hashlib.blake2b(term.encode(), digest_size=8).digest()
        index = int.from_bytes(digest[:4], "big") % dimensions
        vector[index] += weight if digest[4] & 1 else -weight
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector] if norm else vector


def token_count(text: str) -> int:
    """Tokens as the emulator counts them (words)."""
    return len(text.split())
