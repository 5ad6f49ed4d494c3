"""A minimal PDF writer for tests: pages of text lines in Helvetica, and a Title."""

from __future__ import annotations


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def make_pdf(title: str, pages: list[list[str]]) -> bytes:
    """A valid PDF whose pages show ``pages``' lines, one under another."""
    objects: list[bytes] = []
    kids = []
    for n, lines in enumerate(pages):
        page_number, content_number = 5 + 2 * n, 6 + 2 * n
        kids.append(f"{page_number} 0 R")
        body = "BT /F1 11 Tf 72 760 Td 14 TL " + " ".join(f"({_escape(x)}) '" for x in lines)
        stream = (body + " ET").encode("latin-1")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content_number} "
            "0 R /Resources << /Font << /F1 3 0 R >> >> >>".encode()
        )
        objects.append(
            b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream"
        )
    head = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(pages)} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        f"<< /Title ({_escape(title)}) >>".encode("latin-1"),
    ]
    everything = head + objects
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, item in enumerate(everything, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + item + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(everything) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(everything) + 1} /Root 1 0 R /Info 4 0 R >>\n"
        f"startxref\n{xref}\n%%EOF\n"
    ).encode()
    return bytes(out)
