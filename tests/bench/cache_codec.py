"""Which codec compresses cache entries: zlib (levels 1 and 6), lz4 and zstd (level 3).

Payloads are cache entries (an answer as JSON) of 2, 8 and 32 KiB of English prose; the baseline
is zlib level 6, measured in the same run. The hit path pays decompression, the fill path
compression; the ratio decides how much Memorystore holds.

    python -m tests.bench.cache_codec
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import lz4.frame
import zstandard

CORPUS = Path("/usr/share/common-licenses/GPL-3")


def prose() -> str:
    if CORPUS.exists():
        return CORPUS.read_text()
    import this  # fallback corpus: the Zen of Python, rot13-decoded

    return "".join(this.d.get(c, c) for c in this.s) * 60


def timed(fn: Callable[[bytes], bytes], data: bytes, n: int = 300) -> tuple[float, bytes]:
    started = time.perf_counter()
    for _ in range(n):
        out = fn(data)
    return (time.perf_counter() - started) / n * 1e6, out


def main() -> int:
    text = prose()
    zc, zd = zstandard.ZstdCompressor(level=3), zstandard.ZstdDecompressor()
    codecs: dict[str, tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]] = {
        "zlib-6 (baseline)": (lambda b: zlib.compress(b, 6), zlib.decompress),
        "zlib-1": (lambda b: zlib.compress(b, 1), zlib.decompress),
        "lz4": (lz4.frame.compress, lz4.frame.decompress),
        "zstd-3": (zc.compress, zd.decompress),
    }
    rows = []
    for size in (2048, 8192, 32768):
        entry = json.dumps(
            {"text": text[:size], "model": "gemini-2.5-flash", "output_tokens": size // 4}
        ).encode()
        for name, (compress, decompress) in codecs.items():
            c_us, packed = timed(compress, entry)
            d_us, _ = timed(decompress, packed)
            rows.append((size, name, len(entry) / len(packed), c_us, d_us))
    print(f"{'bytes':>6} {'codec':18} {'ratio':>6} {'compress µs':>12} {'decompress µs':>14}")
    for size, name, ratio, c_us, d_us in rows:
        print(f"{size:>6} {name:18} {ratio:6.2f} {c_us:12.1f} {d_us:14.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
