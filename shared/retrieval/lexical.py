"""The corpus's lexical index: BM25 over every chunk, built once per corpus version.

`build` turns the chunks (text, metadata and embedding) into one object — a zstd-compressed tar
of the ``bm25s`` index, the chunks' metadata and their embeddings as a matrix — and `LexicalIndex`
loads it. A search scores only the chunks the caller may see (a weight mask per visibility set)
and never returns expired ones; the embeddings let hybrid retrieval judge every candidate's
similarity to the question and diversify the results without reading Firestore again.

``bm25s``, ``numpy`` and the stemmer are imported here only, and this module only where a search
or a build happens, so no function pays for them at start.
"""

from __future__ import annotations

import io
import json
import math
import tarfile
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

FORMAT = 1
_BM25_FILES = (
    "data.csc.index.npy",
    "indices.csc.index.npy",
    "indptr.csc.index.npy",
    "vocab.index.json",
    "params.index.json",
    "nonoccurrence_array.index.npy",
)
MAX_INDEX_BYTES = 2 << 30  # a corrupt or hostile object is refused before it is unpacked


@dataclass(frozen=True)
class LexicalResult:
    """A lexical search: the ranked (position, BM25 score) pairs, and every chunk's coverage."""

    found: list[tuple[int, float]]
    coverage: Any  # numpy float32, one value per chunk in 0..1


class IndexUnreadable(ValueError):
    """The stored object is not a lexical index this code can read."""


@dataclass(frozen=True)
class IndexedChunk:
    """What the index keeps of a chunk: enough to cite it without another read."""

    chunk_id: str
    uri: str
    title: str
    section: str
    text: str
    visibility: str
    tags: tuple[str, ...]
    updated_at: float  # seconds since the epoch
    expires_at: float | None = None


def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


def tokenize(texts: list[str], stemmer: Any, ids: bool = True) -> Any:
    """Lower-cased word tokens without English stop words, stemmed (index and query alike)."""
    import bm25s

    return bm25s.tokenize(
        texts, stopwords="en", stemmer=stemmer.stemWords, show_progress=False, return_ids=ids
    )


def build(chunks: list[IndexedChunk], vectors: list[list[float]], version: int) -> bytes:
    """The index object for ``chunks`` (with their embeddings, in the same order)."""
    import bm25s
    import numpy as np
    import zstandard

    if len(chunks) != len(vectors):
        raise ValueError("one embedding per chunk")
    matrix = np.asarray(vectors, dtype=np.float32).reshape(len(chunks), -1 if chunks else 0)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    matrix = (matrix / np.where(norms == 0, 1.0, norms)).astype(np.float32)
    out = io.BytesIO()
    with tempfile.TemporaryDirectory() as folder, tarfile.open(fileobj=out, mode="w") as tar:
        if chunks:
            bm25 = bm25s.BM25()
            bm25.index(tokenize([c.text for c in chunks], _stemmer()), show_progress=False)
            bm25.save(folder, show_progress=False)
            for name in _BM25_FILES:  # the non-occurrence array exists for some variants only
                if Path(folder, name).exists():
                    tar.add(Path(folder, name), arcname=name)
        np.save(Path(folder, "vectors.npy"), matrix, allow_pickle=False)
        tar.add(Path(folder, "vectors.npy"), arcname="vectors.npy")
        meta = {"format": FORMAT, "version": version, "chunks": [asdict(c) for c in chunks]}
        _add_bytes(tar, "meta.json", json.dumps(meta, ensure_ascii=False).encode())
    return zstandard.ZstdCompressor(level=3).compress(out.getvalue())


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


