"""The authenticated caller."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ALL_SCOPES = ("chat", "conversations", "account")
# What an API key gets unless created with other scopes: erasing its owner (``account``) is
# irreversible, so a key must be given it on purpose. Users' ID tokens carry every scope.
DEFAULT_KEY_SCOPES = ("chat", "conversations")


@dataclass(frozen=True)
class Principal:
    """A verified caller: the subject owns conversations, pays tokens and is rate-limited."""

    subject: str
    kind: Literal["user", "api_key"]
    scopes: tuple[str, ...] = ALL_SCOPES
    tier: str | None = None
    key_id: str | None = None
    claims: dict[str, object] = field(default_factory=dict, compare=False, repr=False)

    def allows(self, scope: str) -> bool:
        return scope in self.scopes
