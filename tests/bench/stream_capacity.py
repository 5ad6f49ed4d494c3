"""1,000 concurrent streams on one stream-function process: peak RSS and errors.

The emulator paces every answer over about ten seconds, so all streams are open at once; each has
its own prompt (no cache, no single-flight) and ends by storing its exchange in Firestore, as in
production. The client is a bare asyncio HTTP/1.1 reader, light enough not to be the limit. The
function's resident memory (master and worker) is sampled every 100 ms. Baseline in the same run:
the same process's RSS once warm and idle. Target: peak ≤ 512 MiB, every stream ends with
``done``, no error.

    python -m tests.bench.stream_capacity [--streams 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from emulator import devtokens
from shared.settings import LOCAL_HOST
from tests.bench.harness import Function, backing, running

TARGET_MIB = 512
# 48 tokens at 4 tokens/s in chunks of 4: twelve chunks a second apart.
EMULATOR = {
    "emulator_ttft_ms": 150.0,
    "emulator_tokens_per_second": 4.0,
    "emulator_answer_tokens": 48,
}


@dataclass
class Tally:
    open: int = 0
    peak_open: int = 0
    done: int = 0
    failures: dict[str, int] = field(default_factory=dict)

    def fail(self, why: str) -> None:
        self.failures[why] = self.failures.get(why, 0) + 1


async def one_stream(port: int, token: str, text: str, tally: Tally) -> None:
    """POST one stream and read it to the end; note whether it ended with ``done``."""
    body = json.dumps({"message": text}).encode()
    head = (
        f"POST /v1/chat:stream HTTP/1.1\r\nHost: {LOCAL_HOST}:{port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    try:
        reader, writer = await asyncio.open_connection(LOCAL_HOST, port)
    except OSError as exc:
        tally.fail(f"connect: {type(exc).__name__}")
        return
    counted = False
    try:
        writer.write(head + body)
        await writer.drain()
        received = bytearray()
        while chunk := await asyncio.wait_for(reader.read(65536), 60):
            received += chunk
            if not counted and b"event: meta" in received:
                counted = True
                tally.open += 1
                tally.peak_open = max(tally.peak_open, tally.open)
        status = received[9:12].decode(errors="replace")
        if status != "200":
            tally.fail(f"HTTP {status}")
        elif b"event: error" in received:
            tally.fail("error event")
        elif b"event: done" not in received:
            tally.fail("no done event")
        else:
            tally.done += 1
    except (OSError, TimeoutError) as exc:
        tally.fail(type(exc).__name__)
    finally:
        if counted:
            tally.open -= 1
        writer.close()


async def ramp(count: int, client: Callable[[int, Tally], Coroutine[Any, Any, None]]) -> Tally:
    """``count`` clients started 2 ms apart (a two-second ramp for 1,000), run to the end."""
    tally = Tally()
    tasks: list[asyncio.Task[None]] = []
    for i in range(count):
        tasks.append(asyncio.create_task(client(i, tally)))
        await asyncio.sleep(0.002)
    await asyncio.gather(*tasks)
    return tally


async def load(port: int, token: str, streams: int, run: str) -> Tally:
    return await ramp(streams, lambda i, t: one_stream(port, token, f"capacity {i} {run}", t))


class RssSampler(threading.Thread):
    """Peak resident memory of a function's process tree, sampled every 100 ms."""

    def __init__(self, function: Function) -> None:
        super().__init__(daemon=True)
        self.function = function
        self.peak_kib = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak_kib = max(self.peak_kib, self.function.rss_kib())
            time.sleep(0.1)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak_kib


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=1000)
    args = parser.parse_args()
    run = uuid.uuid4().hex[:8]
    with backing(("firestore", "redis", "vertex", "auth"), **EMULATOR) as settings:
        token = devtokens.local_token(settings, "bench", ttl_s=3600)
        with running("stream", settings) as stream:
            port = int(stream.url.rsplit(":", 1)[1])
            asyncio.run(load(port, token, 20, run + "-warm"))
            time.sleep(1)
            idle_kib = stream.rss_kib()
            sampler = RssSampler(stream)
            sampler.start()
            started = time.monotonic()
            tally = asyncio.run(load(port, token, args.streams, run))
            elapsed = time.monotonic() - started
            peak_kib = sampler.stop()
    peak_mib, idle_mib = peak_kib / 1024, idle_kib / 1024
    result = {
        "benchmark": "stream_capacity",
        "streams": args.streams,
        "peak_concurrent": tally.peak_open,
        "completed": tally.done,
        "failures": tally.failures,
        "seconds": round(elapsed, 1),
        "idle_rss_mib": round(idle_mib, 1),
        "peak_rss_mib": round(peak_mib, 1),
        "ratio_to_idle": round(peak_mib / idle_mib, 2),
        "kib_per_stream": round((peak_kib - idle_kib) / max(1, tally.peak_open), 1),
        "target_mib": TARGET_MIB,
        "pass": peak_mib <= TARGET_MIB and not tally.failures and tally.done == args.streams,
    }
    print(
        f"{tally.done}/{args.streams} streams done ({tally.peak_open} open at once), "
        f"failures {tally.failures or 0}; peak RSS {peak_mib:.0f} MiB vs {idle_mib:.0f} MiB idle "
        f"({peak_mib / idle_mib:.2f}×); target ≤ {TARGET_MIB} MiB"
    )
    print(json.dumps(result))
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
