"""gzip of large JSON answers: Accept-Encoding read as RFC 9110 says (weights, ``*``, identity),
hostile headers refused cheaply, and only complete JSON bodies over the threshold compressed."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.responses import JSONResponse, Response, StreamingResponse

from shared import compression

BIG = {
    "conversations": [
        {"conversation_id": f"c{i:04d}", "title": "Where is my order?"} for i in range(100)
    ]
}


@pytest.mark.parametrize(
    ("headers", "accepted"),
    [
        ([], False),  # a client that never asked gets the body as it is
        (["gzip"], True),
        (["GZip"], True),
        (["x-gzip"], True),
        (["br, gzip, deflate, zstd"], True),
        (["deflate", "gzip"], True),  # two header lines
        ([" gzip ,, "], True),
        (["gzip;q=0.001"], True),
        (["gzip;Q=1.000"], True),
        (["gzip ; q=0.5"], True),
        (["gzip;q=0"], False),
        (["gzip; q=0.000"], False),
        (["*"], True),
        (["*;q=0.1"], True),
        (["*;q=0"], False),
        (["*, gzip;q=0"], False),  # named refusal beats the wildcard
        (["gzip;q=0, gzip"], False),  # a coding named twice: the refusal counts
        (["identity"], False),
        (["identity;q=0"], False),
        (["gzip;q=0.5, identity"], False),  # identity preferred
        (["gzip, identity;q=0.5"], True),
        (["gzip, identity"], True),
        (["*;q=0.1, identity;q=0.5"], False),
        (["deflate, br"], False),
        ([""], False),
        ([",,,;;;"], False),
        ([";q=1"], False),
        (["gzip;level=9"], False),  # no parameter but the weight: malformed, skipped
        (["gzip;q=0.5;q=1"], False),
        (["gzip;q=1.5"], False),
        (["gzip;q=2"], False),
        (["gzip;q=-1"], False),
        (["gzip;q=0.0001"], False),  # four decimals
        (["gzip;q=1e309"], False),
        (["gzip;q=" + "9" * 5000], False),
        (["gzip;q=nan"], False),
        (["gzip;q=inf"], False),
        (["gzip;q=0x1"], False),
        (["gzip;q="], False),
        (["gzip\x00"], False),  # control characters: not a coding's name
        (["\x1fgzip"], False),
        (["gz\nip"], False),
        (["gzip\r\n"], False),
        (["gzip\x7f"], False),
        (["gzïp"], False),
        (["gzip, " + "a, " * 400], False),  # over the length any client sends: ignored
        (["gzip, " + "a" * 2000], False),
        (["deflate"] * 200 + ["gzip"], False),
    ],
)
def test_accept_encoding(headers: list[str], accepted: bool) -> None:
    assert compression.accepts_gzip(headers) is accepted


@given(st.lists(st.text(max_size=300), max_size=4))
def test_any_header_is_an_answer_never_an_error(headers: list[str]) -> None:
    assert compression.accepts_gzip(headers) in (True, False)


def test_a_large_json_body_is_compressed_when_accepted() -> None:
    response = JSONResponse(BIG)
    plain = bytes(response.body)
    compression.compress(response, ["gzip"], 1024)
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["vary"] == "Accept-Encoding"
    assert int(response.headers["content-length"]) == len(response.body) < len(plain) // 5
    assert gzip.decompress(response.body) == plain
    again = JSONResponse(BIG)
    compression.compress(again, ["gzip"], 1024)
    assert again.body == response.body  # no timestamp: the same body, the same bytes


def test_a_client_that_does_not_accept_gzip_gets_the_body_as_is() -> None:
    response = JSONResponse(BIG)
    plain = bytes(response.body)
    compression.compress(response, ["gzip;q=0, identity"], 1024)
    assert response.body == plain
    assert "content-encoding" not in response.headers
    assert response.headers["content-length"] == str(len(plain))
    assert response.headers["vary"] == "Accept-Encoding"  # caches must still tell them apart


def test_below_the_threshold_nothing_changes() -> None:
    response = JSONResponse({"status": "ok", "padding": "x" * 900})
    size = len(response.body)
    assert size < 1024
    compression.compress(response, ["gzip"], 1024)
    assert len(response.body) == size
    assert "content-encoding" not in response.headers
    assert "vary" not in response.headers
    compression.compress(response, ["gzip"], size)  # at the threshold: compressed
    assert response.headers["content-encoding"] == "gzip"


def test_streams_and_other_media_types_are_not_compressed() -> None:
    async def events() -> AsyncIterator[bytes]:
        yield b"event: delta\ndata: {}\n\n"

    stream = StreamingResponse(events(), media_type="text/event-stream")
    assert compression.compress(stream, ["gzip"], 0) is stream
    assert "content-encoding" not in stream.headers and "vary" not in stream.headers
    text = Response("x" * 5000, media_type="text/plain")
    compression.compress(text, ["gzip"], 1024)
    assert "content-encoding" not in text.headers
    encoded = Response(gzip.compress(b"{}" * 3000), media_type="application/json")
    encoded.headers["Content-Encoding"] = "gzip"
    body = encoded.body
    compression.compress(encoded, ["gzip"], 1024)
    assert encoded.body == body  # already encoded: never twice


def test_json_suffix_types_and_existing_vary() -> None:
    problem = Response(json.dumps(BIG), media_type="application/problem+json")
    problem.headers["Vary"] = "Origin"
    compression.compress(problem, ["gzip"], 1024)
    assert problem.headers["content-encoding"] == "gzip"
    assert problem.headers["vary"] == "Origin, Accept-Encoding"


def test_an_incompressible_body_is_sent_plain() -> None:
    response = JSONResponse({})
    compression.compress(response, ["gzip"], 0)
    assert response.body == b"{}"
    assert "content-encoding" not in response.headers
