"""Cache-hit chat throughput on one worker, against a bare functions-framework aio hello world.

Both run as one functions-framework process (one worker) and are loaded by ``wrk -t1 -c32`` for
10 s after a 3 s warm-up, in the same run. The chat request is authenticated, rate-limited
(limits set out of reach), answered from the response cache and stored in Firestore, as in
production. Target: chat ≥ 50% of hello world. Also printed: the function's CPU time per request
(``/proc`` user + system over the measured run), which does not depend on what else the machine
runs — the Firestore emulator shares these cores here and never does in production.

    python -m tests.bench.chat_throughput
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from emulator import devtokens
from tests.bench.harness import HELLO, backing, running

TARGET = 0.5
DURATION_S = 10


def wrk(url: str, script: Path | None, seconds: int) -> tuple[float, int]:
    """Requests per second and the count of non-2xx answers."""
    command = ["wrk", "-t1", "-c32", f"-d{seconds}s", "--latency"]
    if script is not None:
        command += ["-s", str(script)]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rate, int(errors.group(1)) if errors else 0


def post_script(folder: Path, body: dict[str, str], token: str) -> Path:
    """A wrk script that POSTs ``body`` as JSON with a bearer token."""
    script = folder / "chat.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = '{json.dumps(body)}'\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {token}"\n'
    )
    return script


async def redis_round_trip_cpu_ms(url: str, calls: int = 3000) -> float:
    """Client CPU of one redis-py asyncio round trip (a GET), the smallest step a chat takes."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(url)
    await client.set("bench:probe", b"x" * 64)
    for _ in range(200):
        await client.get("bench:probe")
    started = time.process_time()
    for _ in range(calls):
        await client.get("bench:probe")
    spent = time.process_time() - started
    await client.aclose()
    return spent * 1000 / calls


def main() -> int:
    if shutil.which("wrk") is None:
        print("wrk is required: sudo apt-get install -y wrk")
        return 2
    with backing(("firestore", "redis", "vertex", "auth")) as settings:
        token = devtokens.local_token(settings, "bench", ttl_s=3600)
        body = {"message": "What does the cache save?"}
        with tempfile.TemporaryDirectory() as tmp:
            script = post_script(Path(tmp), body, token)
            with running("hello", settings, source=HELLO) as hello:
                wrk(hello.url + "/", None, 3)
                cpu = hello.cpu_s()
                hello_rate, hello_errors = wrk(hello.url + "/", None, DURATION_S)
                hello_cpu_ms = (hello.cpu_s() - cpu) * 1000 / (hello_rate * DURATION_S)
            with running("chat", settings) as chat:
                first = httpx.post(
                    chat.url + "/v1/chat",
                    json=body,
                    timeout=30,
                    headers={"Authorization": f"Bearer {token}"},
                )
                first.raise_for_status()  # fills the cache
                wrk(chat.url + "/v1/chat", script, 3)
                cpu = chat.cpu_s()
                chat_rate, chat_errors = wrk(chat.url + "/v1/chat", script, DURATION_S)
                chat_cpu_ms = (chat.cpu_s() - cpu) * 1000 / (chat_rate * DURATION_S)
        redis_url = f"redis://127.0.0.1:{settings.stack_redis_port}/0"
        redis_ms = asyncio.run(redis_round_trip_cpu_ms(redis_url))
    ratio = chat_rate / hello_rate
    result = {
        "benchmark": "chat_throughput",
        "hello_rps": round(hello_rate, 1),
        "chat_cache_hit_rps": round(chat_rate, 1),
        "errors": hello_errors + chat_errors,
        "hello_cpu_ms_per_request": round(hello_cpu_ms, 3),
        "chat_cpu_ms_per_request": round(chat_cpu_ms, 3),
        "redis_round_trip_cpu_ms": round(redis_ms, 3),
        "ratio": round(ratio, 3),
        "target": TARGET,
        "pass": ratio >= TARGET and chat_errors == 0,
    }
    print(
        f"cache-hit chat {chat_rate:.0f} req/s vs hello world {hello_rate:.0f} req/s → "
        f"{ratio:.0%} (target ≥ {TARGET:.0%}); non-2xx: {chat_errors}; function CPU per "
        f"request: chat {chat_cpu_ms:.3f} ms, hello world {hello_cpu_ms:.3f} ms"
    )
    print(
        f"a CPU-bound chat at 50% of hello world may spend {hello_cpu_ms:.3f} ms beyond it; "
        f"one redis-py round trip costs {redis_ms:.3f} ms of client CPU; a cache-hit chat "
        "makes one (rate limit and lookup in one script) before its Firestore commit"
    )
    print(json.dumps(result))
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
