"""``agentctl corpus ingest PATH``: put documents into the retrieval corpus.

Every Markdown, text and HTML file under PATH (or PATH itself) is chunked, embedded and stored;
an unchanged file costs nothing (its content hash is kept), a changed one replaces its chunks in
one batch. A file that cannot be read is reported and skipped; the others go on. Progress is shown
on a terminal; the report (``--json`` for a machine) says what was added, replaced, unchanged and
skipped, and the exit status is 1 when any file was skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ops.settings import get_ops_settings
from ops.ui import ProgressLine


def add_commands(commands: Any) -> None:
    corpus = commands.add_parser("corpus", help="the retrieval corpus: ingest documents")
    actions = corpus.add_subparsers(dest="action", required=True)
    ingest = actions.add_parser("ingest", help="ingest the files under PATH")
    ingest.add_argument("path", type=Path)
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
    corpus.set_defaults(run=main)


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


async def _ingest(args: argparse.Namespace) -> Any:
    from shared.llm.resilience import Resilience
    from shared.llm.transport import VertexTransport
    from shared.memorystore import Memorystore
    from shared.retrieval import sources
    from shared.retrieval.corpus import CorpusStore, DocumentRefused, IngestReport
    from shared.retrieval.embeddings import Embedder
    from shared.stores.firestore import make_client

    settings = get_ops_settings()
    transport, store = VertexTransport(settings), Memorystore(settings)
    embedder = Embedder(settings, transport, Resilience(settings), store)
    db = make_client(settings)
    corpus = CorpusStore(db, embedder)
    report = IngestReport()
    progress = ProgressLine()
    root: Path = args.path
    try:
        for number, path in enumerate(files(root), start=1):
            uri = uri_of(path, root, args.uri_prefix)
            try:
                document = sources.document(
                    uri, path.read_bytes(), args.visibility, tuple(args.tag)
                )
                await corpus.ingest(document, report)
            except (DocumentRefused, OSError) as exc:
                report.failed.append((uri, str(exc)))
            progress("ingesting", number, "files")
    finally:
        progress.close()
        await transport.close()
        await store.close()
        db.close()
    return report


def main(args: argparse.Namespace) -> int:
    if not args.path.exists():
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
        for uri, why in report.failed:
            print(f"skipped {uri}: {why}", file=sys.stderr)
    return 1 if report.failed else 0
