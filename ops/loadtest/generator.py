"""Open-loop load: every request leaves at its scheduled time, however slow the answers are.

Arrival times are drawn up front (a non-homogeneous Poisson process following the scenario's rate,
seeded), so a slow server meets the same offered load as a fast one; how late each request left
against its schedule is recorded, which shows whether the generator itself kept up.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ops.loadtest.scenario import Scenario


@dataclass
class Target:
    """Where to send and how to sign each user's requests."""

    chat_url: str
    stream_url: str
    headers: Callable[[int], dict[str, str]]


@dataclass
class Record:
    index: int
    kind: str
    user: int
    scheduled_s: float
    sent_s: float
    finished_s: float = 0.0
    status: int = 0
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    error: str = ""
    cached: bool | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    model: str = ""
    repeat: bool = False
    follow_up: bool = False

    @property
    def ok(self) -> bool:
        return self.status == 200 and not self.error


@dataclass
class Planned:
    at_s: float
    kind: str
    user: int
    prompt: str
    repeat: bool
    follow_up: bool


def arrivals(scenario: Scenario, seed: int) -> list[float]:
    """Send times: Poisson arrivals at the peak rate, thinned to the scenario's rate over time."""
    rng = random.Random(seed)
    peak, t = scenario.peak_rps(), 0.0
    found: list[float] = []
    if peak <= 0:
        return []
    while True:
        t += rng.expovariate(peak)
        if t >= scenario.duration_s:
            return found
        if rng.random() * peak <= scenario.rate_at(t):
            found.append(t)


def plan(scenario: Scenario, seed: int) -> list[Planned]:
    """Every request of the run: when, which function, whose, which prompt."""
    rng = random.Random(seed + 1)
    kinds, weights = zip(*scenario.mix.items(), strict=True)
    planned = []
    for at in arrivals(scenario, seed):
        repeat = rng.random() < scenario.repeat_share
        prompt = (
            f"Tell me about topic {rng.randrange(scenario.prompt_pool)}."
            if repeat
            else f"A fresh question {uuid.UUID(int=rng.getrandbits(128)).hex[:12]}?"
        )
        follow_up = not repeat and rng.random() < 1 - 1 / scenario.conversation_depth
        planned.append(
            Planned(
                at,
                rng.choices(kinds, weights)[0],
                rng.randrange(scenario.users),
                prompt,
                repeat,
                follow_up,
            )
        )
    return planned


@dataclass
class Live:
    """What the progress line shows."""

    sent: int = 0
    done: int = 0
    errors: int = 0
    in_flight: int = 0
    recent: list[tuple[float, float]] = field(default_factory=list)  # (finished, latency ms)


class Generator:
    def __init__(self, scenario: Scenario, target: Target, seed: int = 2026) -> None:
        self.scenario = scenario
        self.target = target
        self.seed = seed
        self.live = Live()
        self.records: list[Record] = []
        self._conversations: dict[int, list[str]] = {}

    async def run(self, progress: Callable[[Live, float], None] | None = None) -> list[Record]:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=self.scenario.timeout_s)
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            warmup = self.scenario.warmup()
            if warmup is not None:  # same session: its connections stay open for the run
                await self._phase(session, plan(warmup, self.seed + 7), [], None)
                self.live = Live()
                self._conversations.clear()
            await self._phase(session, plan(self.scenario, self.seed), self.records, progress)
        return self.records

    async def _phase(
        self,
        session: Any,
        planned: list[Planned],
        records: list[Record],
        progress: Callable[[Live, float], None] | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        ticker = asyncio.create_task(self._tick(start, progress)) if progress else None
        tasks = []
        for index, item in enumerate(planned):
            delay = start + item.at_s - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            sent = loop.time() - start
            record = Record(
                index,
                item.kind,
                item.user,
                item.at_s,
                sent,
                repeat=item.repeat,
                follow_up=item.follow_up,
            )
            records.append(record)
            self.live.sent += 1
            tasks.append(asyncio.create_task(self._one(session, item, record, start)))
        await asyncio.gather(*tasks)
        if ticker is not None:
            ticker.cancel()

    async def _tick(self, start: float, progress: Callable[[Live, float], None]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(1.0)
            progress(self.live, loop.time() - start)

    async def _one(self, session: Any, item: Planned, record: Record, start: float) -> None:
        loop = asyncio.get_running_loop()
        body: dict[str, Any] = {"message": item.prompt}
        pool = self._conversations.get(item.user)
        if item.follow_up and pool:
            body["conversation_id"] = random.Random(record.index).choice(pool)
        self.live.in_flight += 1
        began = time.perf_counter()
        try:
            if item.kind == "chat":
                await self._chat(session, body, record, item.user)
            else:
                await self._stream(session, body, record, item.user, began)
        except Exception as exc:  # transport failures are results, not crashes
            record.error = f"transport:{type(exc).__name__}"
        finally:
            record.latency_ms = (time.perf_counter() - began) * 1000
            record.finished_s = loop.time() - start
            self.live.in_flight -= 1
            self.live.done += 1
            self.live.errors += not record.ok
            self.live.recent.append((record.finished_s, record.latency_ms))

    def _remember(self, user: int, conversation_id: str | None) -> None:
        if conversation_id:
            pool = self._conversations.setdefault(user, [])
            pool.append(conversation_id)
            del pool[:-20]

    async def _chat(self, session: Any, body: dict[str, Any], record: Record, user: int) -> None:
        headers = self.target.headers(user)
        async with session.post(
            self.target.chat_url + "/v1/chat", json=body, headers=headers
        ) as response:
            record.status = response.status
            payload = await response.read()
        data = _json(payload)
        if record.status != 200:
            record.error = _code(data, record.status)
            return
        usage = data.get("usage", {})
        record.cached = bool(usage.get("cached"))
        record.tokens_in = int(usage.get("input_tokens", 0))
        record.tokens_out = int(usage.get("output_tokens", 0))
        record.model = str(usage.get("model", ""))
        self._remember(user, data.get("conversation_id"))

    async def _stream(
        self, session: Any, body: dict[str, Any], record: Record, user: int, began: float
    ) -> None:
        headers = self.target.headers(user)
        event = ""
        finished = False
        conversation: str | None = None
        async with session.post(
            self.target.stream_url + "/v1/chat:stream", json=body, headers=headers
        ) as response:
            record.status = response.status
            if response.status != 200:
                record.error = _code(_json(await response.read()), response.status)
                return
            async for raw in response.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line[7:]
                    if event == "delta" and record.ttft_ms is None:
                        record.ttft_ms = (time.perf_counter() - began) * 1000
                    finished = finished or event == "done"
                elif line.startswith("data: "):
                    data = _json(line[6:].encode())
                    if event == "meta":
                        conversation = data.get("conversation_id")
                    elif event == "usage":
                        record.cached = bool(data.get("cached"))
                        record.tokens_in = int(data.get("input_tokens", 0))
                        record.tokens_out = int(data.get("output_tokens", 0))
                        record.model = str(data.get("model", ""))
                    elif event == "error":
                        record.error = _code(data, 200)
        if not finished and not record.error:
            record.error = "stream_incomplete"
        elif finished:  # a conversation can be continued once its turn is stored
            self._remember(user, conversation)


def _json(payload: bytes) -> dict[str, Any]:
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _code(data: dict[str, Any], status: int) -> str:
    error = data.get("error", data)
    code = error.get("code") if isinstance(error, dict) else None
    return str(code) if code else f"http_{status}"
