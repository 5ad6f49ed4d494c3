"""Running one tool call: validate the model's arguments, serve or fill the result cache, enforce
the timeout, bound the result to a token budget, and report a span and a log line.

Whatever happens, the outcome is a `ToolOutcome`: a failing, refused or hanging tool becomes a
structured error the model reads (``{"error": {"code", "message"}}``), never an exception for
the caller. Arguments are never logged; the log line names the tool, status and latency.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from shared import telemetry
from shared.agent.connectors import ToolFailed
from shared.agent.tools import Tool, ToolContext
from shared.llm.accounting import estimate_tokens
from shared.llm.cache import PREFIX, own
from shared.memorystore import Memorystore, StoreUnavailable

log = logging.getLogger("agent.tools")
SUMMARY_CHARS = 240


@dataclass(frozen=True)
class ToolOutcome:
    """One finished call: what the model is sent (``response``) and what the caller is told."""

    status: str  # ok | error | timeout | refused | invalid_arguments | denied
    response: dict[str, Any]
    latency_ms: float
    cached: bool = False

    @property
    def summary(self) -> str:
        """The result (or error) in a line, for the caller's `tool_calls`."""
        text = json.dumps(self.response, ensure_ascii=False, separators=(",", ":"))
        return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"


def failure(code: str, message: str) -> dict[str, Any]:
    """The structured error a model is given for a call that produced no result."""
    return {"error": {"code": code, "message": message}}


def result_key(tool: Tool, arguments: dict[str, Any], subject: str) -> str:
    """Where an idempotent tool's result is cached: per arguments (and caller, when private)."""
    material = json.dumps(arguments, sort_keys=True, separators=(",", ":"))
    if tool.private:
        material += "\x1f" + subject
    return f"{PREFIX}:tool:{tool.name}:{hashlib.sha256(material.encode()).hexdigest()}"


def bounded(response: dict[str, Any], budget_tokens: int) -> dict[str, Any]:
    """``response`` if it fits the token budget, else its JSON cut to fit, saying so."""
    text = json.dumps(response, ensure_ascii=False, separators=(",", ":"))
    tokens = estimate_tokens(text)
    if tokens <= budget_tokens:
        return response
    return {
        "truncated": f"this result was cut to about {budget_tokens} of its {tokens} tokens",
        "content": text[: budget_tokens * 4],
    }


class ToolRunner:
    """Executes calls; one per process."""

    def __init__(self, store: Memorystore | None, result_tokens: int) -> None:
        self._store = store
        self._result_tokens = result_tokens
        self._writes: set[asyncio.Task[None]] = set()  # result cache writes under way

    async def call(
        self,
        tool: Tool,
        args: dict[str, Any],
        context: ToolContext,
        timeout_s: float | None = None,
    ) -> ToolOutcome:
        """Run one call within the tool's timeout (and ``timeout_s``, what the request has left)."""
        started = time.perf_counter()
        limit = min(tool.timeout_s, timeout_s) if timeout_s is not None else tool.timeout_s
        attributes = {"tool.name": tool.name, "tool.kind": tool.kind}
        with telemetry.span("agent.tool", **attributes) as span:
            outcome = await self._call(tool, args, context, started, limit)
            span.set_attribute("tool.status", outcome.status)
            span.set_attribute("tool.cached", outcome.cached)
        level = logging.INFO if outcome.status in ("ok", "denied") else logging.WARNING
        log.log(
            level,
            "tool call",
            extra={
                "tool": tool.name,
                "tool_kind": tool.kind,
                "status": outcome.status,
                "latency_ms": outcome.latency_ms,
                "cache_hit": outcome.cached,
            },
        )
        return outcome

    async def _call(
        self, tool: Tool, args: dict[str, Any], context: ToolContext, started: float, limit: float
    ) -> ToolOutcome:
        def done(status: str, response: dict[str, Any], cached: bool = False) -> ToolOutcome:
            latency = round((time.perf_counter() - started) * 1000, 2)
            return ToolOutcome(status, bounded(response, self._result_tokens), latency, cached)

        try:
            arguments = tool.arguments.model_validate(args)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                for e in exc.errors()
            )
            return done("invalid_arguments", failure("invalid_arguments", problems))
        canonical = arguments.model_dump(mode="json", exclude_none=True)
        key = result_key(tool, canonical, context.subject) if tool.idempotent else None
        if key is not None and (hit := await self._cached(key)) is not None:
            return done("ok", hit, cached=True)
        try:
            result = await asyncio.wait_for(tool.run(arguments, context), limit)
        except TimeoutError:
            return done("timeout", failure("timeout", f"no result within {limit:.3g} s"))
        except ToolFailed as exc:
            status = exc.code if exc.code in ("refused", "invalid_arguments") else "error"
            return done(status, failure(exc.code, exc.message))
        except Exception as exc:  # a tool's own bug must not fail the caller's request
            log.exception("tool raised", extra={"tool": tool.name})
            return done("error", failure("tool_error", f"the tool failed ({type(exc).__name__})"))
        response = result if isinstance(result, dict) else {"result": result}
        if key is not None:  # off the answer's path: the model need not wait for the write
            write = asyncio.create_task(self._remember(key, response, tool, context.subject))
            self._writes.add(write)
            write.add_done_callback(self._writes.discard)
        return done("ok", response)

    async def _cached(self, key: str) -> dict[str, Any] | None:
        if self._store is None:
            return None
        try:
            raw = await self._store.run(lambda r: r.get(key))
        except StoreUnavailable:
            return None
        found: dict[str, Any] | None = json.loads(raw) if raw else None
        return found

    async def _remember(self, key: str, response: dict[str, Any], tool: Tool, subject: str) -> None:
        if self._store is None or tool.cache_ttl_s is None:
            return
        ttl = tool.cache_ttl_s
        payload = json.dumps(response, separators=(",", ":"))

        async def write(r: Any) -> None:
            pipe = r.pipeline(transaction=False)
            pipe.set(key, payload, ex=ttl)
            if tool.private:
                own(pipe, subject, [key], ttl)  # erased with the caller
            await pipe.execute()

        try:
            await self._store.run(write)
        except StoreUnavailable:
            return
