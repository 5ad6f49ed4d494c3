"""The prompt budget: the newest history that fits a token budget, the rest folded into a summary.

Each turn keeps the newest whole exchanges whose estimated tokens fit ``budget``; anything older
that has not been summarized yet is handed back to be folded into the conversation's rolling
summary. Input tokens per turn therefore stay near the budget plus the (bounded) summary, however
long the conversation grows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from shared.llm.accounting import estimate_tokens
from shared.llm.types import LlmRequest, Turn

SUMMARY_INSTRUCTION = (
    "You keep a running summary of a conversation for its assistant. Merge the previous summary "
    "and the new messages into one short summary of the facts, decisions and open questions. "
    "Write only the summary."
)


@dataclass(frozen=True)
class Message:
    """A stored message with what the budget needs to know about it."""

    id: str
    role: str
    text: str
    tokens: int | None = None  # exact when the model reported it
    created_at: datetime | None = None

    @property
    def cost(self) -> int:
        return self.tokens if self.tokens else estimate_tokens(self.text)


@dataclass(frozen=True)
class PromptPlan:
    """What to send: the kept turns; what to summarize: the dropped messages (oldest first)."""

    kept: list[Message]
    dropped: list[Message] = field(default_factory=list)

    @property
    def turns(self) -> tuple[Turn, ...]:
        return tuple(
            Turn(role="model" if m.role == "model" else "user", text=m.text) for m in self.kept
        )


def fit(history: list[Message], budget: int, max_messages: int) -> PromptPlan:
    """Keep the newest messages within ``budget`` tokens and ``max_messages``, starting on a user
    message; every older message is dropped (to be summarized)."""
    kept: list[Message] = []
    total = 0
    for message in reversed(history):
        if total + message.cost > budget or len(kept) >= max_messages:
            break
        kept.append(message)
        total += message.cost
    kept.reverse()
    while kept and kept[0].role != "user":  # the model must see a user turn first
        kept.pop(0)
    dropped = history[: len(history) - len(kept)]
    return PromptPlan(kept=kept, dropped=dropped)


def summary_request(
    previous: str, dropped: list[Message], max_tokens: int, **fields: object
) -> LlmRequest:
    """The model request that folds ``dropped`` messages into the previous summary."""
    lines = [f"{m.role}: {m.text}" for m in dropped]
    text = f"Previous summary:\n{previous or '(none)'}\n\nNew messages:\n" + "\n".join(lines)
    return LlmRequest(
        turns=(Turn(role="user", text=text),),
        system_instruction=SUMMARY_INSTRUCTION,
        max_output_tokens=max_tokens,
        temperature=0.0,
        query_class="summary",
        **fields,  # type: ignore[arg-type]
    )
