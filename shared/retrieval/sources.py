"""Source files into documents to ingest: Markdown, plain text, HTML and PDF, chunked.

The title is the page's ``<title>`` (a PDF's Title), else the first heading, else the file name;
a PDF's pages become sections ``Page N`` (``pypdf``, imported only when a PDF is read). Text
files are read as UTF-8 (invalid bytes replaced); every file up to a size limit. Anything else
is refused with a reason, so one bad file is reported and skipped while the rest is ingested.
"""

from __future__ import annotations

import io
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
    ".pdf": "pdf",
}
MAX_BYTES = 5 * 1024 * 1024
MAX_PDF_BYTES = 20 * 1024 * 1024
MAX_PDF_PAGES = 500


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
    limit = MAX_PDF_BYTES if kind == "pdf" else MAX_BYTES
    if len(data) > limit:
        raise DocumentRefused(f"{len(data):,} bytes; the limit is {limit:,}")
    title = ""
    blocks: list[Block]
    if kind == "pdf":
        title, blocks = pdf_blocks(data)
        text = "\n".join(b.text for b in blocks)
    else:
        if b"\x00" in data[:4096]:
            raise DocumentRefused("binary content in a text file")
        text = data.decode("utf-8", errors="replace")
        if kind == "html":
            title, blocks = html_blocks(text)
        else:
            blocks = markdown_blocks(text)
    if not title and kind != "pdf":  # a PDF's headings are its page numbers
        title = next((b.text for b in blocks if b.level), "")
    title = title or PurePosixPath(uri).stem
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


def pdf_blocks(data: bytes) -> tuple[str, list[Block]]:
    """A PDF's title and its pages' paragraphs, each page under a ``Page N`` heading."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise DocumentRefused("the PDF is encrypted")
        if len(reader.pages) > MAX_PDF_PAGES:
            raise DocumentRefused(f"{len(reader.pages)} pages; the limit is {MAX_PDF_PAGES}")
        metadata = reader.metadata
        title = str((metadata.get("/Title") if metadata else None) or "").strip()
        blocks: list[Block] = []
        for number, page in enumerate(reader.pages, start=1):
            paragraphs = markdown_blocks(page.extract_text() or "")
            if paragraphs:
                blocks.append(Block(f"Page {number}", level=2))
                blocks.extend(Block(p.text) for p in paragraphs)
    except DocumentRefused:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError, RecursionError) as exc:
        raise DocumentRefused(f"not a readable PDF ({type(exc).__name__})") from None
    return title, blocks
