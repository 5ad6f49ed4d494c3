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
import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from shared import errors
from shared.agent.runner import ToolOutcome, ToolRunner, failure
from shared.agent.schema import parse_answer
from shared.agent.tools import Tool, ToolContext
from shared.llm.client import LlmClient
from shared.llm.types import FunctionCall, FunctionResult, LlmRequest, LlmResult, Turn
from shared.settings import Settings

log = logging.getLogger("agent.routing")


@dataclass(frozen=True)
class CallRecord:
    """One tool call as the caller sees it."""

    id: str
    name: str
    arguments: dict[str, Any]
    status: str
    latency_ms: float
    summary: str
    sources: tuple[dict[str, Any], ...] = ()  # what a tool found to cite (`retrieve`)


@dataclass(frozen=True)
class Pending:
    """The loop's state at a proposed call: what it takes to go on after the decision."""

    request: LlmRequest  # the model request so far (its turns end before the proposing turn)
    calls: tuple[FunctionCall, ...]  # the proposing turn's calls
    text: str  # the proposing turn's text
    results: tuple[FunctionResult | None, ...]  # the other calls' results; None: the proposal
    records: tuple[CallRecord, ...]  # every tool call so far, the proposal last
    tools: tuple[str, ...]  # the tools offered
    rounds: int
    original_tier: str
    index: int = field(default=0)  # which call of the turn is proposed

    @property
    def call(self) -> FunctionCall:
        return self.calls[self.index]


@dataclass(frozen=True)
class ModelUse:
    """Tokens one model spent in the loop."""

    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0
    cached_input_tokens: int = 0


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
    data: Any = None  # the parsed document, when the request set a response schema
    pending: Pending | None = None  # set: the loop paused on a call awaiting the user's decision
    semantic_similarity: float | None = None  # set: the semantic cache answered, this close


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

    def add(self, result: LlmResult, kept: bool = True) -> None:
        """Count a model call; ``kept``: its text is part of the answer (not a rejected one)."""
        use = self.uses.get(result.model, ModelUse(result.model))
        self.uses[result.model] = replace(
            use,
            input_tokens=use.input_tokens + result.input_tokens,
            output_tokens=use.output_tokens + result.output_tokens,
            calls=use.calls + 1,
            cached_input_tokens=use.cached_input_tokens + result.cached_input_tokens,
        )
        if kept:
            self.texts.append(result.text)
        self.steps += 1
        self.cost += result.cost_usd
        self.cached = self.cached and result.cached
        self.fallback = self.fallback or result.fallback

    def answer(
        self,
        last: LlmResult,
        finish: str,
        calls: Sequence[CallRecord],
        data: Any = None,
        final_only: bool = False,
    ) -> Answer:
        """The loop's answer; ``final_only``: its text is the last call's alone (a judged
        answer: what a held stream shows and a structured answer's document), not every
        step's."""
        uses = tuple(self.uses.values())
        if self.steps == 1 and finish == last.finish_reason and not last.function_calls:
            return Answer(last, tuple(calls), uses, 1, data)  # one call: its result as it is
        result = replace(
            last,
            text=last.text if final_only else "".join(self.texts),
            finish_reason=finish,
            input_tokens=sum(u.input_tokens for u in uses),
            output_tokens=sum(u.output_tokens for u in uses),
            cached_input_tokens=sum(u.cached_input_tokens for u in uses),
            cost_usd=self.cost,
            cached=self.cached,
            fallback=self.fallback,
            function_calls=(),
        )
        return Answer(result, tuple(calls), uses, self.steps, data)


REPAIR = (
    "Your previous answer does not conform to the response schema: {problems}. "
    "Answer again with only the JSON document."
)
ESCALATE_ON = frozenset({"MAX_TOKENS", "SAFETY"})


