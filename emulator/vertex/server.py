"""A gRPC stand-in for Vertex AI's PredictionService and LlmUtilityService, plus an admin HTTP API.

It speaks the real protocol (the SDK's own proto types serialize every message), so the unmodified
``aiplatform_v1`` client works against it. Answers are deterministic; timing follows a latency model
(time to first token, then tokens per second); every call is counted per model and method so tests
can prove what reached the model.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import json_format
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from emulator.vertex import agentgen, embeddings, textgen
from shared.llm import sdk

PREDICTION = "google.cloud.aiplatform.v1.PredictionService"
LLM_UTILITY = "google.cloud.aiplatform.v1.LlmUtilityService"
DEFAULT_MODELS = ("gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.0-flash-001")
EMBEDDING_MODELS = ("text-embedding-005", "text-multilingual-embedding-002")
MAX_EMBEDDING_INSTANCES = 250  # Vertex AI's limit of texts per embedding request
STREAM_LEDGER = 10_000


def prompt_digest(text: str) -> str:
    """How the stream ledger names a prompt without keeping its text."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class LatencyModel:
    """How long answers take: a fixed time to first token, then a steady token rate."""

    ttft_ms: float = 150.0
    tokens_per_second: float = 200.0
    chunk_tokens: int = 4

    def chunk_delay(self, tokens: int) -> float:
        return tokens / self.tokens_per_second if self.tokens_per_second > 0 else 0.0


@dataclass
class Fault:
    """Misbehaviour injected for one model (or ``*``): errors, latency, hangs, broken streams."""

    error_rate: float = 0.0
    status: str = "UNAVAILABLE"
    latency_ms: float = 0.0
    hang: bool = False
    slow_stream_ms: float = 0.0
    fail_after_chunks: int | None = None
    fail_first: int = 0  # the next N calls fail with ``status``, then calls succeed
    seed: int | None = None
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError("error_rate must be between 0 and 1")
        if self.fail_first < 0:
            raise ValueError("fail_first must not be negative")
        if self.status not in grpc.StatusCode.__members__:
            raise ValueError(f"unknown gRPC status {self.status!r}")
        self.rng = random.Random(self.seed)

    @property
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode[self.status]

    def describe(self) -> dict[str, Any]:
        return {
            "error_rate": self.error_rate,
            "status": self.status,
            "latency_ms": self.latency_ms,
            "hang": self.hang,
            "slow_stream_ms": self.slow_stream_ms,
            "fail_after_chunks": self.fail_after_chunks,
        }


@dataclass
class Plan:
    """One answer: its words (none for a function call), finish reason, prompt tokens and the
    decision behind it."""

    words: list[str]
    finish: str
    prompt_tokens: int
    decision: agentgen.Decision
    cached_tokens: int = 0  # of the prompt, served from the implicit cache

    @property
    def output_tokens(self) -> int:
        if self.decision.calls:
            return textgen.count_tokens(json.dumps(args) for _, args in self.decision.calls) + 1
        return len(self.words)


@dataclass
class EmulatorState:
    """Configuration and the call ledger that the admin API reports."""

    latency: LatencyModel = field(default_factory=LatencyModel)
    answer_tokens: int = 48
    models: tuple[str, ...] = DEFAULT_MODELS
    calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    cancelled: Counter[tuple[str, str]] = field(default_factory=Counter)
    faults: dict[str, Fault] = field(default_factory=dict)
    # Recent streamed calls, for latency measurements: prompt digest and first-chunk time.
    streams: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=STREAM_LEDGER))
    embedded_texts: int = 0  # texts embedded since the last reset
    # Implicit prompt caching: prefix digest → when its cache entry ends (monotonic seconds).
    prefixes: dict[str, float] = field(default_factory=dict)
    implicit_cache_min_tokens: int = 32  # Gemini's minimum is 1,024 tokens; words here
    implicit_cache_ttl_s: float = 300.0
    # Recent generate calls: the tools declared to the model and the functions it called.
    requests: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=STREAM_LEDGER))

    def fault_for(self, model: str) -> Fault | None:
        return self.faults.get(model) or self.faults.get("*")

    def report(self) -> dict[str, Any]:
        by_model: dict[str, dict[str, int]] = {}
        for (model, method), count in sorted(self.calls.items()):
            by_model.setdefault(model, {})[method] = count
        cancelled: dict[str, dict[str, int]] = {}
        for (model, method), count in sorted(self.cancelled.items()):
            cancelled.setdefault(model, {})[method] = count
        return {
            "calls": by_model,
            "total": sum(self.calls.values()),
            "cancelled": cancelled,
            "embedded_texts": self.embedded_texts,
        }

    def reset(self) -> None:
        self.calls.clear()
        self.cancelled.clear()
        self.faults.clear()
        self.streams.clear()
        self.requests.clear()
        self.embedded_texts = 0
        self.prefixes.clear()


