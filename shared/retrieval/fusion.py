"""Hybrid ranking: reciprocal rank fusion, a similarity floor, a recency boost and MMR.

Candidates come from BM25 and vector search, each as a ranked list. Reciprocal rank fusion
scores a candidate ``sum(1 / (k + rank))`` over the lists it appears in, so neither score scale
matters. A candidate is injected only when it is close to the question in meaning (cosine
similarity of the embeddings at least the floor) or holds most of the question's informative
terms (IDF-weighted coverage at least ``min_coverage``) — whichever list found it; an unrelated
question passes neither. Maximal marginal relevance then
picks the results one by one, trading relevance against similarity to those already picked, so
four chunks of one document do not crowd out a second document.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from shared.retrieval.vector import Hit


@dataclass(frozen=True)
class Ranking:
    """How candidates are fused and chosen (from the settings)."""

    top_k: int
    min_similarity: float
    min_coverage: float = 0.6  # or: the share of the question's (IDF-weighted) terms it holds
    rrf_k: int = 60
    mmr_lambda: float = 0.7
    half_life_days: float = 0.0  # 0: no recency boost
    recency_weight: float = 0.2


def fuse(rankings: Sequence[Sequence[str]], k: int) -> dict[str, float]:
    """Reciprocal rank fusion of ranked id lists: each id's summed ``1 / (k + rank)``."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return scores


def recency(age_days: float, half_life_days: float, weight: float) -> float:
    """The boost factor of a chunk ``age_days`` old: 1 when off, at most 1 + ``weight``."""
    if half_life_days <= 0:
        return 1.0
    return 1.0 + weight * math.pow(0.5, max(age_days, 0.0) / half_life_days)


def choose(
    query: Sequence[float],
    candidates: dict[str, tuple[Hit, Any]],
    rankings: Sequence[Sequence[str]],
    ranking: Ranking,
    now: float,
    coverage: dict[str, float] | None = None,
) -> list[Hit]:
    """The chunks to inject, best first: fused, floored, boosted for recency, diversified.

    ``candidates`` maps a chunk id to its hit and its embedding (any float sequence);
    ``coverage`` the share of the question's terms each holds (from the lexical index)."""
    import numpy as np

    if not candidates:
        return []
    ids = list(candidates)
    matrix = np.asarray([candidates[i][1] for i in ids], dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    matrix = (matrix / np.where(norms == 0, 1.0, norms)).astype(np.float32)
    q = np.asarray(query, dtype=np.float32)
    q = q / (float(np.linalg.norm(q)) or 1.0)
    similarity = matrix @ q
    fused = fuse(rankings, ranking.rrf_k)
    covered = coverage or {}
    keep = [
        n
        for n, i in enumerate(ids)
        if similarity[n] >= ranking.min_similarity or covered.get(i, 0.0) >= ranking.min_coverage
    ]
    if not keep:
        return []
    relevance = np.zeros(len(ids), dtype=np.float64)
    for n in keep:
        hit = candidates[ids[n]][0]
        age_days = (now - hit.updated_at) / 86400 if hit.updated_at else 0.0
        boost = recency(age_days, ranking.half_life_days, ranking.recency_weight)
        relevance[n] = fused.get(ids[n], 0.0) * boost
    top = float(relevance[keep].max()) or 1.0
    relevance /= top  # 0..1, comparable with cosine similarities in the MMR trade
    chosen: list[int] = []
    left = sorted(keep, key=lambda n: -relevance[n])
    pairwise = matrix @ matrix.T
    while left and len(chosen) < ranking.top_k:
        redundancy = pairwise[np.ix_(left, chosen)].max(axis=1) if chosen else np.zeros(len(left))
        scores = ranking.mmr_lambda * relevance[left] - (1 - ranking.mmr_lambda) * redundancy
        best = left[int(np.argmax(scores))]
        chosen.append(best)
        left.remove(best)
    return [replace(candidates[ids[n]][0], similarity=float(similarity[n])) for n in chosen]
