"""Plain values passed in and out of the model client, independent of the SDK's proto types."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["user", "model"]


@dataclass(frozen=True)
class Turn:
    """One message of a conversation as the model sees it."""

    role: Role
    text: str


@dataclass(frozen=True)
class LlmRequest:
    """What to ask the model: the conversation so far, ending with the user's turn."""

    model: str
    turns: tuple[Turn, ...]
    system_instruction: str | None = None
    max_output_tokens: int = 1024
    temperature: float = 0.2


@dataclass(frozen=True)
class LlmResult:
    """A whole answer with its accounting."""

    text: str
    model: str
    finish_reason: str = "STOP"
    input_tokens: int = 0
    output_tokens: int = 0
    cached: bool = False


@dataclass(frozen=True)
class LlmChunk:
    """One piece of a streamed answer; the last one carries the finish reason and token counts."""

    text: str
    finish_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
