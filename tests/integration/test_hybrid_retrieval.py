"""Hybrid retrieval on the stack: the lexical index published at ingestion and loaded once per
instance, `agentctl corpus eval` on the committed question set (hybrid recall@5 at least each of
vector and BM25 alone, and at least 0.8), expired chunks never returned, results cached by corpus
version, and another user's private chunks never retrieved over many queries and every mode."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.backup.sinks import open_sink
from shared.llm.resilience import Resilience
from shared.llm.transport import VertexTransport
from shared.memorystore import Memorystore
from shared.retrieval import lexical
from shared.retrieval.corpus import CorpusStore, IngestReport
from shared.retrieval.embeddings import Embedder
from shared.retrieval.published import CorpusView, publish
from shared.retrieval.retriever import Retriever
from shared.retrieval.sources import document
from shared.retrieval.vector import VectorSearch
from tests.conftest import LocalStack

DATA = Path(__file__).resolve().parents[1] / "data"
PREFIX = "https://help.lumen-notes.example/"


def ingest(stack: LocalStack, path: Path, *extra: str) -> dict[str, Any]:
    done = stack.agentctl("corpus", "ingest", str(path), "--uri-prefix", PREFIX, "--json", *extra)
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


@pytest.fixture
async def parts(stack: LocalStack, firestore_db: Any) -> AsyncIterator[dict[str, Any]]:
    """An in-process retriever (no result cache unless asked) on the stack's services."""
    settings = stack.client_settings(
        corpus_index_sink=f"file://{stack.settings.stack_dir / 'corpus-index'}",
        corpus_refresh_s=0.1,
    )
    transport, store = VertexTransport(settings), Memorystore(settings)
    embedder = Embedder(settings, transport, Resilience(settings), store)
    view = CorpusView(firestore_db, settings)
    yield {
        "settings": settings,
        "store": store,
        "embedder": embedder,
        "view": view,
        "retriever": Retriever(settings, embedder, VectorSearch(firestore_db), view),
        "cached": Retriever(settings, embedder, VectorSearch(firestore_db), view, store),
        "corpus": CorpusStore(firestore_db, embedder),
    }
    await transport.close()
    await store.close()


def test_corpus_eval_hybrid_recall_at_5_beats_each_alone_and_reaches_0_8(
    stack: LocalStack, tmp_path: Path
) -> None:
    report = ingest(stack, DATA / "corpus")
    assert report["index"]["chunks"] >= report["chunks"] > 0  # published with the ingestion
    out = tmp_path / "eval.json"
    done = stack.agentctl("corpus", "eval", str(DATA / "questions.jsonl"), "--out", str(out))
    assert done.returncode == 0, done.stderr
    print(done.stdout)  # the table, for the record
    modes = json.loads(out.read_text())["modes"]
    assert set(modes) == {"vector", "bm25", "hybrid"}
    recall = {mode: scores["recall"]["5"] for mode, scores in modes.items()}
    assert recall["hybrid"] >= recall["vector"] and recall["hybrid"] >= recall["bm25"], recall
    assert recall["hybrid"] >= 0.8, recall
    for scores in modes.values():
        assert 0 <= scores["mrr"] <= 1 and 0 <= scores["ndcg"] <= 1


def test_eval_refuses_a_bad_question_file(stack: LocalStack, tmp_path: Path) -> None:
    bad = tmp_path / "q.jsonl"
    for text, why in [
        ('{"question": "x"}\n', "relevant"),
        ("not json\n", "not JSON"),
        ('{"question": "", "relevant": ["u"]}\n', "question"),
        ("", "no questions"),
    ]:
        bad.write_text(text)
        done = stack.agentctl("corpus", "eval", str(bad))
        assert done.returncode == 2 and why in done.stderr, (text, done.stderr)


