"""Source files into documents to ingest: Markdown, plain text and HTML, chunked.

The title is the page's ``<title>``, else the first heading, else the file name. Files are read as
UTF-8 (invalid bytes replaced) up to a size limit; anything else is refused with a reason, so one
bad file is reported and skipped while the rest is ingested.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import PurePosixPath

from shared.retrieval.chunking import Block, chunk, html_blocks, markdown_blocks
from shared.retrieval.corpus import DocumentRefused, SourceDocument, content_hash

KINDS = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".html": "html",
    ".htm": "html",
}
MAX_BYTES = 5 * 1024 * 1024


def kind_of(name: str) -> str:
    """The kind of a file by its extension; refused when it is not one we read."""
    kind = KINDS.get(PurePosixPath(name).suffix.lower())
    if kind is None:
        raise DocumentRefused(
            f"{PurePosixPath(name).suffix or 'no extension'} is not a kind ingested "
            f"({', '.join(sorted(KINDS))})"
        )
    return kind


def document(
    uri: str,
    data: bytes,
    visibility: str = "public",
    tags: tuple[str, ...] = (),
    expires_at: datetime | None = None,
) -> SourceDocument:
    """A chunked document from a file's bytes; `DocumentRefused` says why one cannot be."""
    kind = kind_of(uri)
    if len(data) > MAX_BYTES:
        raise DocumentRefused(f"{len(data):,} bytes; the limit is {MAX_BYTES:,}")
    if b"\x00" in data[:4096]:
        raise DocumentRefused("binary content in a text file")
    text = data.decode("utf-8", errors="replace")
    title = ""
    blocks: list[Block]
    if kind == "html":
        title, blocks = html_blocks(text)
    else:
        blocks = markdown_blocks(text)
    if not title:
        title = next((b.text for b in blocks if b.level), PurePosixPath(uri).stem)
    chunks = chunk(blocks)
    if not chunks:
        raise DocumentRefused("no text to ingest")
    return SourceDocument(
        uri=uri,
        title=title[:300],
        chunks=chunks,
        content_hash=content_hash(
            title, text, visibility=visibility, tags=list(tags), expires_at=expires_at
        ),
        visibility=visibility,
        tags=tags,
        expires_at=expires_at,
    )
