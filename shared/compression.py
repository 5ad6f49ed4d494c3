"""gzip for large JSON answers, when the client accepts it.

A page of a hundred conversations is about 18 kB of repetitive JSON that gzip makes four times
smaller: on a slow mobile network that is most of the wait. `Router` calls `compress` on each
finished response; only a complete JSON body (a starlette `Response` with ``.body``) of at least
``gzip_min_bytes`` is compressed. Event streams (`StreamingResponse`) and WebSocket frames are
never touched: gzip would hold back events until its buffer fills.

The output is deterministic (no timestamp in the gzip header), so the same body always gives the
same bytes: an idempotent replay is byte-identical compressed or not.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterable

from starlette.responses import Response, StreamingResponse

# zlib level. tests/bench/compression.py, a 100-conversation page (18.5 kB, 0.64 ms of CPU plain):
# level 1 makes it 3.95x smaller for +0.15 ms, 6 4.37x for +0.27 ms, 9 4.52x for +0.40 ms. Level 6
# saves 450 bytes more than 1 (3.6 ms at 1 Mbit/s) for 0.12 ms of CPU; 9 saves 140 more for as much.
LEVEL = 6
# A longer Accept-Encoding is not a browser's or an SDK's: it is ignored (no compression) rather
# than parsed, so a hostile header costs nothing.
MAX_HEADER_CHARS = 1024
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
# RFC 9110 §12.4.2: a weight is 0 to 1 with at most three decimals ("q=1.000", "q=0.5").
_WEIGHT = re.compile(r"(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)\Z")
_JSON = re.compile(r"application/(?:[\w.+-]+\+)?json\s*(?:;|\Z)", re.IGNORECASE)


def _weights(header: str) -> dict[str, float] | None:
    """Each coding's weight (lower-cased names, the lowest weight of a repeated one); ``None``
    for a header too long to consider. A malformed element is skipped, never guessed at."""
    if len(header) > MAX_HEADER_CHARS:
        return None
    weights: dict[str, float] = {}
    for element in header.split(","):
        coding, *params = (part.strip(" \t") for part in element.split(";"))
        if not coding or not _TOKEN.match(coding):
            continue
        weight = 1.0
        if params:
            if len(params) != 1 or params[0][:2].lower() != "q=":
                continue
            value = params[0][2:]
            if not _WEIGHT.match(value):
                continue
            weight = float(value)
        name = coding.lower()
        weights[name] = min(weight, weights.get(name, weight))
    return weights


def accepts_gzip(headers: Iterable[str]) -> bool:
    """Whether the request's ``Accept-Encoding`` values allow gzip and prefer it to identity.

    ``gzip`` (or ``x-gzip``) with a weight above 0, or ``*`` above 0 when gzip is not named;
    ``gzip;q=0`` refuses it whatever ``*`` says. An ``identity`` weighted above gzip keeps the
    body as it is. No header means no compression: what a client that never asked gets.
    """
    values = list(headers)
    if not values:
        return False
    weights = _weights(",".join(values))
    if weights is None:
        return False
    named = [weights[name] for name in ("gzip", "x-gzip") if name in weights]
    gzip_weight = min(named) if named else weights.get("*", 0.0)
    return gzip_weight > 0 and gzip_weight >= weights.get("identity", 0.0)


def add_vary(response: Response, field: str) -> None:
    """Add ``field`` to the response's ``Vary``, keeping what is there (CORS adds ``Origin``)."""
    present = [v.strip() for v in response.headers.get("vary", "").split(",") if v.strip()]
    if field.lower() not in {v.lower() for v in present}:
        response.headers["Vary"] = ", ".join([*present, field])


def compressible(response: Response, min_bytes: int) -> bool:
    """A complete JSON body of at least ``min_bytes``, not already encoded."""
    body = getattr(response, "body", None)  # streams and files have none
    if isinstance(response, StreamingResponse) or not isinstance(body, bytes):
        return False
    return (
        len(body) >= min_bytes
        and "content-encoding" not in response.headers
        and _JSON.match(response.headers.get("content-type", "")) is not None
    )


def compress(response: Response, accept_encoding: Iterable[str], min_bytes: int) -> Response:
    """``response`` with its body gzip-compressed when it is `compressible` and the client
    accepts gzip; such a response varies by ``Accept-Encoding`` either way. Changed in place."""
    if not compressible(response, min_bytes):
        return response
    add_vary(response, "Accept-Encoding")
    if not accepts_gzip(accept_encoding):
        return response
    packed = gzip.compress(response.body, compresslevel=LEVEL, mtime=0)
    if len(packed) >= len(response.body):
        return response  # incompressible: the plain body is the smaller answer
    response.body = packed
    response.headers["Content-Encoding"] = "gzip"
    response.headers["Content-Length"] = str(len(packed))
    return response
