"""Hybrid ranking: reciprocal rank fusion, the similarity floor, recency and MMR diversity."""

from __future__ import annotations

import math

from shared.retrieval.fusion import Ranking, choose, fuse, recency
from shared.retrieval.vector import Hit


def hit(chunk_id: str, uri: str = "u", updated_at: float = 0.0) -> Hit:
    return Hit(chunk_id, uri, "t", "", f"text {chunk_id}", 0.0, updated_at=updated_at)


def unit(*values: float) -> list[float]:
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values]


def test_rrf_sums_reciprocal_ranks_over_the_lists() -> None:
    scores = fuse([["a", "b"], ["b", "c"]], k=60)
    assert math.isclose(scores["b"], 1 / 62 + 1 / 61)
    assert math.isclose(scores["a"], 1 / 61) and math.isclose(scores["c"], 1 / 62)
    assert scores["b"] > scores["a"] > scores["c"]  # found by both beats first in one


def test_nothing_below_the_similarity_floor_is_returned_whoever_found_it() -> None:
    query = unit(1, 0, 0)
    candidates = {"near": (hit("near"), unit(1, 0.2, 0)), "far": (hit("far"), unit(0, 1, 0))}
    chosen = choose(query, candidates, [["far", "near"]], Ranking(top_k=5, min_similarity=0.5), 0)
    assert [h.chunk_id for h in chosen] == ["near"]
    assert 0.97 < chosen[0].similarity <= 1.0
    ranking = Ranking(top_k=5, min_similarity=0.99)
    assert choose(query, {"far": candidates["far"]}, [["far"]], ranking, 0) == []


def test_mmr_prefers_a_second_document_over_a_near_duplicate() -> None:
    query = unit(1, 1, 0)
    candidates = {
        "a1": (hit("a1", "doc-a"), unit(1, 0.9, 0)),
        "a2": (hit("a2", "doc-a"), unit(1, 0.91, 0)),  # nearly a1 again
        "b1": (hit("b1", "doc-b"), unit(0.6, 1, 0.5)),
    }
    ranked = [["a1", "a2", "b1"]]
    diverse = choose(query, candidates, ranked, Ranking(top_k=2, min_similarity=0.1), 0)
    assert [h.chunk_id for h in diverse] == ["a1", "b1"]
    plain = Ranking(top_k=2, min_similarity=0.1, mmr_lambda=1.0)  # relevance only
    assert [h.chunk_id for h in choose(query, candidates, ranked, plain, 0)] == ["a1", "a2"]


def test_recency_boost_lifts_a_fresh_chunk_only_when_enabled() -> None:
    day = 86400.0
    now = 400 * day
    query = unit(1, 0)
    candidates = {
        "old": (hit("old", "a", updated_at=now - 365 * day), unit(1, 0.05)),
        "new": (hit("new", "b", updated_at=now - 1 * day), unit(1, 0.06)),
    }
    ranked = [["old", "new"]]
    off = Ranking(top_k=1, min_similarity=0.1)
    on = Ranking(top_k=1, min_similarity=0.1, half_life_days=30, recency_weight=0.5)
    assert choose(query, candidates, ranked, off, now)[0].chunk_id == "old"
    assert choose(query, candidates, ranked, on, now)[0].chunk_id == "new"
    assert recency(0, 0, 0.5) == 1.0 and math.isclose(recency(30, 30, 0.5), 1.25)


def test_no_candidates_no_results() -> None:
    assert choose(unit(1, 0), {}, [], Ranking(top_k=3, min_similarity=0), 0) == []
