"""``agentctl corpus eval``: recall@k, MRR and nDCG@k of each retrieval mode on a question set.

A question set is JSON Lines, one ``{"question": "...", "relevant": ["uri", ...]}`` per line
(optional ``"subject"``: whose private documents may be seen). Results are judged per document:
the ranked chunks become the ranked list of their documents' URIs, each counted once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ops.settings import get_ops_settings
from ops.ui import ProgressLine

if TYPE_CHECKING:
    from shared.retrieval.retriever import Mode

MAX_QUESTIONS = 10_000
MAX_QUESTION_CHARS = 2_000


class QuestionsRefused(ValueError):
    """A question set that cannot be used as it is (the message names the line)."""


@dataclass(frozen=True)
class Question:
    question: str
    relevant: frozenset[str]
    subject: str | None = None


@dataclass
class Scores:
    """One mode's averages over the question set, and its latency."""

    recall: dict[int, float] = field(default_factory=dict)
    mrr: float = 0.0
    ndcg: float = 0.0
    latency_ms_p50: float = 0.0
    questions: int = 0


def load(path: Path) -> list[Question]:
    """The questions of a JSON Lines file (QuestionsRefused naming the first bad line)."""
    found: list[Question] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise QuestionsRefused(f"{path}: {exc}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if len(found) == MAX_QUESTIONS:
            raise QuestionsRefused(f"more than {MAX_QUESTIONS} questions")
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise QuestionsRefused(f"line {number}: not JSON ({exc.msg})") from None
        question, relevant = (
            (row.get("question"), row.get("relevant")) if isinstance(row, dict) else (None, None)
        )
        if not isinstance(question, str) or not 0 < len(question) <= MAX_QUESTION_CHARS:
            raise QuestionsRefused(f"line {number}: question must be 1 to 2000 characters")
        if (
            not isinstance(relevant, list)
            or not relevant
            or not all(isinstance(u, str) and u for u in relevant)
        ):
            raise QuestionsRefused(f"line {number}: relevant must be a list of URIs")
        subject = row.get("subject")
        if subject is not None and not isinstance(subject, str):
            raise QuestionsRefused(f"line {number}: subject must be a string")
        found.append(Question(question, frozenset(relevant), subject))
    if not found:
        raise QuestionsRefused(f"{path}: no questions")
    return found


def documents(uris: Sequence[str]) -> list[str]:
    """Ranked chunk URIs as ranked documents, each once."""
    return list(dict.fromkeys(uris))


def recall_at(ranked: Sequence[str], relevant: frozenset[str], k: int) -> float:
    return len(relevant.intersection(ranked[:k])) / len(relevant)


def reciprocal_rank(ranked: Sequence[str], relevant: frozenset[str]) -> float:
    for rank, uri in enumerate(ranked, start=1):
        if uri in relevant:
            return 1.0 / rank
    return 0.0


def ndcg_at(ranked: Sequence[str], relevant: frozenset[str], k: int) -> float:
    """Binary-gain nDCG@k: 1 when every relevant document leads the ranking."""
    gain = sum(1 / math.log2(r + 1) for r, u in enumerate(ranked[:k], 1) if u in relevant)
    ideal = sum(1 / math.log2(r + 1) for r in range(1, min(k, len(relevant)) + 1))
    return gain / ideal


def score(rankings: Sequence[tuple[Question, list[str], float]], ks: Sequence[int]) -> Scores:
    """Averages of one mode's ranked documents per question (with each search's seconds)."""
    result = Scores(questions=len(rankings))
    if not rankings:
        return result
    n = len(rankings)
    for k in ks:
        result.recall[k] = sum(recall_at(r, q.relevant, k) for q, r, _ in rankings) / n
    result.mrr = sum(reciprocal_rank(r, q.relevant) for q, r, _ in rankings) / n
    result.ndcg = sum(ndcg_at(r, q.relevant, max(ks)) for q, r, _ in rankings) / n
    latencies = sorted(seconds for _, _, seconds in rankings)
    result.latency_ms_p50 = latencies[n // 2] * 1000
    return result


MODES: dict[str, Mode] = {"vector": "vector", "bm25": "lexical", "hybrid": "hybrid"}


def add_command(actions: Any) -> None:
    evaluate = actions.add_parser(
        "eval", help="recall@k, MRR and nDCG of vector, BM25 and hybrid retrieval"
    )
    evaluate.add_argument("questions", type=Path, help="JSON Lines: question, relevant URIs")
    evaluate.add_argument("--k", default="1,3,5", help="the cut-offs of recall@k (default 1,3,5)")
    evaluate.add_argument("--out", type=Path, help="also write the results as JSON here")
    evaluate.add_argument("--json", action="store_true", help="the results as JSON on stdout")
    evaluate.add_argument(
        "--rerank",
        action="store_true",
        help="also hybrid re-ranked through the ranking API (its gain and latency)",
    )
    evaluate.set_defaults(run=main)


async def _evaluate(
    questions: list[Question], ks: list[int], rerank: bool = False
) -> dict[str, Scores]:
    from dataclasses import replace

    from shared.llm.resilience import Resilience
    from shared.llm.transport import VertexTransport
    from shared.memorystore import Memorystore
    from shared.retrieval.embeddings import Embedder
    from shared.retrieval.published import CorpusView
    from shared.retrieval.rerank import Reranker
    from shared.retrieval.retriever import Retriever
    from shared.retrieval.vector import VectorSearch
    from shared.retrieval.vertex_vector import VertexVectorSearch
    from shared.stores.firestore import make_client

    settings = get_ops_settings()
    transport, store = VertexTransport(settings), Memorystore(settings)
    db = make_client(settings)
    embedder = Embedder(settings, transport, Resilience(settings), store)
    reranker = Reranker(settings) if rerank else None
    backend = VertexVectorSearch(db, settings) if settings.vector_backend == "vertex" else None
    search = backend or VectorSearch(db)
    view = CorpusView(db, settings)
    retriever = Retriever(settings, embedder, search, view, reranker=reranker)
    ranking = replace(retriever.ranking, top_k=max(max(ks), retriever.ranking.top_k))
    results: dict[str, Scores] = {}
    progress = ProgressLine()
    try:
        _, index = await CorpusView(db, settings).state()
        runs = [(label, mode, False) for label, mode in MODES.items()]
        if rerank:
            runs.append(("hybrid+rerank", "hybrid", True))
        for label, mode, reranked in runs:
            if mode != "vector" and index is None:
                continue  # no lexical index published: BM25 and hybrid cannot be told apart
            rankings = []
            for number, q in enumerate(questions, start=1):
                started = time.perf_counter()
                hits = await retriever.retrieve(
                    q.question, q.subject, mode=mode, ranking=ranking, rerank=reranked
                )
                seconds = time.perf_counter() - started
                rankings.append((q, documents([h.uri for h in hits]), seconds))
                progress(f"evaluating {label}", number, "questions")
            results[label] = score(rankings, ks)
    finally:
        progress.close()
        await transport.close()
        await store.close()
        for client in (reranker, backend):
            if client is not None:
                await client.close()
        db.close()
    return results


def _table(results: dict[str, Scores], ks: list[int]) -> str:
    head = ["mode", *(f"recall@{k}" for k in ks), "MRR", f"nDCG@{max(ks)}", "p50 ms"]
    rows = [head]
    for label, s in results.items():
        cells = [f"{s.recall[k]:.3f}" for k in ks]
        rows.append([label, *cells, f"{s.mrr:.3f}", f"{s.ndcg:.3f}", f"{s.latency_ms_p50:.1f}"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def main(args: argparse.Namespace) -> int:
    try:
        ks = sorted({int(k) for k in args.k.split(",")})
        if not ks or ks[0] < 1 or ks[-1] > 100:
            raise ValueError
    except ValueError:
        print("agentctl corpus eval: --k takes cut-offs from 1 to 100, e.g. 1,3,5", file=sys.stderr)
        return 2
    try:
        questions = load(args.questions)
    except QuestionsRefused as exc:
        print(f"agentctl corpus eval: {exc}", file=sys.stderr)
        return 2
    results = asyncio.run(_evaluate(questions, ks, args.rerank))
    document = {
        "questions": len(questions),
        "modes": {label: asdict(s) for label, s in results.items()},
    }
    if args.out:
        args.out.write_text(json.dumps(document, indent=1) + "\n")
    if args.json:
        print(json.dumps(document, indent=1))
    else:
        print(f"{len(questions)} questions")
        print(_table(results, ks))
        if "bm25" not in results:
            print("no lexical index is published: only vector search was evaluated")
    return 0
