"""One attempt against Vertex AI over the GAPIC ``aiplatform_v1`` async client.

Locally the client talks to the emulator through an insecure gRPC channel; in production it uses
the regional endpoint with Application Default Credentials. Retries, fallback and caching live
above this module; here each call is exactly one RPC.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from functools import lru_cache
from typing import Any

from shared import errors
from shared.grpc_clients import gapic_client
from shared.llm import sdk
from shared.llm.types import FunctionCall, LlmChunk, LlmRequest, LlmResult, Turn
from shared.settings import Settings

log = logging.getLogger("vertex_ai.client")
# gRPC statuses worth another attempt (api_core exception class names).
RETRYABLE = frozenset(
    {
        "ServiceUnavailable",
        "TooManyRequests",
        "ResourceExhausted",
        "DeadlineExceeded",
        "InternalServerError",
        "GatewayTimeout",
        "TimeoutError",
        "EmptyStream",
    }
)
# Failures that say "this model cannot serve": try the next model, never retry the same one.
MODEL_MISSING = frozenset({"NotFound"})


class EmptyStream(Exception):
    """A stream that ended before its first chunk: worth another attempt, as an unanswered call."""


def translate_error(exc: BaseException, model: str) -> errors.AppError:
    """Map a google.api_core / gRPC error to the product's error types."""
    name = type(exc).__name__
    if name == "NotFound":
        return errors.ModelNotFound(f"model {model!r} is not available")
    if name in {"DeadlineExceeded", "TimeoutError", "GatewayTimeout"}:
        return errors.UpstreamTimeout(f"model {model!r} did not answer in time")
    if error_kind(exc) == "retryable":
        return errors.ModelUnavailable(f"model {model!r} is unavailable", retry_after=2)
    if name == "InvalidArgument":
        return errors.BadRequest(f"the model rejected the request: {getattr(exc, 'message', exc)}")
    log.warning("model call failed", extra={"model": model, "error_type": name})
    return errors.UpstreamError(f"model call failed ({name})")


def error_kind(exc: BaseException) -> str:
    """``retryable``, ``model_missing`` or ``fatal`` for an exception raised by one attempt."""
    name = type(exc).__name__
    if name in RETRYABLE:
        return "retryable"
    if name in MODEL_MISSING:
        return "model_missing"
    return "fatal"


