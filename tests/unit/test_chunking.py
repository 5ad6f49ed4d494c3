"""Chunking: 200–400 estimated tokens, cut along headings and paragraphs, overlapping, with the
section each chunk belongs to; HTML read as headings and paragraphs."""

from __future__ import annotations

import itertools

from shared.llm.accounting import estimate_tokens
from shared.retrieval.chunking import chunk, html_blocks, markdown_blocks


def paragraph(topic: str, sentences: int) -> str:
    return " ".join(
        f"A fact stated plainly is number {n} of {topic} here." for n in range(sentences)
    )


def test_chunks_stay_within_the_token_bounds_and_overlap() -> None:
    text = "\n\n".join(paragraph(f"topic{n}", 12) for n in range(12))
    chunks = chunk(markdown_blocks(text))
    assert len(chunks) > 3
    for piece in chunks[:-1]:
        assert 200 <= estimate_tokens(piece.text) <= 400 + 60, estimate_tokens(piece.text)
    for before, after in itertools.pairwise(chunks):
        tail = before.text.split()[-5:]
        assert " ".join(tail) in after.text  # the end of one chunk opens the next
    assert [c.index for c in chunks] == list(range(len(chunks)))


def test_headings_start_sections_and_name_them() -> None:
    text = (
        "# Account\n\n## Passwords\n\n"
        + paragraph("password", 30)
        + "\n\n## Billing\n\n"
        + paragraph("invoice", 30)
    )
    chunks = chunk(markdown_blocks(text))
    sections = {c.section for c in chunks}
    assert sections == {"Account > Passwords", "Account > Billing"}
    assert all("invoice" not in c.text for c in chunks if c.section.endswith("Passwords"))


def test_a_short_section_is_kept_with_its_neighbour_rather_than_alone() -> None:
    text = "# A\n\nshort one.\n\n# B\n\nshort two."
    chunks = chunk(markdown_blocks(text))
    assert len(chunks) == 1 and "short one." in chunks[0].text and "short two." in chunks[0].text


def test_a_huge_paragraph_is_cut_at_sentences_then_words() -> None:
    chunks = chunk(markdown_blocks(paragraph("big", 400)))
    assert all(estimate_tokens(c.text) <= 460 for c in chunks)
    word_soup = chunk(markdown_blocks("word " * 5000 + "x" * 9000))
    assert all(estimate_tokens(c.text) <= 460 for c in word_soup)


def test_html_is_read_as_headings_and_paragraphs_without_scripts() -> None:
    title, blocks = html_blocks(
        "<html><head><title>Help &amp; support</title><script>var x = 1;</script></head>"
        "<body><nav>menu</nav><h1>Returns</h1><p>Send it back within <b>30 days</b>.</p>"
        "<ul><li>Keep the receipt.</li></ul></body></html>"
    )
    assert title == "Help & support"
    assert [(b.level, b.text) for b in blocks] == [
        (1, "Returns"),
        (0, "Send it back within 30 days."),
        (0, "Keep the receipt."),
    ]


def test_empty_and_blank_documents_have_no_chunks() -> None:
    assert chunk(markdown_blocks("")) == []
    assert chunk(markdown_blocks("\n\n  \n# Only a heading\n")) == []