class Agent:
    """Runs the loop for one request at a time; one per process."""

    def __init__(self, settings: Settings, llm: LlmClient, runner: ToolRunner) -> None:
        self._settings = settings
        self._llm = llm
        self._runner = runner

    def tier(self, request: LlmRequest) -> str:
        """The tier that answers first (``auto`` starts with the fast one)."""
        return self._settings.routing_fast_tier if request.tier == "auto" else request.tier

    async def resume(
        self,
        pending: Pending,
        outcome: ToolOutcome,
        tools: Sequence[Tool],
        context: ToolContext,
        stream: bool,
    ) -> AsyncIterator[Event]:
        """Go on after the user's decision on a proposed call: ``outcome`` is the call's result
        (approved and run) or its refusal (denied)."""
        results = tuple(
            r if r is not None else FunctionResult(pending.call.name, outcome.response)
            for r in pending.results
        )
        proposal = pending.records[-1]
        records = (
            *pending.records[:-1],
            replace(
                proposal,
                status=outcome.status,
                latency_ms=outcome.latency_ms,
                summary=outcome.summary,
            ),
        )
        request = replace(
            pending.request,
            tier=pending.original_tier,
            turns=(
                *pending.request.turns,
                Turn(role="model", text=pending.text, calls=pending.calls),
                Turn(role="user", results=results),
            ),
            side_effect_tools=True,  # a confirmed tool acts: what follows is never cached
        )
        async for event in self.run(
            request, tools, context, stream, rounds=pending.rounds, records=records
        ):
            yield event

    async def run(
        self,
        request: LlmRequest,
        tools: Sequence[Tool],
        context: ToolContext,
        stream: bool,
        *,
        rounds: int = 0,
        records: Sequence[CallRecord] = (),
    ) -> AsyncIterator[Event]:
        """The loop's events: text pieces (streamed steps only), tool starts and ends, then the
        `Answer`.

        With tier ``auto`` or a response schema, a streamed answer's text is held until it has
        been judged (and, if need be, escalated or repaired), then sent in one piece."""
        s = self._settings
        deadline = time.monotonic() + s.agent_deadline_s
        offered = {t.name: t for t in tools}
        auto = request.tier == "auto"
        original_tier = request.tier
        held = auto or request.response_schema is not None  # the answer is judged, then shown
        live = stream and not held
        tier, declared = self.tier(request), tuple(t.declaration for t in tools)
        if tier != request.tier or declared != request.tools:
            request = replace(request, tier=tier, tools=declared)
        turns = list(request.turns)
        tally = _Tally()
        made = list(records)
        first = True
        bound: str | None = "max_steps" if rounds >= s.agent_max_steps else None
        while True:
            step = request if first else replace(request, turns=tuple(turns))
            first = False
            if bound is not None:
                step = replace(step, tool_choice="none")
            result: LlmResult | None = None
            async for item in self._ask(step, stream, live):
                if isinstance(item, LlmResult):
                    result = item
                else:
                    yield item
            assert result is not None  # a stream always closes with its result
            if not result.function_calls or not offered or bound is not None:
                final, data = await self._judge(step, result, tally, stream, auto)
                if not live and final.text and stream:
                    yield TextPiece(final.text)
                yield tally.answer(final, bound or final.finish_reason, made, data, held)
                return
            tally.add(result)
            rounds += 1
            calls = result.function_calls
            started = [
                ToolStarted(f"call_{len(made) + i + 1}", c.name, c.args)
                for i, c in enumerate(calls)
            ]
            for event in started:
                yield event
            proposed = next(
                (i for i, c in enumerate(calls) if c.name in offered and offered[c.name].confirm),
                None,
            )
            outcomes = await asyncio.gather(
                *(
                    self._one(offered, c, context, deadline, i, proposed)
                    for i, c in enumerate(calls)
                )
            )
            for event, call, outcome in zip(started, calls, outcomes, strict=True):
                found = outcome.response.get("sources") if outcome.status == "ok" else None
                record = CallRecord(
                    event.id,
                    call.name,
                    call.args,
                    outcome.status,
                    outcome.latency_ms,
                    outcome.summary,
                    tuple(found) if isinstance(found, list) else (),
                )
                if outcome.status != "awaiting_confirmation":
                    made.append(record)
                    yield ToolFinished(record)
            if proposed is not None:
                made.append(
                    CallRecord(
                        started[proposed].id,
                        calls[proposed].name,
                        calls[proposed].args,
                        "awaiting_confirmation",
                        0.0,
                        "",
                    )
                )
                pending = Pending(
                    request=replace(request, turns=tuple(turns), tools=()),
                    calls=calls,
                    text=result.text,
                    results=tuple(
                        None if i == proposed else FunctionResult(c.name, o.response)
                        for i, (c, o) in enumerate(zip(calls, outcomes, strict=True))
                    ),
                    records=tuple(made),
                    tools=tuple(offered),
                    rounds=rounds,
                    original_tier=original_tier,
                    index=proposed,
                )
                paused = tally.answer(result, "confirmation_required", made)
                yield replace(paused, pending=pending)
                return
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

    async def execute(self, tool: Tool, args: dict[str, Any], context: ToolContext) -> ToolOutcome:
        """Run one approved call (the user confirmed it)."""
        return await self._runner.call(tool, args, context)

    async def _ask(
        self, step: LlmRequest, stream: bool, live: bool
    ) -> AsyncIterator[TextPiece | LlmResult]:
        """One model call: its text pieces when ``live``, then its result."""
        if not stream:
            yield await self._llm.generate(step)
            return
        async for chunk in self._llm.stream(step):
            if chunk.text and live:
                yield TextPiece(chunk.text)
            if chunk.result is not None:
                yield chunk.result

    async def _judge(
        self, step: LlmRequest, result: LlmResult, tally: _Tally, stream: bool, auto: bool
    ) -> tuple[LlmResult, Any]:
        """The final answer, escalated (tier ``auto``) and repaired (response schema) as needed,
        with its parsed document; every model call is counted in ``tally``."""
        shape = json.loads(step.response_schema) if step.response_schema else None
        data, problems = parse_answer(result.text, shape) if shape is not None else (None, [])
        if auto:
            reason = escalation_reason(result, problems, self._settings.routing_min_avg_logprobs)
            if reason is not None:
                tally.add(result, kept=False)
                quality = self._settings.routing_quality_tier
                log.info(
                    "agent escalation",
                    extra={"reason": reason, "from_model": result.model, "to_tier": quality},
                )
                step = replace(step, tier=quality, tool_choice="none")  # an answer, no calls
                result = await self._answer(step, stream)
                if shape is not None:
                    data, problems = parse_answer(result.text, shape)
        if shape is not None and problems:
            tally.add(result, kept=False)
            repair = Turn(role="user", text=REPAIR.format(problems="; ".join(problems[:5])))
            turns = (*step.turns, Turn(role="model", text=result.text), repair)
            result = await self._answer(replace(step, turns=turns, tool_choice="none"), stream)
            data, problems = parse_answer(result.text, shape)
            if problems:
                tally.add(result, kept=False)
                raise errors.InvalidModelOutput(
                    "the model's answer does not conform to the response schema, even after a "
                    "repair: " + "; ".join(problems[:3]),
                    details=[{"field": "response_schema", "problem": p} for p in problems[:10]],
                )
        tally.add(result)
        return result, data

    async def _answer(self, step: LlmRequest, stream: bool) -> LlmResult:
        """One more model call whose text is judged before it is shown."""
        found: LlmResult | None = None
        async for item in self._ask(step, stream, live=False):
            if isinstance(item, LlmResult):
                found = item
        assert found is not None
        return found

    async def _one(
        self,
        offered: dict[str, Tool],
        call: FunctionCall,
        context: ToolContext,
        deadline: float,
        index: int,
        proposed: int | None,
    ) -> ToolOutcome:
        """One call of a turn: unknown tools and calls past the per-turn limit are errors; the
        proposed call (a tool needing confirmation) waits, and any other such call is refused
        (one action is proposed at a time)."""
        tool = offered.get(call.name)
        if tool is None:
            return ToolOutcome(
                "error", failure("unknown_tool", f"no tool named {call.name!r}"), 0.0
            )
        if index == proposed:
            return ToolOutcome("awaiting_confirmation", {}, 0.0)
        if tool.confirm:
            return ToolOutcome(
                "error",
                failure("one_action_at_a_time", "another action awaits the user's confirmation"),
                0.0,
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


def escalation_reason(result: LlmResult, problems: list[str], min_logprobs: float) -> str | None:
    """Why a fast answer should go to the quality model (``None``: it stands)."""
    if result.finish_reason in ESCALATE_ON:
        return result.finish_reason.lower()
    if problems:
        return "invalid_output"
    if result.avg_logprobs is not None and result.avg_logprobs < min_logprobs:
        return "low_confidence"
    return None