class LexicalIndex:
    """A loaded index: BM25 scores, chunk metadata and embeddings of one corpus version."""

    def __init__(self, version: int, chunks: list[IndexedChunk], bm25: Any, vectors: Any) -> None:
        self.version = version
        self.chunks = chunks
        self.vectors = vectors  # numpy float32, one unit row per chunk
        self._bm25 = bm25
        self._stemmer = _stemmer()
        self._masks: dict[tuple[tuple[str, ...], tuple[str, ...]], Any] = {}
        self._positions: dict[str, int] | None = None

    @classmethod
    def load(cls, data: bytes) -> LexicalIndex:
        """Read an object written by `build` (IndexUnreadable if it is not one)."""
        import bm25s
        import numpy as np
        import zstandard

        try:
            raw = zstandard.ZstdDecompressor().decompress(data, max_output_size=MAX_INDEX_BYTES)
            with tempfile.TemporaryDirectory() as folder:
                with tarfile.open(fileobj=io.BytesIO(raw), mode="r") as tar:
                    names = set(tar.getnames())
                    allowed = {*_BM25_FILES, "vectors.npy", "meta.json"}
                    if not names <= allowed or "meta.json" not in names:
                        raise IndexUnreadable(f"unexpected members {sorted(names - allowed)}")
                    tar.extractall(folder, filter="data")
                meta = json.loads(Path(folder, "meta.json").read_text())
                if meta.get("format") != FORMAT:
                    raise IndexUnreadable(f"format {meta.get('format')!r}, expected {FORMAT}")
                chunks = [IndexedChunk(**{**c, "tags": tuple(c["tags"])}) for c in meta["chunks"]]
                vectors = np.load(Path(folder, "vectors.npy"), allow_pickle=False)
                bm25 = bm25s.BM25.load(folder, show_progress=False, verbosity=0) if chunks else None
        except IndexUnreadable:
            raise
        except (zstandard.ZstdError, tarfile.TarError, OSError, KeyError, TypeError) as exc:
            raise IndexUnreadable(str(exc)) from exc
        except ValueError as exc:
            raise IndexUnreadable(str(exc)) from exc
        if len(vectors) != len(chunks):
            raise IndexUnreadable("embeddings and chunks differ in number")
        return cls(int(meta["version"]), chunks, bm25, vectors)

    def _mask(self, visibility: list[str], tags: list[str] | None = None) -> Any:
        """1 for the chunks one of ``visibility`` may see (carrying one of ``tags``, if given),
        0 for the others (kept per set)."""
        import numpy as np

        key = (tuple(sorted(visibility)), tuple(sorted(tags or ())))
        mask = self._masks.get(key)
        if mask is None:
            allowed, wanted = set(key[0]), set(key[1])
            mask = np.fromiter(
                (
                    c.visibility in allowed and (not wanted or bool(wanted.intersection(c.tags)))
                    for c in self.chunks
                ),
                dtype=np.float32,
                count=len(self),
            )
            if len(self._masks) > 256:  # one per tenant and user seen: bounded
                self._masks.clear()
            self._masks[key] = mask
        return mask

    def search(
        self,
        query: str,
        visibility: list[str],
        limit: int,
        now: float,
        tags: list[str] | None = None,
    ) -> LexicalResult:
        """Up to ``limit`` (chunk position, BM25 score) pairs, best first — only chunks one of
        ``visibility`` may see that have not expired and share a term — and every chunk's
        coverage of the question: the IDF-weighted share of its terms the chunk holds (a term
        the corpus lacks weighs most, so a question about something absent covers little)."""
        import numpy as np

        coverage = np.zeros(len(self), dtype=np.float32)
        if self._bm25 is None or limit <= 0:
            return LexicalResult([], coverage)
        [words] = tokenize([query], self._stemmer, ids=False)
        terms = [w for w in dict.fromkeys(words) if w]
        vocabulary = self._bm25.vocab_dict
        known = [vocabulary[w] for w in terms if w in vocabulary]
        n = len(self)
        weight_of_absent = math.log(1 + (n + 0.5) / 0.5)
        total_weight = weight_of_absent * (len(terms) - len(known))
        scores = np.zeros(n, dtype=np.float32)
        for token in known:
            per_chunk = self._bm25.get_scores([token])  # BM25 is a sum over the query's terms
            present = per_chunk > 0
            df = int(np.count_nonzero(present))
            weight = math.log(1 + (n - df + 0.5) / (df + 0.5))
            total_weight += weight
            coverage += weight * present
            scores += per_chunk
        if total_weight > 0:
            coverage /= total_weight
        scores *= self._mask(visibility, tags)
        count = min(limit * 2, n)
        top = np.argpartition(-scores, count - 1)[:count] if count < n else np.arange(n)
        found: list[tuple[int, float]] = []
        for position in top[np.argsort(-scores[top], kind="stable")]:
            score = float(scores[position])
            if score <= 0:
                break
            expires = self.chunks[position].expires_at
            if expires is not None and expires <= now:
                continue
            found.append((int(position), score))
            if len(found) == limit:
                break
        return LexicalResult(found, coverage)

    def position(self, chunk_id: str) -> int | None:
        """Where a chunk is in the index (None: not in it, e.g. ingested since it was built)."""
        if self._positions is None:
            self._positions = {c.chunk_id: n for n, c in enumerate(self.chunks)}
        return self._positions.get(chunk_id)

    def __len__(self) -> int:
        return len(self.chunks)
