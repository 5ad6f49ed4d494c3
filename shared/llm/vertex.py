"""The Vertex AI client: `generate` and `stream` over the GAPIC ``aiplatform_v1`` async client.

Locally the same client talks to the emulator through an insecure gRPC channel; in production it
uses the regional endpoint with Application Default Credentials.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from shared import errors
from shared.llm import sdk
from shared.llm.types import LlmChunk, LlmRequest, LlmResult
from shared.settings import Settings

log = logging.getLogger("ngx.llm")


class VertexClient:
    """Calls Gemini on Vertex AI; one instance per process and event loop."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: Any = None
        self._channel: Any = None

    def _prediction(self) -> Any:
        if self._client is None:
            module = sdk.load("services.prediction_service.async_client")
            endpoint = self._settings.vertex_endpoint
            if endpoint:
                import grpc

                grpc_asyncio = sdk.load("services.prediction_service.transports.grpc_asyncio")
                self._channel = grpc.aio.insecure_channel(endpoint)
                transport = grpc_asyncio.PredictionServiceGrpcAsyncIOTransport(
                    channel=self._channel
                )
                self._client = module.PredictionServiceAsyncClient(transport=transport)
            else:
                api = f"{self._settings.vertex_location}-aiplatform.googleapis.com"
                self._client = module.PredictionServiceAsyncClient(
                    client_options={"api_endpoint": api}
                )
        return self._client

    def _build(self, request: LlmRequest) -> Any:
        types = sdk.prediction_types()
        content = sdk.content_types()
        contents = [
            content.Content(role=turn.role, parts=[content.Part(text=turn.text)])
            for turn in request.turns
        ]
        system = (
            content.Content(role="system", parts=[content.Part(text=request.system_instruction)])
            if request.system_instruction
            else None
        )
        return types.GenerateContentRequest(
            model=self._settings.vertex_model_prefix + request.model,
            contents=contents,
            system_instruction=system,
            generation_config=content.GenerationConfig(
                max_output_tokens=request.max_output_tokens, temperature=request.temperature
            ),
        )

    async def generate(self, request: LlmRequest) -> LlmResult:
        """One whole answer."""
        client = self._prediction()
        started = time.perf_counter()
        try:
            response = await client.generate_content(
                request=self._build(request), timeout=self._settings.vertex_timeout_s
            )
        except Exception as exc:
            raise translate_error(exc, request.model) from exc
        text, finish = _candidate(response)
        usage = response.usage_metadata
        result = LlmResult(
            text=text,
            model=request.model,
            finish_reason=finish or "STOP",
            input_tokens=usage.prompt_token_count,
            output_tokens=usage.candidates_token_count,
        )
        _log_call(request.model, "generate", started, result.input_tokens, result.output_tokens)
        return result

    async def stream(self, request: LlmRequest) -> AsyncIterator[LlmChunk]:
        """The answer in pieces as the model produces them; the last piece carries the usage."""
        client = self._prediction()
        started = time.perf_counter()
        input_tokens = output_tokens = 0
        try:
            responses = await client.stream_generate_content(
                request=self._build(request), timeout=self._settings.vertex_timeout_s
            )
            async for response in responses:
                text, finish = _candidate(response)
                usage = response.usage_metadata
                if usage.prompt_token_count:
                    input_tokens = usage.prompt_token_count
                if usage.candidates_token_count:
                    output_tokens = usage.candidates_token_count
                yield LlmChunk(
                    text=text,
                    finish_reason=finish,
                    input_tokens=input_tokens if finish else None,
                    output_tokens=output_tokens if finish else None,
                )
        except errors.AppError:
            raise
        except Exception as exc:
            raise translate_error(exc, request.model) from exc
        _log_call(request.model, "stream", started, input_tokens, output_tokens)

    async def close(self) -> None:
        """Close the gRPC channel; called at process shutdown."""
        if self._channel is not None:
            await self._channel.close()
        self._client = self._channel = None


def _candidate(response: Any) -> tuple[str, str | None]:
    if not response.candidates:
        return "", None
    candidate = response.candidates[0]
    text = "".join(part.text for part in candidate.content.parts)
    finish = candidate.finish_reason.name if candidate.finish_reason else None
    return text, finish


def _log_call(model: str, method: str, started: float, tokens_in: int, tokens_out: int) -> None:
    log.info(
        "llm call",
        extra={
            "model": model,
            "method": method,
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
        },
    )


def translate_error(exc: BaseException, model: str) -> errors.AppError:
    """Map a google.api_core / gRPC error to the product's error types."""
    name = type(exc).__name__
    if name == "NotFound":
        return errors.ModelNotFound(f"model {model!r} is not available")
    if name in {"ServiceUnavailable", "ResourceExhausted", "InternalServerError", "Aborted"}:
        return errors.ModelUnavailable(f"model {model!r} is unavailable", retry_after=2)
    if name in {"DeadlineExceeded", "TimeoutError"}:
        return errors.UpstreamTimeout(f"model {model!r} did not answer in time")
    log.warning("model call failed", extra={"model": model, "error_type": name})
    return errors.UpstreamError(f"model call failed ({name})")
