"""PDF sources: text and title read with pypdf, pages as sections; unreadable, encrypted and
oversized PDFs refused with a reason; pypdf imported only when a PDF is read."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from shared.retrieval.corpus import DocumentRefused
from shared.retrieval.sources import MAX_PDF_BYTES, document
from tests.pdf import make_pdf

LONG = "The sensor measures humidity every minute and stores a week of readings. " * 40


def test_a_pdf_gives_its_title_and_text_with_pages_as_sections() -> None:
    data = make_pdf("Field manual", [[LONG[:900]], ["Battery replacement: open the back cover."]])
    doc = document("https://docs.example/manual.pdf", data)
    assert doc.title == "Field manual"
    assert doc.chunks[0].section == "Page 1"
    text = " ".join(c.text for c in doc.chunks)
    assert "Battery replacement: open the back cover." in text
    assert "humidity every minute" in text


def test_a_pdf_without_a_title_is_named_after_its_file() -> None:
    data = make_pdf("", [["Calibration takes five minutes."]])
    assert document("https://docs.example/calibration.pdf", data).title == "calibration"


@pytest.mark.parametrize(
    "data",
    [b"%PDF-1.4 not really", b"", b"\x00" * 100, make_pdf("Cut", [["half of it"]])[:200]],
    ids=["garbage", "empty", "zeros", "truncated"],
)
def test_an_unreadable_pdf_is_refused_with_a_reason(data: bytes) -> None:
    with pytest.raises(DocumentRefused, match=r"PDF|no text"):
        document("https://docs.example/broken.pdf", data)


def test_an_encrypted_pdf_is_refused() -> None:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(make_pdf("Secret", [["classified"]]))))
    writer.encrypt("password")
    out = io.BytesIO()
    writer.write(out)
    with pytest.raises(DocumentRefused, match="encrypted"):
        document("https://docs.example/secret.pdf", out.getvalue())


def test_an_oversized_pdf_is_refused_before_it_is_parsed() -> None:
    with pytest.raises(DocumentRefused, match="limit"):
        document("https://docs.example/huge.pdf", b"%PDF" + b" " * MAX_PDF_BYTES)


def test_reading_sources_does_not_import_the_pdf_library() -> None:
    code = (
        "import sys; from shared.retrieval import sources; "
        "sources.document('u.md', b'# Hello\\n\\nworld text'); "
        "print('pypdf' in sys.modules, 'numpy' in sys.modules, 'bm25s' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False False False"
