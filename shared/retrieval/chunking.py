"""Documents into chunks of 200–400 tokens that overlap, cut along headings and paragraphs.

A document is first read as blocks: headings (Markdown ``#`` lines, HTML ``<h1>``–``<h6>``) and
paragraphs (blank-line separated; HTML block elements). Chunks are filled paragraph by paragraph up
to ``max_tokens``; a heading starts a new chunk once the current one has ``min_tokens``; a paragraph
longer than a chunk is cut at sentence ends (then at words). Each chunk after the first of a section
repeats the end of the previous one (``overlap_tokens``), so a fact on a boundary is in both. Every
chunk remembers its section (the nearest heading path). Tokens are estimated (four characters).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

from shared.llm.accounting import estimate_tokens

HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
BLOCK_TAGS = frozenset({"p", "div", "li", "tr", "br", "section", "article", "pre", "blockquote"})
HEADING_TAGS = {f"h{n}": n for n in range(1, 7)}
SKIPPED_TAGS = frozenset({"script", "style", "head", "nav", "footer", "noscript", "template"})


@dataclass(frozen=True)
class Block:
    """A heading (``level`` > 0) or a paragraph (``level`` 0)."""

    text: str
    level: int = 0


@dataclass(frozen=True)
class Chunk:
    """A piece of a document: its text, section (heading path) and position."""

    text: str
    section: str
    index: int


def markdown_blocks(text: str) -> list[Block]:
    """Headings and paragraphs of Markdown or plain text."""
    blocks: list[Block] = []
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            joined = " ".join(line.strip() for line in paragraph).strip()
            if joined:
                blocks.append(Block(joined))
            paragraph.clear()

    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        heading = HEADING.match(line)
        if heading:
            flush()
            blocks.append(Block(heading.group(2).strip(), len(heading.group(1))))
        elif not line.strip():
            flush()
        else:
            paragraph.append(line)
    flush()
    return blocks


class _HtmlBlocks(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self._text: list[str] = []
        self._heading = 0
        self._skipping = 0
        self.title = ""
        self._in_title = False

    def _flush(self) -> None:
        text = re.sub(r"\s+", " ", "".join(self._text)).strip()
        if text:
            self.blocks.append(Block(text, self._heading))
        self._text = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        if tag in SKIPPED_TAGS:
            self._skipping += 1
        elif tag in HEADING_TAGS or tag in BLOCK_TAGS:
            self._flush()
            self._heading = HEADING_TAGS.get(tag, 0)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in SKIPPED_TAGS:
            self._skipping = max(0, self._skipping - 1)
        elif tag in HEADING_TAGS or tag in BLOCK_TAGS:
            self._flush()
            self._heading = 0

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._skipping:
            self._text.append(data)


def html_blocks(html: str) -> tuple[str, list[Block]]:
    """The ``<title>`` and the headings and paragraphs of an HTML page."""
    parser = _HtmlBlocks()
    parser.feed(html)
    parser.close()
    parser._flush()
    return parser.title.strip(), parser.blocks


def _pieces(text: str, max_tokens: int) -> list[str]:
    """A paragraph cut at sentence ends (then words) into pieces of at most ``max_tokens``."""
    if estimate_tokens(text) <= max_tokens:
        return [text]
    pieces: list[str] = []
    current = ""
    for sentence in SENTENCE_END.split(text):
        for part in _words(sentence, max_tokens):
            candidate = f"{current} {part}".strip()
            if current and estimate_tokens(candidate) > max_tokens:
                pieces.append(current)
                current = part
            else:
                current = candidate
    if current:
        pieces.append(current)
    return pieces


def _words(sentence: str, max_tokens: int) -> list[str]:
    if estimate_tokens(sentence) <= max_tokens:
        return [sentence]
    parts, current = [], ""
    for word in sentence.split():
        candidate = f"{current} {word}".strip()
        if current and estimate_tokens(candidate) > max_tokens:
            parts.append(current)
            current = word[: max_tokens * 4]
        else:
            current = candidate[: max_tokens * 4]
    if current:
        parts.append(current)
    return parts


def _tail(text: str, tokens: int) -> str:
    """About the last ``tokens`` of a text, starting on a word."""
    if tokens <= 0:
        return ""
    cut = text[-tokens * 4 :]
    space = cut.find(" ")
    return cut[space + 1 :] if 0 <= space < len(cut) - 1 and len(cut) < len(text) else cut


def chunk(
    blocks: list[Block], min_tokens: int = 200, max_tokens: int = 400, overlap_tokens: int = 50
) -> list[Chunk]:
    """Chunks of ``blocks`` (see the module's docstring)."""
    chunks: list[Chunk] = []
    path: list[tuple[int, str]] = []
    current: list[str] = []
    section = ""
    carry = ""

    def emit() -> None:
        nonlocal carry
        body = " ".join(current).strip()
        if body:
            text = f"{carry} {body}".strip() if carry else body
            chunks.append(Chunk(text=text, section=section, index=len(chunks)))
            carry = _tail(body, overlap_tokens)
        current.clear()

    for block in blocks:
        if block.level:
            if estimate_tokens(" ".join(current)) >= min_tokens or not current:
                emit()
                carry = ""
            path = [(level, title) for level, title in path if level < block.level]
            path.append((block.level, block.text))
            if not current:
                section = " > ".join(title for _, title in path)
            continue
        for piece in _pieces(block.text, max_tokens - overlap_tokens):
            size = estimate_tokens(" ".join([*current, piece]))
            if current and size > max_tokens - overlap_tokens:
                emit()
                section = " > ".join(title for _, title in path)
            if not current:
                section = " > ".join(title for _, title in path)
            current.append(piece)
    emit()
    return chunks
