"""The lexical index: BM25 over chunks the caller may see, never expired ones; a round trip through
its stored form; anything else refused as unreadable, whatever it holds."""

from __future__ import annotations

import io
import tarfile

import pytest
import zstandard

from shared.retrieval.lexical import (
    IndexedChunk,
    IndexUnreadable,
    LexicalIndex,
    LexicalResult,
    build,
)

TEXTS = [
    ("public", "Reset your password from the sign-in screen with Forgot password."),
    ("user:bob", "Bob's private note: the password to the garage is written in the drawer."),
    ("public", "Invoices are sent monthly and include VAT for companies."),
    ("tenant:acme", "Acme staff reset passwords through single sign-on only."),
]


def index(expired: set[int] | None = None) -> LexicalIndex:
    chunks = [
        IndexedChunk(
            f"c{n}",
            f"u{n}",
            "T",
            "",
            text,
            visibility,
            (),
            0.0,
            5.0 if n in (expired or ()) else None,
        )
        for n, (visibility, text) in enumerate(TEXTS)
    ]
    vectors = [[float(n == i) for i in range(4)] for n in range(len(chunks))]
    return LexicalIndex.load(build(chunks, vectors, version=7))


def ids(result: LexicalResult) -> list[int]:
    return [n for n, _ in result.found]


def test_bm25_finds_chunks_sharing_stemmed_terms_the_caller_may_see() -> None:
    loaded = index()
    assert loaded.version == 7 and len(loaded) == 4
    assert ids(loaded.search("how to reset passwords", ["public"], 5, 10.0)) == [0]
    both = ids(loaded.search("password reset", ["public", "user:bob", "tenant:acme"], 5, 10.0))
    assert set(both) == {0, 1, 3}
    assert 1 not in ids(loaded.search("garage drawer password", ["public", "user:alice"], 5, 10.0))


def test_expired_chunks_are_never_returned() -> None:
    loaded = index(expired={0})
    assert ids(loaded.search("reset password", ["public"], 5, now=10.0)) == []
    assert ids(loaded.search("reset password", ["public"], 5, now=1.0)) == [0]  # not yet


def test_stop_words_and_unknown_words_find_nothing() -> None:
    loaded = index()
    for query in ("the and of it", "xylophone", ""):
        result = loaded.search(query, ["public"], 5, 10.0)
        assert result.found == [] and not result.coverage.any(), query


def test_an_empty_corpus_has_an_index_that_finds_nothing() -> None:
    empty = LexicalIndex.load(build([], [], version=1))
    assert len(empty) == 0 and empty.search("password", ["public"], 5, 0.0).found == []


def test_coverage_weighs_rare_and_absent_terms_most() -> None:
    loaded = index()
    coverage = loaded.search("invoices VAT", ["public"], 5, 10.0).coverage
    assert coverage[2] == pytest.approx(1.0) and coverage[0] == 0.0
    half = loaded.search("invoices weekend", ["public"], 5, 10.0).coverage
    assert 0 < half[2] < 0.5  # "weekend" is in no chunk: it weighs most
    common = loaded.search("password garage", ["public"], 5, 10.0).coverage
    assert common[1] == pytest.approx(1.0)
    assert 0 < common[0] < 0.5  # holds the common term only


def _tar(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return zstandard.ZstdCompressor().compress(out.getvalue())


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"not zstd at all",
        zstandard.ZstdCompressor().compress(b"not a tar"),
        _tar({"../escape.json": b"{}", "meta.json": b"{}"}),  # a path leaving its root
        _tar({"/etc/passwd": b"x", "meta.json": b"{}"}),
        _tar({"meta.json": b'{"format": 99, "version": 1, "chunks": []}'}),
        _tar({"meta.json": b"\xff\xfe not json"}),
        _tar({"vectors.npy": b"\x93NUMPY garbage"}),  # no meta.json
    ],
    ids=["empty", "garbage", "not-tar", "dotdot", "absolute", "format", "bad-json", "no-meta"],
)
def test_anything_but_an_index_is_refused_as_unreadable(blob: bytes) -> None:
    with pytest.raises(IndexUnreadable):
        LexicalIndex.load(blob)