class VertexTransport:
    """Builds requests and makes single RPCs; one instance per process and event loop."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: Any = None

    def _prediction(self) -> Any:
        if self._client is None:
            module = sdk.load("services.prediction_service.async_client")
            transports = sdk.load("services.prediction_service.transports.grpc_asyncio")
            api = f"{self._settings.vertex_location}-aiplatform.googleapis.com"
            self._client = gapic_client(
                module.PredictionServiceAsyncClient,
                transports.PredictionServiceGrpcAsyncIOTransport,
                self._settings.vertex_endpoint,
                client_options={"api_endpoint": api},
            )
        return self._client

    def build(self, request: LlmRequest, model: str) -> Any:
        """The ``GenerateContentRequest`` for ``request`` sent to ``model``."""
        types = sdk.prediction_types()
        content = sdk.content_types()
        contents = [
            content.Content(role=turn.role, parts=parts(turn, content)) for turn in request.turns
        ]
        system = (
            content.Content(role="system", parts=[content.Part(text=request.system_instruction)])
            if request.system_instruction
            else None
        )
        config = content.GenerationConfig(
            max_output_tokens=request.max_output_tokens, temperature=request.temperature
        )
        if request.response_schema is not None:
            config.response_mime_type = "application/json"
            config.response_json_schema = json.loads(request.response_schema)
        built = types.GenerateContentRequest(
            model=self._settings.vertex_model_prefix + model,
            contents=contents,
            system_instruction=system,
            generation_config=config,
        )
        if request.tools:
            tool = sdk.load("types.tool")
            built.tools = [
                tool.Tool(
                    function_declarations=[
                        tool.FunctionDeclaration(
                            name=d.name,
                            description=d.description,
                            parameters_json_schema=json.loads(d.parameters),
                        )
                        for d in request.tools
                    ]
                )
            ]
            mode = tool.FunctionCallingConfig.Mode
            built.tool_config = tool.ToolConfig(
                function_calling_config=tool.FunctionCallingConfig(
                    mode=mode.NONE if request.tool_choice == "none" else mode.AUTO
                )
            )
        return built

    async def generate(self, request: LlmRequest, model: str, timeout: float) -> LlmResult:
        """One unary call."""
        response = await self._prediction().generate_content(
            request=self.build(request, model), timeout=timeout
        )
        text, finish = candidate_text(response)
        usage = raw(response).usage_metadata
        return LlmResult(
            text=text,
            model=model,
            finish_reason=finish or "STOP",
            input_tokens=usage.prompt_token_count,
            output_tokens=usage.candidates_token_count,
            function_calls=function_calls(response),
            avg_logprobs=avg_logprobs(response),
            cached_input_tokens=usage.cached_content_token_count,
        )

    async def open_stream(self, request: LlmRequest, model: str, timeout: float) -> Any:
        """Start a streamed call; iterate the result with `chunks`. Cancel it with ``.cancel()``."""
        return await self._prediction().stream_generate_content(
            request=self.build(request, model), timeout=timeout
        )

    async def embed(
        self, texts: list[str], model: str, task: str, dimensions: int, timeout: float
    ) -> list[list[float]]:
        """One text-embedding ``predict`` call: a vector per text, in order."""
        from google.protobuf import json_format

        types = sdk.prediction_types()
        request = types.PredictRequest(endpoint=self._settings.vertex_model_prefix + model)
        pb = type(request).pb(request)  # instances and parameters are protobuf Values
        for text in texts:
            json_format.ParseDict({"content": text, "task_type": task}, pb.instances.add())
        json_format.ParseDict(
            {"outputDimensionality": dimensions, "autoTruncate": True}, pb.parameters
        )
        response = await self._prediction().predict(request=request, timeout=timeout)
        vectors = []
        for prediction in raw(response).predictions:
            values = prediction.struct_value.fields["embeddings"].struct_value.fields["values"]
            vectors.append([v.number_value for v in values.list_value.values])
        if len(vectors) != len(texts):
            raise errors.UpstreamError(f"{model} answered {len(vectors)} of {len(texts)} texts")
        return vectors

    async def ready(self, timeout: float) -> None:
        """Raise unless the gRPC channel to the model endpoint connects within ``timeout``."""
        import asyncio

        channel = self._prediction().transport.grpc_channel
        await asyncio.wait_for(channel.channel_ready(), timeout)

    async def close(self) -> None:
        """Close the gRPC channel; called at process shutdown."""
        if self._client is not None:
            await self._client.transport.close()
        self._client = None


async def chunks(call: Any) -> AsyncIterator[LlmChunk]:
    """The pieces of a streamed call; the last carries finish reason and token counts."""
    input_tokens = output_tokens = cached_tokens = 0
    async for response in call:
        text, finish = candidate_text(response)
        usage = raw(response).usage_metadata
        input_tokens = usage.prompt_token_count or input_tokens
        output_tokens = usage.candidates_token_count or output_tokens
        cached_tokens = usage.cached_content_token_count or cached_tokens
        yield LlmChunk(
            text=text,
            finish_reason=finish,
            input_tokens=input_tokens if finish else None,
            output_tokens=output_tokens if finish else None,
            function_calls=function_calls(response),
            avg_logprobs=avg_logprobs(response),
            cached_input_tokens=cached_tokens if finish else None,
        )


def raw(response: Any) -> Any:
    """The protobuf message under a response's proto-plus wrapper: reading fields through the
    wrapper costs ≈ 10× more, and a stream reads every chunk."""
    return type(response).pb(response)


def candidate_text(response: Any) -> tuple[str, str | None]:
    """Text and finish reason of the first candidate."""
    candidates = raw(response).candidates
    if not candidates:
        return "", None
    candidate = candidates[0]
    text = "".join(part.text for part in candidate.content.parts)  # "" for a function call
    reason = candidate.finish_reason  # an enum number on the raw message
    if not reason:
        return text, None
    try:
        return text, _finish_reasons()(reason).name
    except ValueError:  # a reason newer than this SDK
        return text, str(reason)


def function_calls(response: Any) -> tuple[FunctionCall, ...]:
    """The function calls of the first candidate (none, for a plain text answer)."""
    candidates = raw(response).candidates
    if not candidates:
        return ()
    from google.protobuf import json_format

    return tuple(
        FunctionCall(
            name=part.function_call.name, args=json_format.MessageToDict(part.function_call.args)
        )
        for part in candidates[0].content.parts
        if part.WhichOneof("data") == "function_call"
    )


def avg_logprobs(response: Any) -> float | None:
    """The first candidate's average log-probability, when the model reports it."""
    candidates = raw(response).candidates
    if not candidates or not candidates[0].avg_logprobs:
        return None
    return float(candidates[0].avg_logprobs)


def parts(turn: Turn, content: Any) -> list[Any]:
    """A turn's parts (``content``: the SDK's content types): its text, then its function calls
    or function responses."""
    found = [content.Part(text=turn.text)] if turn.text or not (turn.calls or turn.results) else []
    if turn.calls or turn.results:
        tool = sdk.load("types.tool")
        found += [
            content.Part(function_call=tool.FunctionCall(name=c.name, args=c.args))
            for c in turn.calls
        ]
        found += [
            content.Part(function_response=tool.FunctionResponse(name=r.name, response=r.response))
            for r in turn.results
        ]
    return found


@lru_cache(maxsize=1)
def _finish_reasons() -> Any:
    return sdk.content_types().Candidate.FinishReason