def tool_texts(request: Any) -> list[str]:
    """The tool declarations of a request as the text they count as."""
    return [
        f"{name} {description} {json.dumps(schema, sort_keys=True)}"
        for name, description, schema in agentgen.declarations(request)
    ]


def model_id(resource: str) -> str:
    """``projects/p/locations/l/publishers/google/models/NAME`` → ``NAME``."""
    return resource.rsplit("/models/", 1)[-1] if "/models/" in resource else resource


class VertexEmulator:
    """The servicer: one object serves both gRPC services."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.types = sdk.prediction_types()
        self.content = sdk.content_types()

    async def _check_model(
        self, request: Any, context: grpc.aio.ServicerContext, method: str
    ) -> str:
        name = model_id(request.model)
        self.state.calls[(name, method)] += 1
        if name not in self.state.models:
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"Publisher Model `{request.model}` was not found or your project does not have "
                "access to it.",
            )
        fault = self.state.fault_for(name)
        if fault is not None:
            if fault.latency_ms:
                await asyncio.sleep(fault.latency_ms / 1000)
            if fault.hang:
                await asyncio.Event().wait()  # until the caller's deadline cancels the call
            if fault.fail_first > 0:
                fault.fail_first -= 1
                await context.abort(fault.code, f"injected {fault.status} for {name}")
            if fault.error_rate and fault.rng.random() < fault.error_rate:
                await context.abort(fault.code, f"injected {fault.status} for {name}")
        return name

    def _prompt(self, request: Any) -> tuple[str, str, int]:
        """Request identity key, last user text and prompt token count."""
        texts = [p.text for c in request.contents for p in c.parts]
        system = [p.text for p in request.system_instruction.parts]
        last_user = agentgen.latest_text(request)
        config = request.generation_config
        key_material = "\x1e".join(
            [model_id(request.model), *system, "\x1f"]
            + [f"{c.role}:{''.join(p.text for p in c.parts)}" for c in request.contents]
            + [f"{config.temperature:.3f}"]
        )
        key = hashlib.sha256(key_material.encode()).hexdigest()
        return key, last_user, textgen.count_tokens(texts + system)

    def _cached_prefix(self, request: Any) -> int:
        """Implicit prompt caching: the tokens of the request's stable prefix (system instruction
        and tool declarations) when the same prefix reached this model within the cache's life
        and is at least ``implicit_cache_min_tokens`` long; 0 otherwise."""
        system = [p.text for p in request.system_instruction.parts]
        tools = tool_texts(request)
        tokens = textgen.count_tokens(system + tools)
        digest = hashlib.sha256(
            "\x1e".join([model_id(request.model), *system, *tools]).encode()
        ).hexdigest()
        now = time.monotonic()
        seen = self.state.prefixes.get(digest)
        self.state.prefixes[digest] = now + self.state.implicit_cache_ttl_s
        if tokens < self.state.implicit_cache_min_tokens or seen is None or seen < now:
            return 0
        return tokens

    def _plan(self, request: Any) -> Plan:
        key, last_user, prompt_tokens = self._prompt(request)
        decision = agentgen.decide(request)
        prompt_tokens += agentgen.function_tokens(request)
        prompt_tokens += textgen.count_tokens(tool_texts(request))  # declarations are input too
        cached = self._cached_prefix(request)
        self.state.requests.append(
            {
                "model": model_id(request.model),
                "prompt": prompt_digest(last_user),
                "tools": [name for name, _, _ in agentgen.declarations(request)],
                "function_calling": "none" if agentgen.calling_off(request) else "auto",
                "response_schema": agentgen.response_schema(request) is not None,
                "calls": [name for name, _ in decision.calls],
                "function_response_chars": agentgen.function_response_chars(request),
                "system_instruction_chars": sum(
                    len(part.text) for part in request.system_instruction.parts
                ),
            }
        )
        if decision.calls:
            return Plan([], "STOP", prompt_tokens, decision, cached)
        if decision.text is not None:
            words = decision.text.split(" ")
        else:
            words = textgen.answer_words(key, last_user, self.state.answer_tokens)
        limit = request.generation_config.max_output_tokens
        finish = "STOP"
        if limit and len(words) > limit:
            words, finish = words[:limit], "MAX_TOKENS"
        return Plan(words, finish, prompt_tokens, decision, cached)

    def _response(
        self,
        text: str,
        finish: str | None,
        prompt: int,
        output: int | None,
        decision: agentgen.Decision | None = None,
        cached: int = 0,
    ) -> Any:
        content = self.content
        parts = [content.Part(text=text)] if text or decision is None or not decision.calls else []
        if decision is not None and decision.calls:
            tool = sdk.load("types.tool")
            parts += [
                content.Part(function_call=tool.FunctionCall(name=name, args=args))
                for name, args in decision.calls
            ]
        candidate = content.Candidate(index=0, content=content.Content(role="model", parts=parts))
        if finish:
            candidate.finish_reason = content.Candidate.FinishReason[finish]
            if decision is not None:
                candidate.avg_logprobs = decision.avg_logprobs
        response = self.types.GenerateContentResponse(candidates=[candidate], model_version="emu-1")
        if output is not None:
            response.usage_metadata = self.types.GenerateContentResponse.UsageMetadata(
                prompt_token_count=prompt,
                candidates_token_count=output,
                total_token_count=prompt + output,
                cached_content_token_count=cached,
            )
        return response

    async def generate_content(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await self._check_model(request, context, "GenerateContent")
        plan = self._plan(request)
        latency = self.state.latency
        await asyncio.sleep(latency.ttft_ms / 1000 + latency.chunk_delay(len(plan.words)))
        return self._response(
            " ".join(plan.words),
            plan.finish,
            plan.prompt_tokens,
            plan.output_tokens,
            plan.decision,
            plan.cached_tokens,
        )

    async def stream_generate_content(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            name = await self._check_model(request, context, "StreamGenerateContent")
        except asyncio.CancelledError:  # cancelled while an injected latency held the call
            self.state.cancelled[(model_id(request.model), "StreamGenerateContent")] += 1
            raise
        plan = self._plan(request)
        words, finish, prompt = plan.words, plan.finish, plan.prompt_tokens
        latency = self.state.latency
        _, last_user, _ = self._prompt(request)
        record: dict[str, Any] = {"model": name, "prompt": prompt_digest(last_user)}
        self.state.streams.append(record)
        size = max(1, latency.chunk_tokens)
        fault = self.state.fault_for(name)
        extra = fault.slow_stream_ms / 1000 if fault else 0.0
        break_after = fault.fail_after_chunks if fault else None
        try:
            await asyncio.sleep(latency.ttft_ms / 1000)
            if plan.decision.calls:
                record["first_chunk_ns"] = time.monotonic_ns()
                yield self._response(
                    "", finish, prompt, plan.output_tokens, plan.decision, plan.cached_tokens
                )
                return
            for index, start in enumerate(range(0, max(len(words), 1), size)):
                piece = words[start : start + size]
                if break_after is not None and index >= break_after:
                    assert fault is not None
                    await context.abort(fault.code, f"injected stream failure for {name}")
                if start:
                    await asyncio.sleep(latency.chunk_delay(len(piece)) + extra)
                last = start + size >= len(words)
                text = (" " if start else "") + " ".join(piece)
                if not start:
                    record["first_chunk_ns"] = time.monotonic_ns()  # system-wide clock
                yield self._response(
                    text,
                    finish if last else None,
                    prompt,
                    len(words) if last else None,
                    plan.decision,
                    plan.cached_tokens,
                )
        except asyncio.CancelledError:
            self.state.cancelled[(name, "StreamGenerateContent")] += 1
            raise

    async def predict(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """Text embeddings (``instances=[{"content": ...}]``), as text-embedding models answer."""
        name = model_id(request.endpoint)
        self.state.calls[(name, "Predict")] += 1
        if name not in EMBEDDING_MODELS:
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"Publisher Model `{request.endpoint}` was not found"
            )
        fault = self.state.fault_for(name)
        if fault is not None and fault.fail_first > 0:
            fault.fail_first -= 1
            await context.abort(fault.code, f"injected {fault.status} for {name}")
        raw = type(request).pb(request)
        if len(raw.instances) > MAX_EMBEDDING_INSTANCES:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{len(raw.instances)} instances; at most {MAX_EMBEDDING_INSTANCES} per request",
            )
        parameters = json_format.MessageToDict(raw.parameters) if raw.HasField("parameters") else {}
        dimensions = int(parameters.get("outputDimensionality") or embeddings.DIMENSIONS)
        predictions = []
        for instance in raw.instances:
            content = json_format.MessageToDict(instance).get("content", "")
            text = content if isinstance(content, str) else ""
            self.state.embedded_texts += 1
            predictions.append(
                {
                    "embeddings": {
                        "values": embeddings.embed(text, dimensions),
                        "statistics": {
                            "token_count": embeddings.token_count(text),
                            "truncated": False,
                        },
                    }
                }
            )
        response = self.types.PredictResponse()
        raw_response = type(response).pb(response)
        for prediction in predictions:
            json_format.ParseDict(prediction, raw_response.predictions.add())
        return response

    async def count_tokens(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await self._check_model(request, context, "CountTokens")
        texts = [p.text for c in request.contents for p in c.parts]
        texts += [p.text for p in request.system_instruction.parts]
        total = textgen.count_tokens(texts)
        return self.types.CountTokensResponse(
            total_tokens=total, total_billable_characters=sum(len(t) for t in texts)
        )

    def handlers(self) -> list[grpc.GenericRpcHandler]:
        t = self.types
        prediction = grpc.method_handlers_generic_handler(
            PREDICTION,
            {
                "GenerateContent": grpc.unary_unary_rpc_method_handler(
                    self.generate_content,
                    request_deserializer=t.GenerateContentRequest.deserialize,
                    response_serializer=t.GenerateContentResponse.serialize,
                ),
                "StreamGenerateContent": grpc.unary_stream_rpc_method_handler(
                    self.stream_generate_content,
                    request_deserializer=t.GenerateContentRequest.deserialize,
                    response_serializer=t.GenerateContentResponse.serialize,
                ),
                "Predict": grpc.unary_unary_rpc_method_handler(
                    self.predict,
                    request_deserializer=t.PredictRequest.deserialize,
                    response_serializer=t.PredictResponse.serialize,
                ),
            },
        )
        utility = grpc.method_handlers_generic_handler(
            LLM_UTILITY,
            {
                "CountTokens": grpc.unary_unary_rpc_method_handler(
                    self.count_tokens,
                    request_deserializer=t.CountTokensRequest.deserialize,
                    response_serializer=t.CountTokensResponse.serialize,
                )
            },
        )
        return [prediction, utility]


def admin_app(state: EmulatorState) -> Starlette:
    """``GET /calls`` reports calls per model and method; ``POST /reset`` clears them and every
    fault; ``POST /faults`` injects a fault (``{"model": m, "error_rate": 0.3, ...}``), ``GET``
    lists them, ``DELETE`` removes them; ``GET /streams`` lists recent streamed calls with the
    ``CLOCK_MONOTONIC`` time of their first chunk (prompts appear only as digests); ``GET
    /requests`` lists recent calls with the tools declared to the model and those it called."""

    async def calls(_: Request) -> JSONResponse:
        return JSONResponse(state.report())

    async def streams(_: Request) -> JSONResponse:
        return JSONResponse({"streams": list(state.streams)})

    async def requests(_: Request) -> JSONResponse:
        return JSONResponse({"requests": list(state.requests)})

    async def reset(_: Request) -> JSONResponse:
        state.reset()
        return JSONResponse(state.report())

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "models": list(state.models)})

    async def faults(request: Request) -> JSONResponse:
        if request.method == "DELETE":
            state.faults.clear()
        elif request.method == "POST":
            try:
                body = await request.json()
                model = str(body.pop("model", "*"))
                state.faults[model] = Fault(**body)
            except (ValueError, TypeError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({m: f.describe() for m, f in state.faults.items()})

    return Starlette(
        routes=[
            Route("/calls", calls, methods=["GET"]),
            Route("/streams", streams, methods=["GET"]),
            Route("/requests", requests, methods=["GET"]),
            Route("/reset", reset, methods=["POST"]),
            Route("/healthz", health, methods=["GET"]),
            Route("/faults", faults, methods=["GET", "POST", "DELETE"]),
        ]
    )


async def serve(state: EmulatorState, host: str, port: int, admin_port: int) -> None:
    """Run the gRPC server and the admin API until cancelled."""
    import uvicorn

    server = grpc.aio.server()
    for handler in VertexEmulator(state).handlers():
        server.add_generic_rpc_handlers((handler,))
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind gRPC port {host}:{port}")
    await server.start()
    admin = uvicorn.Server(
        uvicorn.Config(admin_app(state), host=host, port=admin_port, log_level="warning")
    )
    try:
        await admin.serve()
    finally:
        await server.stop(grace=0.5)