async def test_the_lexical_index_is_loaded_once_not_per_request(
    stack: LocalStack, parts: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest(stack, DATA / "corpus")
    loads = []
    real = lexical.LexicalIndex.load

    def counted(data: bytes) -> lexical.LexicalIndex:
        loads.append(len(data))
        return real(data)

    monkeypatch.setattr(lexical.LexicalIndex, "load", staticmethod(counted))
    retriever: Retriever = parts["retriever"]
    for question in ["Error E-413 when uploading", "reset my password", "Okta SSO"] * 5:
        await retriever.retrieve(question, "user:alice", mode="hybrid")
    assert len(loads) == 1
    hits = await retriever.retrieve("Error E-413 when uploading", "user:alice", mode="lexical")
    assert hits[0].uri == PREFIX + "attachments.md"


async def test_expired_chunks_are_never_retrieved(
    stack: LocalStack, parts: dict[str, Any], firestore_db: Any
) -> None:
    past = datetime.now(UTC) - timedelta(days=1)
    corpus: CorpusStore = parts["corpus"]
    report = IngestReport()
    text = b"# Winter sale\n\nThe winter sale gives forty percent off the Pro plan until March."
    await corpus.ingest(document(PREFIX + "sale.md", text, expires_at=past), report)
    await corpus.ingest(
        document(PREFIX + "sale-live.md", text.replace(b"Winter", b"Spring")), report
    )
    await publish(firestore_db, open_sink(parts["settings"].corpus_index_sink))
    retriever: Retriever = parts["retriever"]
    for mode in ("vector", "lexical", "hybrid"):
        hits = await retriever.retrieve("winter sale forty percent off", None, mode=mode)
        assert [h.uri for h in hits] == [PREFIX + "sale-live.md"], mode


async def test_results_are_cached_by_corpus_version(
    stack: LocalStack, parts: dict[str, Any], tmp_path: Path
) -> None:
    import redis.asyncio

    ingest(stack, DATA / "corpus")
    cached: Retriever = parts["cached"]
    first = await cached.retrieve("How do I merge two tags?", "user:alice")
    probe = redis.asyncio.Redis.from_url(stack.redis_url)
    keys = [k async for k in probe.scan_iter(match="ngx:retr:*")]
    assert len(keys) == 1
    version = keys[0].decode().split(":")[2]
    assert await cached.retrieve("How do I merge two tags?", "user:alice") == first
    assert [k async for k in probe.scan_iter(match="ngx:retr:*")] == keys  # served from it
    extra = tmp_path / "more"
    extra.mkdir()
    (extra / "tag-colours.md").write_text("# Tag colours\n\nGive a tag a colour to merge views.")
    ingest(stack, extra)
    await parts["view"].state()  # past its refresh: the new version is read
    await cached.retrieve("How do I merge two tags?", "user:alice")
    versions = {k.decode().split(":")[2] async for k in probe.scan_iter(match="ngx:retr:*")}
    await probe.aclose()
    assert len(versions) == 2 and version in versions  # a new version is a new key


async def test_another_users_private_chunks_are_never_retrieved(
    stack: LocalStack, parts: dict[str, Any], tmp_path: Path
) -> None:
    ingest(stack, DATA / "corpus")
    private = tmp_path / "alice"
    private.mkdir()
    secrets = {
        "recovery.md": "# Where my recovery codes are\n\nMy recovery codes are in the blue drawer.",
        "billing-card.md": "# My card\n\nThe Pro plan invoices go to my card ending 4242.",
        "passwords.md": "# Password hint\n\nMy password reset email goes to my old address.",
    }
    for name, text in secrets.items():
        (private / name).write_text(text)
    done = stack.agentctl(
        "corpus", "ingest", str(private), "--visibility", "user:alice", "--uri-prefix", "priv://"
    )
    assert done.returncode == 0, done.stderr
    questions = [json.loads(line)["question"] for line in (DATA / "questions.jsonl").open()]
    questions += [text for text in secrets.values()]  # the private texts themselves
    retriever: Retriever = parts["retriever"]
    seen_by_alice = 0
    for question in questions:
        for mode in ("vector", "lexical", "hybrid"):
            for subject in ("user:bob", "key:mallory", None):
                hits = await retriever.retrieve(question, subject, mode=mode)
                assert not [h for h in hits if h.uri.startswith("priv://")], (question, subject)
            mine = await retriever.retrieve(question, "user:alice", mode=mode)
            seen_by_alice += any(h.uri.startswith("priv://") for h in mine)
    assert seen_by_alice >= 9  # the texts themselves find them, in every mode


async def test_text_removed_since_the_index_was_built_is_never_served(
    stack: LocalStack, parts: dict[str, Any], firestore_db: Any
) -> None:
    """A lexical hit whose chunk left Firestore (a document removed, an erasure) after the
    index was built is dropped, so an older index never serves removed text."""
    ingest(stack, DATA / "corpus")
    retriever: Retriever = parts["retriever"]
    before = await retriever.retrieve("Error E-413 when uploading", None, mode="lexical")
    assert before[0].uri == PREFIX + "attachments.md"
    async for chunk in firestore_db.collection("corpus_chunks").stream():
        if (chunk.to_dict() or {}).get("uri") == PREFIX + "attachments.md":
            await chunk.reference.delete()  # gone from Firestore; the index still holds it
    after = await retriever.retrieve("Error E-413 when uploading", None, mode="lexical")
    assert all(h.uri != PREFIX + "attachments.md" for h in after)


def test_an_index_that_lags_the_corpus_is_published_by_the_next_ingestion(
    stack: LocalStack,
) -> None:
    """A publish that failed after its change committed is made up next time, even when the
    next ingestion changes nothing."""
    from google.cloud import firestore

    first = ingest(stack, DATA / "corpus")
    ref = (
        firestore.Client(project=stack.settings.project_id).collection("config").document("corpus")
    )
    ref.update({"version": first["index"]["version"] + 1})  # as if its publish had failed
    again = ingest(stack, DATA / "corpus")
    assert again["unchanged"] > 0 and again["chunks"] == 0
    assert again["index"]["version"] == first["index"]["version"] + 1
    assert ingest(stack, DATA / "corpus")["index"] is None  # caught up: nothing to do


async def test_tags_narrow_retrieval_in_every_mode_and_on_the_chat(
    stack: LocalStack, parts: dict[str, Any], tmp_path: Path
) -> None:
    ingest(stack, DATA / "corpus")
    tagged = tmp_path / "tagged"
    tagged.mkdir()
    for name in ("mobile-apps.html", "offline-mode.md"):
        (tagged / name).write_bytes((DATA / "corpus" / name).read_bytes())
    report = ingest(stack, tagged, "--tag", "mobile", "--tag", "apps")
    assert report["replaced"] == 2  # the same documents, now tagged
    retriever: Retriever = parts["retriever"]
    question = "How do I reset my password on my phone?"
    wanted = {PREFIX + "mobile-apps.html", PREFIX + "offline-mode.md"}
    for mode in ("vector", "lexical", "hybrid"):
        everything = await retriever.retrieve(question, None, mode=mode)
        narrowed = await retriever.retrieve(question, None, mode=mode, tags=["mobile"])
        assert any(h.uri not in wanted for h in everything), mode
        assert narrowed and {h.uri for h in narrowed} <= wanted, mode
        assert await retriever.retrieve(question, None, mode=mode, tags=["nothing"]) == []

    async with httpx.AsyncClient(timeout=30) as client:
        url = f"{stack.url('chat')}/v1/chat"
        body = {"message": question, "retrieval": "auto", "retrieval_tags": ["apps"]}
        answer = await client.post(url, json=body, headers=stack.auth())
        bad = await client.post(
            url, json={**body, "retrieval_tags": ["Not A Tag!"]}, headers=stack.auth()
        )
        many = await client.post(
            url, json={**body, "retrieval_tags": [f"t{n}" for n in range(11)]}, headers=stack.auth()
        )
    assert answer.status_code == 200, answer.text
    assert answer.json()["sources"] and {s["uri"] for s in answer.json()["sources"]} <= wanted
    assert bad.status_code == 422 and "retrieval_tags" in bad.text
    assert many.status_code == 422 and "retrieval_tags" in many.text


async def test_the_index_config_names_is_served_even_when_its_version_is_lower(
    stack: LocalStack, parts: dict[str, Any], firestore_db: Any
) -> None:
    """Whatever config/corpus names replaces what an instance serves — after a restore or a
    reset the corpus version can start again from a lower number."""
    import asyncio

    ingest(stack, DATA / "corpus")
    view: CorpusView = parts["view"]
    _, first = await view.state()
    assert first is not None and first.version > 1
    await firestore_db.collection("config").document("corpus").delete()
    published = await publish(firestore_db, open_sink(parts["settings"].corpus_index_sink))
    assert published.version == 0
    await asyncio.sleep(0.2)  # past the view's refresh
    await view.state()
    for _ in range(50):  # the newer one loads beside the old
        _, index = await view.state()
        if index is not None and index.version == 0:
            break
        await asyncio.sleep(0.05)
    assert index is not None and index.version == 0
