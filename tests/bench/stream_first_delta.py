"""Time from the emulator's first token to the client's first ``delta`` event.

The Vertex emulator records, on the system-wide monotonic clock, when it hands each stream's first
chunk to gRPC (``GET /streams`` on its admin port). The client notes, on the same clock, when the
first ``delta`` event arrives. Baseline in the same run: the same gap for the unmodified
``aiplatform_v1`` async client reading the emulator directly (the transport's own floor). The
function's gap covers everything it adds: the client layer, the SSE framing, the event buffer and
the HTTP response. Streams run one at a time, each with a fresh prompt (no cache, no single-flight).
Target: function p50 ≤ 10 ms.

    python -m tests.bench.stream_first_delta [--n 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid

import httpx

from emulator import devtokens
from emulator.settings import StackSettings
from emulator.vertex.server import prompt_digest
from shared.llm.transport import VertexTransport, chunks
from shared.llm.types import LlmRequest, Turn
from shared.settings import LOCAL_HOST
from tests.bench.harness import backing, median, percentile, running

TARGET_MS = 10.0
MODEL = "gemini-2.5-flash"
EMULATOR = {
    "emulator_ttft_ms": 40.0,
    "emulator_tokens_per_second": 400.0,
    "emulator_answer_tokens": 16,
}


def first_chunks(settings: StackSettings) -> dict[str, int]:
    """Prompt digest → the emulator's first-chunk time (ns)."""
    admin = f"http://{LOCAL_HOST}:{settings.stack_vertex_admin_port}/streams"
    ledger = httpx.get(admin, timeout=5).json()["streams"]
    return {s["prompt"]: s["first_chunk_ns"] for s in ledger if "first_chunk_ns" in s}


async def direct(settings: StackSettings, prompts: list[str]) -> list[int]:
    """When the SDK client itself saw each stream's first chunk."""
    endpoint = f"{LOCAL_HOST}:{settings.stack_vertex_port}"
    transport = VertexTransport(settings.model_copy(update={"vertex_endpoint": endpoint}))
    seen = []
    try:
        for text in prompts:
            request = LlmRequest(turns=(Turn(role="user", text=text),))
            call = await transport.open_stream(request, MODEL, timeout=10)
            arrived = 0
            async for _ in chunks(call):
                arrived = arrived or time.monotonic_ns()
            seen.append(arrived)
    finally:
        await transport.close()
    return seen


def through_function(url: str, token: str, prompts: list[str]) -> list[int]:
    """When the client saw each stream's first ``delta`` event."""
    seen = []
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(timeout=10) as client:
        for text in prompts:
            arrived = 0
            with client.stream(
                "POST", url + "/v1/chat:stream", json={"message": text}, headers=headers
            ) as response:
                response.raise_for_status()
                for line in response.iter_lines():
                    if not arrived and line == "event: delta":
                        arrived = time.monotonic_ns()
                    if line == "event: error":
                        raise RuntimeError("stream ended in an error event")
            seen.append(arrived)
    return seen


def gaps_ms(prompts: list[str], seen: list[int], emitted: dict[str, int]) -> list[float]:
    return [(s - emitted[prompt_digest(p)]) / 1e6 for p, s in zip(prompts, seen, strict=True)]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=60)
    args = parser.parse_args()
    run = uuid.uuid4().hex[:8]
    warm = [f"warm-up {i} {run}" for i in range(5)]
    base_prompts = [f"direct probe {i} {run}" for i in range(args.n)]
    fn_prompts = [f"function probe {i} {run}" for i in range(args.n)]
    with backing(("firestore", "redis", "vertex", "auth"), **EMULATOR) as settings:
        token = devtokens.local_token(settings, "bench", ttl_s=3600)
        asyncio.run(direct(settings, warm))
        base_seen = asyncio.run(direct(settings, base_prompts))
        with running("stream", settings) as stream:
            through_function(stream.url, token, warm)
            fn_seen = through_function(stream.url, token, fn_prompts)
        emitted = first_chunks(settings)
    base = gaps_ms(base_prompts, base_seen, emitted)
    fn = gaps_ms(fn_prompts, fn_seen, emitted)
    result = {
        "benchmark": "stream_first_delta",
        "streams": args.n,
        "direct_p50_ms": round(median(base), 2),
        "direct_p95_ms": round(percentile(base, 0.95), 2),
        "function_p50_ms": round(median(fn), 2),
        "function_p95_ms": round(percentile(fn, 0.95), 2),
        "added_p50_ms": round(median(fn) - median(base), 2),
        "target_ms": TARGET_MS,
        "pass": median(fn) <= TARGET_MS,
    }
    print(
        f"first delta {median(fn):.2f} ms p50 (p95 {percentile(fn, 0.95):.2f}) after the "
        f"emulator's first token; the SDK client alone {median(base):.2f} ms "
        f"(p95 {percentile(base, 0.95):.2f}); target ≤ {TARGET_MS:.0f} ms"
    )
    print(json.dumps(result))
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
