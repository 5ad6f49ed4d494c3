"""`agentctl corpus ingest` on the committed corpus: chunks with embeddings in Firestore; an
unchanged corpus costs no embedding call; an edited file re-embeds only its own chunks; a removed
document takes its chunks with it; a bad file is reported and skipped while the rest goes on."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from shared.retrieval.corpus import CHUNKS, DOCUMENTS, CorpusStore, IngestReport, document_id
from tests.conftest import LocalStack

CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus"
PREFIX = "https://help.lumen-notes.example/"


def ingest(stack: LocalStack, path: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    done = stack.agentctl("corpus", "ingest", str(path), "--uri-prefix", PREFIX, "--json", *extra)
    report: dict[str, Any] = json.loads(done.stdout) if done.stdout else {}
    assert done.stdout, done.stderr
    return done.returncode, report


def embedded(stack: LocalStack) -> int:
    count: int = httpx.get(f"{stack.vertex_admin}/calls", timeout=5).json()["embedded_texts"]
    return count


def test_ingest_stores_chunks_and_skips_what_did_not_change(
    stack: LocalStack, tmp_path: Path
) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    files = sorted(p.name for p in corpus.iterdir())
    code, report = ingest(stack, corpus)
    assert code == 0, report
    assert report["added"] == len(files) and report["failed"] == []
    first = embedded(stack)
    assert first == report["chunks"] > 0

    db = firestore.Client(project=stack.settings.project_id)
    billing = FieldFilter("uri", "==", PREFIX + "billing.md")
    chunk = next(iter(db.collection(CHUNKS).where(filter=billing).stream()))
    data = chunk.to_dict() or {}
    assert data["title"] == "Plans and billing" and data["visibility"] == "public"
    assert len(list(data["embedding"])) == 256
    html = db.collection(DOCUMENTS).document(document_id(PREFIX + "mobile-apps.html")).get()
    assert (html.to_dict() or {})["title"] == "Mobile apps"

    code, again = ingest(stack, corpus)
    assert code == 0 and again["unchanged"] == len(files) and again["chunks"] == 0
    assert embedded(stack) == first  # no embedding call at all

    (corpus / "billing.md").write_text(
        (corpus / "billing.md").read_text().replace("4 euros", "5 euros")
    )
    code, edited = ingest(stack, corpus)
    assert edited["replaced"] == 1 and edited["unchanged"] == len(files) - 1
    assert embedded(stack) == first + edited["chunks"]  # only the edited file's chunks


def test_a_bad_file_is_reported_and_the_rest_ingested(stack: LocalStack, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "good.md").write_text("# Good\n\nA perfectly good article about notes.")
    (corpus / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (corpus / "empty.md").write_text("\n\n")
    (corpus / "binary.txt").write_bytes(b"abc\x00def")
    code, report = ingest(stack, corpus)
    assert code == 1
    assert report["added"] == 1
    reasons = {uri.removeprefix(PREFIX): why for uri, why in report["failed"]}
    assert set(reasons) == {"image.png", "empty.md", "binary.txt"}
    assert "not a kind" in reasons["image.png"] and "no text" in reasons["empty.md"]


def test_bad_metadata_is_refused_before_anything_is_written(
    stack: LocalStack, tmp_path: Path
) -> None:
    code, report = ingest(stack, CORPUS / "billing.md", "--visibility", "everyone")
    assert code == 1 and "visibility" in report["failed"][0][1]
    code, report = ingest(stack, CORPUS / "billing.md", "--tag", "../up")
    assert code == 1 and "tag" in report["failed"][0][1]
    assert embedded(stack) == 0


def test_removing_a_document_removes_its_chunks(stack: LocalStack) -> None:
    code, _ = ingest(stack, CORPUS / "billing.md")
    assert code == 0
    db = firestore.Client(project=stack.settings.project_id)
    assert list(db.collection(CHUNKS).stream())

    async def remove() -> IngestReport:
        from google.cloud.firestore_v1.async_client import AsyncClient

        report = IngestReport()
        client = AsyncClient(project=stack.settings.project_id)
        await CorpusStore(client, None).remove(PREFIX + "billing.md", report)  # type: ignore[arg-type]
        client.close()  # type: ignore[no-untyped-call]
        return report

    assert asyncio.run(remove()).removed == 1
    assert list(db.collection(CHUNKS).stream()) == []
    assert list(db.collection(DOCUMENTS).stream()) == []
    version = db.collection("config").document("corpus").get().to_dict() or {}
    assert version["version"] == 2  # one ingest, one removal


def test_vector_search_finds_the_right_article_and_never_someone_elses(
    stack: LocalStack, tmp_path: Path
) -> None:
    code, _ = ingest(stack, CORPUS)
    assert code == 0
    private = tmp_path / "alice-notes.md"
    private.write_text(
        "# My recovery codes\n\nMy two-factor recovery codes are in the blue drawer."
    )
    code, _ = ingest(stack, private, "--visibility", "user:alice")
    assert code == 0

    async def search(question: str, who: str) -> list[Any]:
        from google.cloud.firestore_v1.async_client import AsyncClient

        from shared.llm.resilience import Resilience
        from shared.llm.transport import VertexTransport
        from shared.retrieval.embeddings import Embedder
        from shared.retrieval.vector import VectorSearch, visible_to

        settings = stack.client_settings()
        transport = VertexTransport(settings)
        embedder = Embedder(settings, transport, Resilience(settings), None)
        [vector] = await embedder.embed([question], "RETRIEVAL_QUERY")
        client = AsyncClient(project=stack.settings.project_id)
        try:
            return await VectorSearch(client).nearest(vector, visible_to(who), limit=3)
        finally:
            client.close()  # type: ignore[no-untyped-call]
            await transport.close()

    expected = {
        "How do I reset my password?": "reset-password.md",
        "Can I get a refund on my annual plan?": "billing.md",
        "My notes do not sync, the cloud icon is red": "sync-troubleshooting.md",
        "Does the app run on Android tablets?": "mobile-apps.html",
        "What happens to conflicting edits made offline?": "offline-mode.md",
    }
    for question, article in expected.items():
        hits = asyncio.run(search(question, "user:bob"))
        assert hits[0].uri == PREFIX + article, (question, [h.uri for h in hits])
        assert 0 < hits[0].similarity <= 1
    where = "Where are my two-factor recovery codes?"
    assert asyncio.run(search(where, "user:alice"))[0].uri == PREFIX + "alice-notes.md"
    for who in ("user:bob", "user:mallory", None):
        hits = asyncio.run(search(where, who))  # type: ignore[arg-type]
        assert all(h.uri != PREFIX + "alice-notes.md" for h in hits), who


async def test_ingest_many_reports_a_failure_after_the_others_finish(stack: LocalStack) -> None:
    """A document whose embedding fails does not vanish silently: the run raises it, and the
    documents beside it are still ingested (each on its own)."""
    from google.cloud.firestore_v1.async_client import AsyncClient

    from shared.llm.resilience import Resilience
    from shared.llm.transport import VertexTransport
    from shared.retrieval.embeddings import Embedder
    from shared.retrieval.sources import document

    settings = stack.client_settings()
    transport = VertexTransport(settings)
    embedder = Embedder(settings, transport, Resilience(settings), None)
    real = embedder.embed

    async def embed(texts: Any, task: Any) -> Any:
        if any("poison" in t for t in texts):
            raise RuntimeError("the model refused")
        return await real(texts, task)

    embedder.embed = embed  # type: ignore[method-assign]
    db = AsyncClient(project=stack.settings.project_id)
    corpus = CorpusStore(db, embedder)

    async def documents() -> Any:
        for name in ("a", "poison", "b", "c"):
            yield document(f"{PREFIX}{name}.md", f"# {name}\n\nText about {name}.".encode()), None

    report = IngestReport()
    try:
        with pytest.raises(RuntimeError, match="refused"):
            await corpus.ingest_many(documents(), report, concurrency=2)
    finally:
        db.close()  # type: ignore[no-untyped-call]
        await transport.close()
    assert report.added == 3
