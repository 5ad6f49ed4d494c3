"""The agent loop: one implementation for chat, stream and sessions.

Ask the model; when it calls functions, run them (the calls of one turn concurrently), send their
results back, and ask again, until it answers in text or a bound is reached: ``agent_max_steps``
rounds of tool calls or ``agent_deadline_s`` overall. At a bound the model is asked once more with
function calling turned off, so an answer still arrives; its finish reason says which bound
(``max_steps``, ``deadline``). Every model call of the loop is counted in the usage.

A step's model request is cached like any other, keyed by what it carries: a step whose prompt
holds the result of a tool that is not idempotent is never cached, and one holding a private
tool's result is cached for its caller only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from shared.agent.runner import ToolOutcome, ToolRunner, failure
from shared.agent.tools import Tool, ToolContext
from shared.llm.client import LlmClient
from shared.llm.types import FunctionCall, FunctionResult, LlmRequest, LlmResult, Turn
from shared.settings import Settings


@dataclass(frozen=True)
class CallRecord:
    """One tool call as the caller sees it."""

    id: str
    name: str
    arguments: dict[str, Any]
    status: str
    latency_ms: float
    summary: str


@dataclass(frozen=True)
class ModelUse:
    """Tokens one model spent in the loop."""

    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0


@dataclass(frozen=True)
class TextPiece:
    text: str


@dataclass(frozen=True)
class ToolStarted:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class ToolFinished:
    record: CallRecord


@dataclass(frozen=True)
class Answer:
    """The loop's end: the answer with the whole loop's tokens and cost, and every tool call."""

    result: LlmResult
    calls: tuple[CallRecord, ...] = ()
    models: tuple[ModelUse, ...] = ()
    steps: int = 1


Event = TextPiece | ToolStarted | ToolFinished | Answer


@dataclass
class _Tally:
    """What the loop has spent so far."""

    uses: dict[str, ModelUse] = field(default_factory=dict)
    texts: list[str] = field(default_factory=list)
    steps: int = 0
    cost: float = 0.0
    cached: bool = True
    fallback: bool = False

    def add(self, result: LlmResult) -> None:
        use = self.uses.get(result.model, ModelUse(result.model))
        self.uses[result.model] = replace(
            use,
            input_tokens=use.input_tokens + result.input_tokens,
            output_tokens=use.output_tokens + result.output_tokens,
            calls=use.calls + 1,
        )
        self.texts.append(result.text)
        self.steps += 1
        self.cost += result.cost_usd
        self.cached = self.cached and result.cached
        self.fallback = self.fallback or result.fallback

    def answer(self, last: LlmResult, finish: str, calls: Sequence[CallRecord]) -> Answer:
        uses = tuple(self.uses.values())
        result = replace(
            last,
            text="".join(self.texts),
            finish_reason=finish,
            input_tokens=sum(u.input_tokens for u in uses),
            output_tokens=sum(u.output_tokens for u in uses),
            cost_usd=self.cost,
            cached=self.cached,
            fallback=self.fallback,
            function_calls=(),
        )
        return Answer(result, tuple(calls), uses, self.steps)


class Agent:
    """Runs the loop for one request at a time; one per process."""

    def __init__(self, settings: Settings, llm: LlmClient, runner: ToolRunner) -> None:
        self._settings = settings
        self._llm = llm
        self._runner = runner

    async def run(
        self,
        request: LlmRequest,
        tools: Sequence[Tool],
        context: ToolContext,
        stream: bool,
    ) -> AsyncIterator[Event]:
        """The loop's events: text pieces (streamed steps only), tool starts and ends, then the
        `Answer`."""
        s = self._settings
        deadline = time.monotonic() + s.agent_deadline_s
        offered = {t.name: t for t in tools}
        request = replace(request, tools=tuple(t.declaration for t in tools))
        turns = list(request.turns)
        tally = _Tally()
        records: list[CallRecord] = []
        rounds = 0
        bound: str | None = None
        while True:
            step = request if rounds == 0 else replace(request, turns=tuple(turns))
            if bound is not None:
                step = replace(step, tool_choice="none")
            result: LlmResult | None = None
            if stream:
                async for chunk in self._llm.stream(step):
                    if chunk.text:
                        yield TextPiece(chunk.text)
                    if chunk.result is not None:
                        result = chunk.result
            else:
                result = await self._llm.generate(step)
            assert result is not None  # a stream always closes with its result
            tally.add(result)
            if not result.function_calls or not offered or bound is not None:
                yield tally.answer(result, bound or result.finish_reason, records)
                return
            rounds += 1
            calls = result.function_calls
            started = [
                ToolStarted(f"call_{len(records) + i + 1}", c.name, c.args)
                for i, c in enumerate(calls)
            ]
            for event in started:
                yield event
            outcomes = await asyncio.gather(
                *(self._one(offered, c, context, deadline, i) for i, c in enumerate(calls))
            )
            for event, call, outcome in zip(started, calls, outcomes, strict=True):
                record = CallRecord(
                    event.id,
                    call.name,
                    call.args,
                    outcome.status,
                    outcome.latency_ms,
                    outcome.summary,
                )
                records.append(record)
                yield ToolFinished(record)
            turns.append(Turn(role="model", text=result.text, calls=calls))
            turns.append(
                Turn(
                    role="user",
                    results=tuple(
                        FunctionResult(c.name, o.response)
                        for c, o in zip(calls, outcomes, strict=True)
                    ),
                )
            )
            used = [offered[c.name] for c in calls if c.name in offered]
            if any(not t.idempotent for t in used):
                request = replace(request, side_effect_tools=True)
            if any(t.private for t in used):
                request = replace(request, cache_scope=context.subject)
            if rounds >= s.agent_max_steps:
                bound = "max_steps"
            elif time.monotonic() >= deadline:
                bound = "deadline"

    async def _one(
        self,
        offered: dict[str, Tool],
        call: FunctionCall,
        context: ToolContext,
        deadline: float,
        index: int,
    ) -> ToolOutcome:
        """One call of a turn: unknown tools and calls past the per-turn limit are errors."""
        tool = offered.get(call.name)
        if tool is None:
            return ToolOutcome(
                "error", failure("unknown_tool", f"no tool named {call.name!r}"), 0.0
            )
        if index >= self._settings.agent_max_calls_per_step:
            return ToolOutcome(
                "error",
                failure("too_many_calls", "too many calls in one turn; call fewer at a time"),
                0.0,
            )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return ToolOutcome("timeout", failure("timeout", "the request's time ran out"), 0.0)
        return await self._runner.call(tool, call.args, context, timeout_s=remaining)
