"""Plain values passed in and out of the model client, independent of the SDK's proto types."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["user", "model"]
ToolChoice = Literal["auto", "none"]


@dataclass(frozen=True)
class FunctionCall:
    """A function the model asks to be called, with its arguments as the model gave them."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FunctionResult:
    """What a called function returned (or its structured error), sent back to the model."""

    name: str
    response: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ToolDeclaration:
    """A function the model may call: ``parameters`` is its JSON Schema as canonical JSON text
    (hashable, and the same bytes in every cache key)."""

    name: str
    description: str
    parameters: str


@dataclass(frozen=True)
class Turn:
    """One message of a conversation as the model sees it: text, the model's function calls, or
    (in a user turn) the functions' results."""

    role: Role
    text: str = ""
    calls: tuple[FunctionCall, ...] = ()
    results: tuple[FunctionResult, ...] = ()


@dataclass(frozen=True)
class LlmRequest:
    """What to ask the model, and how the answer may be cached and billed.

    ``model`` pins one model; otherwise ``tier`` picks a chain of models from settings. A request
    whose turns hold user-private context sets ``cache_scope`` (the user), so its cache entry is
    never shared with another user. Tools with side effects make a request uncacheable.
    """

    turns: tuple[Turn, ...]
    model: str | None = None
    tier: str = "fast"
    system_instruction: str | None = None
    max_output_tokens: int = 1024
    temperature: float = 0.2
    subject: str | None = None
    budget_tier: str | None = None  # the caller's tier: which daily token budget applies
    query_class: str = "default"
    cache_scope: str | None = None
    template_version: str = "v1"
    side_effect_tools: bool = False
    tools: tuple[ToolDeclaration, ...] = ()
    tool_choice: ToolChoice = "auto"  # none: the tools stay declared, the model must answer
    response_schema: str | None = None  # JSON Schema (canonical JSON): answer with JSON only


@dataclass(frozen=True)
class LlmResult:
    """A whole answer with its accounting; ``model`` is the model that served it."""

    text: str
    model: str
    finish_reason: str = "STOP"
    input_tokens: int = 0
    output_tokens: int = 0
    cached: bool = False
    fallback: bool = False
    attempts: int = 0
    cost_usd: float = 0.0
    function_calls: tuple[FunctionCall, ...] = ()
    avg_logprobs: float | None = None  # the model's confidence in the answer, when it says
    cached_input_tokens: int = 0  # input tokens Gemini served from its own prompt cache


def result_from_dict(data: dict[str, Any]) -> LlmResult:
    """An `LlmResult` from its ``asdict`` form (the cache's and the shared streams' JSON)."""
    calls = tuple(FunctionCall(**call) for call in data.pop("function_calls", ()))
    return LlmResult(**data, function_calls=calls)


@dataclass(frozen=True)
class LlmChunk:
    """One piece of a streamed answer; the stream closes with a text-less chunk holding `result`."""

    text: str
    finish_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    result: LlmResult | None = None  # set on the closing chunk only: the whole answer's accounting
    function_calls: tuple[FunctionCall, ...] = ()
    avg_logprobs: float | None = None
    cached_input_tokens: int | None = None


@dataclass
class CallStats:
    """What one call went through, for telemetry."""

    attempts: int = 0
    models_tried: list[str] = field(default_factory=list)
    cache: str = "bypass"  # hit | miss | bypass | shared | error
