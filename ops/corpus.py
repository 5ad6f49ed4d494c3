"""``agentctl corpus ingest PATH``: put documents into the retrieval corpus.

Every Markdown, text, HTML and PDF file under PATH (or PATH itself), or every object under
``gs://BUCKET/PREFIX`` (with its own metadata: ``visibility``, ``tags``, ``expires_at``), is
chunked, embedded and stored;
an unchanged file costs nothing (its content hash is kept), a changed one replaces its chunks in
one batch. A file that cannot be read is reported and skipped; the others go on. Progress is shown
on a terminal; the report (``--json`` for a machine) says what was added, replaced, unchanged and
skipped, and the exit status is 1 when any file was skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ops import retrieval_eval
from ops.settings import get_ops_settings
from ops.ui import ProgressLine


def add_commands(commands: Any) -> None:
    corpus = commands.add_parser(
        "corpus", help="the retrieval corpus: ingest documents, evaluate retrieval"
    )
    actions = corpus.add_subparsers(dest="action", required=True)
    ingest = actions.add_parser(
        "ingest", help="ingest the files under PATH, or the objects under gs://BUCKET/PREFIX"
    )
    ingest.add_argument("path", help="a file, a folder, or gs://BUCKET/PREFIX")
    ingest.add_argument(
        "--visibility",
        default="public",
        help="public (default), tenant:NAME, or an owner's subject (user:… or key:…)",
    )
    ingest.add_argument("--tag", action="append", default=[], help="repeatable")
    ingest.add_argument(
        "--uri-prefix",
        help="name documents PREFIX + their path under PATH (default: their file:// URI)",
    )
    ingest.add_argument("--json", action="store_true", help="the report as JSON")
    ingest.add_argument(
        "--concurrency", type=int, default=16, help="documents in flight at once (default 16)"
    )
    ingest.set_defaults(run=main)
    retrieval_eval.add_command(actions)


def files(root: Path) -> list[Path]:
    """The files to ingest under ``root`` (or ``root`` itself), in a stable order."""
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


def uri_of(path: Path, root: Path, prefix: str | None) -> str:
    if prefix is None:
        return path.resolve().as_uri()
    relative = path.relative_to(root) if root.is_dir() else Path(path.name)
    return prefix + relative.as_posix()


Source = tuple[str, Callable[[], Awaitable[bytes]], int | None, dict[str, str] | None]


def local_sources(root: Path, prefix: str | None) -> Iterator[Source]:
    """The files under ``root``: URI, reader, no generation, no metadata (the flags apply)."""
    for path in files(root):

        async def read(path: Path = path) -> bytes:
            return await asyncio.to_thread(path.read_bytes)

        yield uri_of(path, root, prefix), read, None, None


def bucket_sources(url: str) -> Iterator[Source]:
    """The objects under ``gs://BUCKET/PREFIX``, each read at its listed generation and
    ingested with its own custom metadata, as the ingest function would."""
    from shared.retrieval.storage_events import CloudStorageReader

    bucket, _, prefix = url[len("gs://") :].partition("/")
    reader = CloudStorageReader()
    for blob in reader.list(bucket, prefix):

        async def read(name: str = blob.name, generation: int = int(blob.generation)) -> bytes:
            data = await reader(bucket, name, generation)
            if data is None:
                raise OSError("the object changed while it was read; ingest again")
            return data

        yield f"gs://{bucket}/{blob.name}", read, int(blob.generation), dict(blob.metadata or {})


async def _ingest(args: argparse.Namespace) -> Any:
    from shared.llm.resilience import Resilience
    from shared.llm.transport import VertexTransport
    from shared.memorystore import Memorystore
    from shared.retrieval import sources
    from shared.retrieval.corpus import CorpusStore, DocumentRefused, IngestReport
    from shared.retrieval.embeddings import Embedder
    from shared.retrieval.storage_events import object_metadata
    from shared.stores.firestore import make_client

    settings = get_ops_settings()
    transport, store = VertexTransport(settings), Memorystore(settings)
    embedder = Embedder(settings, transport, Resilience(settings), store)
    db = make_client(settings)
    index = None
    if settings.vector_backend == "vertex":
        from shared.retrieval.vertex_vector import VertexVectorSearch

        index = VertexVectorSearch(db, settings)
    corpus = CorpusStore(db, embedder, index)
    report = IngestReport()
    progress = ProgressLine()
    found = (
        bucket_sources(args.path)
        if args.path.startswith("gs://")
        else local_sources(Path(args.path), args.uri_prefix)
    )

    def failed(uri: str, exc: Exception) -> None:
        if not isinstance(exc, (DocumentRefused, OSError)):
            raise exc
        report.failed.append((uri, str(exc)))

    async def documents() -> AsyncIterator[tuple[Any, int | None]]:
        """The readable documents, in order; a bad file is reported and skipped."""
        for number, (uri, read, generation, metadata) in enumerate(found, start=1):
            progress("ingesting", number, "files")
            try:
                visibility, tags, expires_at = (
                    object_metadata(metadata)
                    if metadata is not None
                    else (args.visibility, tuple(args.tag), None)
                )
                data = await read()
                document = sources.document(uri, data, visibility, tags, expires_at)
            except (DocumentRefused, OSError) as exc:
                report.failed.append((uri, str(exc)))
                continue
            yield document, generation

    try:
        await corpus.ingest_many(documents(), report, args.concurrency, failed)
        report.failed.sort()
        progress.close()
        report.index = await _publish(db, settings, report)
    finally:
        progress.close()
        await transport.close()
        await store.close()
        if index is not None:
            await index.close()
        db.close()
    return report


async def _publish(db: Any, settings: Any, report: Any) -> dict[str, Any] | None:
    """Rebuild the lexical index when the corpus changed, or when the published one lags it."""
    from shared.backup.sinks import open_sink
    from shared.retrieval.published import publish_if_behind

    if not settings.corpus_index_sink:
        return None
    changed = bool(report.added or report.replaced or report.removed)
    done = await publish_if_behind(db, open_sink(settings.corpus_index_sink), changed)
    if done is None:
        return None
    return {"version": done.version, "name": done.name, "chunks": done.chunks}


def main(args: argparse.Namespace) -> int:
    if not 1 <= args.concurrency <= 64:
        print("agentctl corpus ingest: --concurrency takes 1 to 64", file=sys.stderr)
        return 2
    if args.path.startswith("gs://"):
        if not re.match(r"^gs://[a-z0-9][a-z0-9._-]{1,61}[a-z0-9](/|\Z)", args.path):
            print(f"agentctl corpus ingest: {args.path!r} names no bucket", file=sys.stderr)
            return 2
    elif not Path(args.path).exists():
        print(f"agentctl corpus ingest: {args.path} does not exist", file=sys.stderr)
        return 2
    report = asyncio.run(_ingest(args))
    if args.json:
        print(json.dumps(asdict(report), indent=1))
    else:
        print(
            f"added {report.added}, replaced {report.replaced}, unchanged {report.unchanged}, "
            f"skipped {len(report.failed)}; {report.chunks} chunks written"
        )
        if report.index:
            print(f"lexical index of version {report.index['version']} published")
        for uri, why in report.failed:
            print(f"skipped {uri}: {why}", file=sys.stderr)
    return 1 if report.failed else 0
