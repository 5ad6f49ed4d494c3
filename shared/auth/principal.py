"""The authenticated caller."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

ALL_SCOPES = ("chat", "conversations", "account")
# Support staff: list, answer and close hand-offs of every user. Never implied: an API key gets it
# only when created with it, an ID token only when its ``scopes`` claim lists it.
OPERATOR_SCOPE = "handoffs"
# What an API key gets unless created with other scopes: erasing its owner (``account``) is
# irreversible, so a key must be given it on purpose. Users' ID tokens carry every scope.
DEFAULT_KEY_SCOPES = ("chat", "conversations")
# A tool's scope (``tools:orders``): held by API keys created with it and by users whose ID token
# lists it in its ``scopes`` claim.
TOOL_SCOPE = re.compile(r"^tools:[a-z0-9_-]{1,64}\Z")


def is_scope(name: str) -> bool:
    """Whether ``name`` is a scope a credential may hold."""
    return name in (*ALL_SCOPES, OPERATOR_SCOPE) or TOOL_SCOPE.match(name) is not None


def tool_scopes(claimed: object) -> tuple[str, ...]:
    """The scopes an ID token's ``scopes`` claim grants beyond a user's: tool scopes and the
    operator scope (anything else in it is ignored)."""
    if not isinstance(claimed, Iterable) or isinstance(claimed, str | bytes):
        return ()
    return tuple(
        s for s in claimed if isinstance(s, str) and (TOOL_SCOPE.match(s) or s == OPERATOR_SCOPE)
    )[:64]


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
