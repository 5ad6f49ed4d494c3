"""What gzip of JSON answers saves and costs: a page of 100 conversations (``GET /v1/conversations
?page_size=100``) served through `shared.web.Router`, plain and gzip-compressed, in the same run.

Each request runs the list handler's own work (the page model built from Firestore-shaped
documents, dumped to JSON) and the router's; the baseline is the same request served plain
(``Accept-Encoding: identity``). Figures: bytes on the wire, function CPU per request, and what the
saved bytes are worth on a slow mobile link. zlib levels 1 and 9 are measured beside
`compression.LEVEL` to show why it was chosen.

The targets: the page at least 4× smaller, for at most +0.5 ms of CPU per request.

    python -m tests.bench.compression
"""

from __future__ import annotations

import asyncio
import gzip
import json
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shared import compression, web
from shared.contracts import ConversationPage, ConversationSummary

PAGE_SIZE = 100
ROUNDS, REQUESTS = 7, 300
TARGET_RATIO, TARGET_ADDED_MS = 4.0, 0.5
MOBILE_BITS_PER_S = 1_000_000  # a poor 3G / congested LTE link
# Titles are the first 80 characters of a conversation's first message: the project's help-desk
# questions, a user's 100 conversations drawing on them as real ones share topics.
QUESTIONS = Path(__file__).resolve().parents[1] / "data" / "questions.jsonl"


def documents(rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
    """A user's 100 conversations as Firestore returns them: time-ordered ids, varied titles."""
    questions = [json.loads(line)["question"] for line in QUESTIONS.read_text().splitlines()]
    start = datetime(2026, 11, 1, tzinfo=UTC)
    found = []
    for i in range(PAGE_SIZE):
        at = start + timedelta(hours=7 * i, seconds=rng.randrange(3600))
        cid = f"{int(at.timestamp() * 1000):012x}{rng.getrandbits(48):012x}"
        data = {
            "title": rng.choice(questions)[:80],
            "created_at": at,
            "updated_at": at + timedelta(minutes=rng.randrange(1, 240)),
            "message_count": 2 * rng.randrange(1, 12),
        }
        found.append((cid, data))
    return found


def router(docs: list[tuple[str, dict[str, Any]]]) -> web.Router:
    """The chat function's list route, its handler reduced to what follows the Firestore read."""

    async def list_conversations(_: Request, __: dict[str, str]) -> Response:
        page = ConversationPage(
            conversations=[
                ConversationSummary(
                    conversation_id=cid,
                    title=data["title"],
                    created_at=data["created_at"],
                    updated_at=data["updated_at"],
                    message_count=data["message_count"],
                )
                for cid, data in docs
            ],
            next_page_token=docs[-1][0],
        )
        return JSONResponse(page.model_dump(mode="json"))

    route = web.Route("GET", "/v1/conversations", list_conversations)
    return web.Router([route], gzip_min_bytes=1024)


def request(accept_encoding: str) -> Request:
    headers = [(b"accept-encoding", accept_encoding.encode()), (b"host", b"bench")]
    scope = {
        "type": "http",
        "method": "GET",
        "scheme": "http",
        "server": ("bench", 80),
        "path": "/v1/conversations",
        "query_string": b"page_size=100",
        "headers": headers,
    }
    return Request(scope)


async def serve(app: web.Router, accept_encoding: str, level: int) -> tuple[float, Response]:
    """CPU milliseconds per request over `REQUESTS` requests, and the last response."""
    compression.LEVEL = level
    started = time.process_time()
    for _ in range(REQUESTS):
        response = await app(request(accept_encoding))
    return (time.process_time() - started) / REQUESTS * 1e3, response


async def measure() -> dict[str, Any]:
    app = router(documents(random.Random(7)))
    chosen = compression.LEVEL
    variants = {"plain": ("identity", chosen), **{f"gzip-{n}": ("gzip", n) for n in (1, 6, 9)}}
    if f"gzip-{chosen}" not in variants:
        variants[f"gzip-{chosen}"] = ("gzip", chosen)
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    sizes: dict[str, int] = {}
    bodies: dict[str, bytes] = {}
    for _ in range(ROUNDS):  # alternating, so drift hits every variant alike
        for name, (accept, level) in variants.items():
            ms, response = await serve(app, accept, level)
            cpu[name].append(ms)
            sizes[name] = len(response.body)
            bodies[name] = bytes(response.body)
    compression.LEVEL = chosen
    for name in variants:
        if name != "plain":
            assert gzip.decompress(bodies[name]) == bodies["plain"], name
    assert len(json.loads(bodies["plain"])["conversations"]) == PAGE_SIZE
    return {
        "chosen": f"gzip-{chosen}",
        "cpu_ms": {name: statistics.median(samples) for name, samples in cpu.items()},
        "bytes": sizes,
    }


def main() -> int:
    found = asyncio.run(measure())
    cpu, sizes, chosen = found["cpu_ms"], found["bytes"], found["chosen"]
    plain_ms, plain_bytes = cpu["plain"], sizes["plain"]
    print(f"{'variant':10} {'bytes':>7} {'smaller':>8} {'CPU ms/req':>11} {'vs plain':>9}")
    for name in cpu:
        print(
            f"{name:10} {sizes[name]:7d} {plain_bytes / sizes[name]:7.2f}x "
            f"{cpu[name]:11.3f} {cpu[name] / plain_ms:8.2f}x"
        )
    ratio = plain_bytes / sizes[chosen]
    added = cpu[chosen] - plain_ms
    saved_ms = (plain_bytes - sizes[chosen]) * 8 / MOBILE_BITS_PER_S * 1e3
    met = ratio >= TARGET_RATIO and added <= TARGET_ADDED_MS
    print(
        f"{chosen} (compression.LEVEL): {plain_bytes} → {sizes[chosen]} bytes, {ratio:.2f}x "
        f"smaller; CPU {cpu[chosen]:.3f} ms vs {plain_ms:.3f} ms plain → "
        f"{cpu[chosen] / plain_ms:.2f}x, +{added:.3f} ms per request; saves {saved_ms:.0f} ms "
        f"on a {MOBILE_BITS_PER_S / 1e6:g} Mbit/s link (target ≥ {TARGET_RATIO:g}x and "
        f"≤ +{TARGET_ADDED_MS} ms)"
    )
    print(
        json.dumps(
            {
                "benchmark": "compression",
                "plain_bytes": plain_bytes,
                "gzip_bytes": sizes[chosen],
                "ratio": round(ratio, 2),
                "plain_cpu_ms": round(plain_ms, 4),
                "gzip_cpu_ms": round(cpu[chosen], 4),
                "added_cpu_ms": round(added, 4),
                "saved_ms_at_1mbps": round(saved_ms, 1),
                "pass": met,
            }
        )
    )
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
