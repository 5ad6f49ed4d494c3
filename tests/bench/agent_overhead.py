"""What the agent loop costs: per tool step, beyond the model's and the tool's own time; and whether
cache-hit chat throughput held up against the revision before the agent.

1. **Overhead per tool step** (target ≤ 2 ms p50), in-process against the stack's emulator, Redis,
   Firestore and demo order API. Each answer runs through the real `Agent` and `LlmClient`; the
   model's own time (each `VertexTransport.generate` RPC) and the tool's own time (each
   `Egress.fetch` exchange) are timed and taken out. The same is done, in the same run, for plain
   answers without tools; the agent's overhead per tool step is the difference of the two medians
   (so it includes everything a tool step adds: the second model call's cache lookup, fill lock and
   store, the tool's argument validation, result cache and bound, the loop's own work).
2. **Cache-hit throughput**, as `tests.bench.chat_throughput` measures it (``wrk -t1 -c32``), for
   this checkout (its tools offered on every request) and for ``--baseline`` (a revision before the
   agent, checked out in a temporary worktree), alternating, in the same run. Target: ≥ 95%.

    python -m tests.bench.agent_overhead [--baseline REV] [--answers N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from emulator import devtokens
from emulator.settings import StackSettings
from emulator.stack import DEMO_TOKEN, ROOT, demo_tools_file
from tests.bench.chat_throughput import DURATION_S, post_script, wrk
from tests.bench.harness import backing, baseline_worktree, median, percentile, running

TARGET_MS = 2.0
THROUGHPUT_TARGET = 0.95
BASELINE = "466a8e0"  # the last revision whose chat had no agent loop
EMULATOR = {"emulator_ttft_ms": 0.0, "emulator_tokens_per_second": 0.0}


class Stopwatch:
    """Sums the time spent inside wrapped coroutines (the model's and the tool's own time)."""

    def __init__(self) -> None:
        self.spent = 0.0

    def wrap(self, call: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await call(*args, **kwargs)
            finally:
                self.spent += time.perf_counter() - started

        return timed


async def loop_overheads(settings: StackSettings, answers: int) -> dict[str, list[float]]:
    """Per answer: loop time minus the model's and the tool's own time (ms), with and without
    a tool step."""
    from shared.agent import config
    from shared.agent.egress import Egress
    from shared.agent.loop import Agent, Answer
    from shared.agent.runner import ToolRunner
    from shared.agent.tools import ToolContext
    from shared.llm.client import LlmClient
    from shared.llm.types import LlmRequest, Turn
    from shared.memorystore import Memorystore
    from shared.settings import load_settings
    from shared.stores.firestore import make_client

    runtime = load_settings(
        environment="test",
        vertex_endpoint=f"127.0.0.1:{settings.stack_vertex_port}",
        redis_url=f"redis://127.0.0.1:{settings.stack_redis_port}/0",
        firestore_emulator_host=f"127.0.0.1:{settings.stack_firestore_port}",
        tool_private_hosts=[f"127.0.0.1:{settings.stack_demo_port}"],
        project_id=settings.project_id,
        daily_token_budget=0,
    )
    db = make_client(runtime)
    store = Memorystore(runtime)
    llm = LlmClient(runtime, store=store, db=db)
    model, tool = Stopwatch(), Stopwatch()
    llm.transport.generate = model.wrap(llm.transport.generate)  # type: ignore[method-assign,assignment]
    egress = Egress(exempt=runtime.tool_private_hosts)
    egress.fetch = tool.wrap(egress.fetch)  # type: ignore[method-assign,assignment]
    os.environ["NGX_DEMO_API_TOKEN"] = DEMO_TOKEN  # as the stack gives its functions
    parsed = config.read(str(demo_tools_file(settings)), runtime.tool_private_hosts)
    registry = config.build(parsed, egress, db, 5.0)
    agent = Agent(runtime, llm, ToolRunner(store, runtime.agent_tool_result_tokens))
    offered = registry.offered(["order_status"], ())
    found: dict[str, list[float]] = {"tool_step": [], "plain": []}

    async def answer(message: str, tools: Any) -> tuple[float, Answer]:
        request = LlmRequest(turns=(Turn("user", message),), subject="user:bench")
        model.spent = tool.spent = 0.0
        started = time.perf_counter()
        done = None
        async for event in agent.run(request, tools, ToolContext("user:bench"), stream=False):
            if isinstance(event, Answer):
                done = event
        total = time.perf_counter() - started
        assert done is not None
        return (total - model.spent - tool.spent) * 1000, done

    for n in range(answers + 20):  # 20 to warm up
        order = f"B-{uuid.uuid4().hex[:8]}"  # a new order each time: the tool really runs
        with_tool, done = await answer(f'tool:order_status {{"order_id": "{order}"}}', offered)
        assert [c.status for c in done.calls] == ["ok"], done.calls
        plain, _ = await answer(f"Tell me about clouds, take {order}", ())
        if n >= 20:
            found["tool_step"].append(with_tool)
            found["plain"].append(plain)
    await egress.close()
    await llm.close()
    db.close()  # type: ignore[no-untyped-call]
    return found


def throughput(settings: StackSettings, baseline: Path, rounds: int) -> dict[str, list[float]]:
    """Cache-hit chat requests per second and function CPU per request (ms), this checkout and
    the baseline, alternating."""
    token = devtokens.local_token(settings, "bench", ttl_s=3600)
    body = {"message": "What does the cache save?"}
    found: dict[str, list[float]] = {
        "current": [],
        "baseline": [],
        "current_cpu": [],
        "baseline_cpu": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        script = post_script(Path(tmp), body, token)
        for _ in range(rounds):
            for name, root in (("current", ROOT), ("baseline", baseline)):
                with running("chat", settings, root=root) as chat:
                    import httpx

                    headers = {"Authorization": f"Bearer {token}"}
                    httpx.post(
                        chat.url + "/v1/chat", json=body, headers=headers, timeout=30
                    ).raise_for_status()
                    wrk(chat.url + "/v1/chat", script, 3)
                    cpu = chat.cpu_s()
                    rate, errors = wrk(chat.url + "/v1/chat", script, DURATION_S)
                    if errors:
                        raise RuntimeError(f"{name}: {errors} non-2xx answers")
                    found[name].append(rate)
                    found[f"{name}_cpu"].append((chat.cpu_s() - cpu) * 1000 / (rate * DURATION_S))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline", default=BASELINE, help="revision before the agent")
    parser.add_argument("--answers", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-overhead", action="store_true", help="throughput only")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is required: sudo apt-get install -y wrk")
        return 2
    only = ("firestore", "redis", "vertex", "auth", "demo-api")
    with backing(only, **EMULATOR) as settings:
        overheads = (
            {"tool_step": [0.0], "plain": [0.0]}
            if args.skip_overhead
            else asyncio.run(loop_overheads(settings, args.answers))
        )
        with (
            tempfile.TemporaryDirectory() as tmp,
            baseline_worktree(args.baseline, Path(tmp)) as worktree,
        ):
            rates = throughput(settings, worktree, args.rounds)
    tool_p50, plain_p50 = median(overheads["tool_step"]), median(overheads["plain"])
    step_ms = tool_p50 - plain_p50
    ratio = median(rates["current"]) / median(rates["baseline"])
    cpu_now, cpu_before = median(rates["current_cpu"]), median(rates["baseline_cpu"])
    result = {
        "benchmark": "agent_overhead",
        "answers": args.answers,
        "tool_step_answer_overhead_ms_p50": round(tool_p50, 3),
        "tool_step_answer_overhead_ms_p95": round(percentile(overheads["tool_step"], 0.95), 3),
        "plain_answer_overhead_ms_p50": round(plain_p50, 3),
        "overhead_per_tool_step_ms_p50": round(step_ms, 3),
        "target_ms": TARGET_MS,
        "cache_hit_rps_current": [round(r, 1) for r in rates["current"]],
        "cache_hit_rps_baseline": [round(r, 1) for r in rates["baseline"]],
        "cpu_ms_per_request_current": [round(c, 3) for c in rates["current_cpu"]],
        "cpu_ms_per_request_baseline": [round(c, 3) for c in rates["baseline_cpu"]],
        "baseline": args.baseline,
        "throughput_ratio": round(ratio, 3),
        "throughput_target": THROUGHPUT_TARGET,
        "pass": step_ms <= TARGET_MS and ratio >= THROUGHPUT_TARGET,
    }
    print(
        f"agent overhead per tool step: {step_ms:.3f} ms p50 (answers with one tool step "
        f"{tool_p50:.3f} ms, without tools {plain_p50:.3f} ms, model and tool time taken out; "
        f"target ≤ {TARGET_MS} ms)"
    )
    print(
        f"cache-hit chat: {median(rates['current']):.0f} req/s with the agent vs "
        f"{median(rates['baseline']):.0f} req/s at {args.baseline} → {ratio:.0%} "
        f"(target ≥ {THROUGHPUT_TARGET:.0%}); function CPU per request {cpu_now:.3f} ms vs "
        f"{cpu_before:.3f} ms"
    )
    print(json.dumps(result))
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
