"""WebSocket sessions on one stream-function process: 1,000 at once, and the first delta's delay.

Capacity: 1,000 sessions open at once, each authenticates by its subprotocol, asks one question
with its own prompt (no cache, no single-flight) and reads its answer to ``done``; the emulator
paces every answer over about ten seconds, so all are open together. The function's resident
memory (master and worker) is sampled every 100 ms. Baseline in the same run: the same process's
RSS once warm and idle. Target: peak ≤ 512 MiB, every answer ends with ``done``, no error.

First delta: the emulator records when it hands each stream's first chunk to gRPC (system-wide
monotonic clock); the client notes when the first ``delta`` event arrives on its session.
Baseline in the same run: the same gap on ``POST /v1/chat:stream`` (SSE) of the same process.
Target: session p50 ≤ 10 ms.

    python -m tests.bench.sessions [--sessions 1000] [--n 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid

from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from emulator import devtokens
from tests.bench.harness import backing, median, percentile, running
from tests.bench.stream_capacity import EMULATOR as PACED
from tests.bench.stream_capacity import RssSampler, Tally, ramp
from tests.bench.stream_first_delta import EMULATOR as QUICK
from tests.bench.stream_first_delta import first_chunks, gaps_ms, through_function

TARGET_MIB = 512
TARGET_MS = 10.0


def _protocols(token: str) -> list[Subprotocol]:
    return [Subprotocol("ngx.v1"), Subprotocol(f"ngx.bearer.{token}")]


async def one_session(url: str, token: str, text: str, tally: Tally) -> None:
    """Open a session, ask one question, read to ``done``; note what went wrong."""
    counted = False
    try:
        async with connect(url, subprotocols=_protocols(token), open_timeout=60) as ws:
            ready = json.loads(await asyncio.wait_for(ws.recv(), 60))
            if ready["type"] != "ready":
                tally.fail(f"first event {ready['type']}")
                return
            await ws.send(json.dumps({"type": "chat", "request": {"message": text}}))
            while True:
                event = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if event["type"] == "meta" and not counted:
                    counted = True
                    tally.open += 1
                    tally.peak_open = max(tally.peak_open, tally.open)
                elif event["type"] == "error":
                    tally.fail(f"error {event['data']['error']['code']}")
                    return
                elif event["type"] == "done":
                    tally.done += 1
                    return
    except Exception as exc:  # a benchmark counts failures of any kind
        tally.fail(type(exc).__name__)
    finally:
        if counted:
            tally.open -= 1


async def load(url: str, token: str, sessions: int, run: str) -> Tally:
    return await ramp(sessions, lambda i, t: one_session(url, token, f"session {i} {run}", t))


async def first_deltas(url: str, token: str, prompts: list[str]) -> list[int]:
    """When the client saw each answer's first ``delta``, one question at a time on a session."""
    seen = []
    async with connect(url, subprotocols=_protocols(token)) as ws:
        await ws.recv()  # ready
        for text in prompts:
            await ws.send(json.dumps({"type": "chat", "request": {"message": text}}))
            arrived = 0
            while True:
                event = json.loads(await ws.recv())
                if event["type"] == "delta" and not arrived:
                    arrived = time.monotonic_ns()
                if event["type"] == "error":
                    raise RuntimeError(f"error event: {event}")
                if event["type"] == "done":
                    break
            seen.append(arrived)
    return seen


def capacity(sessions: int, run: str) -> dict[str, object]:
    with backing(("firestore", "redis", "vertex", "auth"), **PACED) as settings:
        token = devtokens.local_token(settings, "bench", ttl_s=3600)
        with running("stream", settings) as stream:
            url = stream.url.replace("http://", "ws://") + "/v1/sessions"
            asyncio.run(load(url, token, 20, run + "-warm"))
            time.sleep(1)
            idle_kib = stream.rss_kib()
            sampler = RssSampler(stream)
            sampler.start()
            started = time.monotonic()
            tally = asyncio.run(load(url, token, sessions, run))
            elapsed = time.monotonic() - started
            peak_kib = sampler.stop()
    peak_mib, idle_mib = peak_kib / 1024, idle_kib / 1024
    print(
        f"{tally.done}/{sessions} session answers done ({tally.peak_open} streaming at once), "
        f"failures {tally.failures or 0}; peak RSS {peak_mib:.0f} MiB vs {idle_mib:.0f} MiB idle "
        f"({peak_mib / idle_mib:.2f}×); target ≤ {TARGET_MIB} MiB"
    )
    return {
        "sessions": sessions,
        "peak_concurrent": tally.peak_open,
        "completed": tally.done,
        "failures": tally.failures,
        "seconds": round(elapsed, 1),
        "idle_rss_mib": round(idle_mib, 1),
        "peak_rss_mib": round(peak_mib, 1),
        "ratio_to_idle": round(peak_mib / idle_mib, 2),
        "kib_per_session": round((peak_kib - idle_kib) / max(1, tally.peak_open), 1),
        "capacity_pass": peak_mib <= TARGET_MIB and not tally.failures and tally.done == sessions,
    }


def latency(n: int, run: str) -> dict[str, object]:
    warm = [f"warm-up {i} {run}" for i in range(5)]
    sse_prompts = [f"sse probe {i} {run}" for i in range(n)]
    ws_prompts = [f"session probe {i} {run}" for i in range(n)]
    with backing(("firestore", "redis", "vertex", "auth"), **QUICK) as settings:
        token = devtokens.local_token(settings, "bench", ttl_s=3600)
        with running("stream", settings) as stream:
            url = stream.url.replace("http://", "ws://") + "/v1/sessions"
            through_function(stream.url, token, warm)
            asyncio.run(first_deltas(url, token, [w + " ws" for w in warm]))
            sse_seen = through_function(stream.url, token, sse_prompts)
            ws_seen = asyncio.run(first_deltas(url, token, ws_prompts))
        emitted = first_chunks(settings)
    sse, ws = gaps_ms(sse_prompts, sse_seen, emitted), gaps_ms(ws_prompts, ws_seen, emitted)
    print(
        f"first delta on a session {median(ws):.2f} ms p50 (p95 {percentile(ws, 0.95):.2f}) "
        f"after the emulator's first token; on SSE {median(sse):.2f} ms "
        f"(p95 {percentile(sse, 0.95):.2f}); target ≤ {TARGET_MS:.0f} ms"
    )
    return {
        "answers": n,
        "session_p50_ms": round(median(ws), 2),
        "session_p95_ms": round(percentile(ws, 0.95), 2),
        "sse_p50_ms": round(median(sse), 2),
        "sse_p95_ms": round(percentile(sse, 0.95), 2),
        "latency_pass": median(ws) <= TARGET_MS,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--n", type=int, default=60)
    args = parser.parse_args()
    run = uuid.uuid4().hex[:8]
    result: dict[str, object] = {"benchmark": "sessions", "target_mib": TARGET_MIB}
    result |= latency(args.n, run)
    result |= capacity(args.sessions, run)
    result["pass"] = bool(result["latency_pass"] and result["capacity_pass"])
    print(json.dumps(result))
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
