"""Tools the agent may call: each declared once, offered only to callers whose scopes allow it.

A `Tool` carries what the model is told (name, description, the JSON Schema of a pydantic
arguments model) and what the runtime enforces (scope, timeout, result cache TTL, whether it
needs the user's confirmation, whether its results are the caller's own). Kinds of tool (HTTP
connectors, Firestore lookups, built-ins) differ only in the ``run`` they bring.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from pydantic import BaseModel

from shared import errors
from shared.auth.principal import TOOL_SCOPE
from shared.contracts import TOOL_NAME
from shared.llm.types import ToolDeclaration

__all__ = ["TOOL_NAME", "TOOL_SCOPE", "Tool", "ToolContext", "ToolRegistry"]


@dataclass(frozen=True)
class ToolContext:
    """Who a tool runs for: the subject whose documents a lookup may read."""

    subject: str
    request_id: str = ""


Run = Callable[[BaseModel, ToolContext], Awaitable[Any]]


@dataclass(frozen=True)
class Tool:
    """One declared tool.

    ``scope``: what a caller needs besides ``chat`` (``None``: every chat caller); ``cache_ttl_s``
    set marks the tool idempotent (its results are cached, answers using them too); ``private``:
    results depend on the caller (cached per caller only); ``confirm``: the user approves each
    call before it runs.
    """

    name: str
    description: str
    arguments: type[BaseModel]
    run: Run = field(compare=False, repr=False)
    kind: str = "builtin"
    scope: str | None = None
    timeout_s: float = 10.0
    cache_ttl_s: int | None = None
    confirm: bool = False
    private: bool = False

    @property
    def idempotent(self) -> bool:
        return self.cache_ttl_s is not None

    @cached_property
    def declaration(self) -> ToolDeclaration:
        """The function declaration sent to the model (canonical JSON, the same bytes each time)."""
        schema = _without_titles(self.arguments.model_json_schema())
        return ToolDeclaration(
            name=self.name,
            description=self.description,
            parameters=json.dumps(schema, sort_keys=True, separators=(",", ":")),
        )


def _without_titles(schema: Any) -> Any:
    """Pydantic's schema minus its generated ``title`` keys: the model needs none of them."""
    if isinstance(schema, dict):
        return {
            k: _without_titles(v)
            for k, v in schema.items()
            if not (k == "title" and isinstance(v, str))
        }
    if isinstance(schema, list):
        return [_without_titles(v) for v in schema]
    return schema


class ToolRegistry:
    """Every tool of this deployment, by name."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self.tools: dict[str, Tool] = {}
        for tool in tools:
            if tool.name in self.tools:
                raise ValueError(f"tool {tool.name!r} is declared twice")
            self.tools[tool.name] = tool

    def allowed(self, scopes: Sequence[str]) -> list[Tool]:
        """The tools a caller holding ``scopes`` may use, in declaration order."""
        return [t for t in self.tools.values() if t.scope is None or t.scope in scopes]

    def offered(self, requested: Sequence[str] | None, scopes: Sequence[str]) -> tuple[Tool, ...]:
        """The tools to offer for one request: those named (all allowed when ``None``).

        A named tool the caller may not use is refused with 403 naming it; one that does not
        exist is refused the same way, so a caller cannot probe for tools outside its scopes."""
        allowed = self.allowed(scopes)
        if requested is None:
            return tuple(allowed)
        by_name = {t.name: t for t in allowed}
        for name in requested:
            if name not in by_name:
                raise errors.PermissionDenied(
                    f"tool {name!r} is not available to this caller",
                    details=[{"field": "tools", "tool": name}],
                )
        return tuple(by_name[name] for name in dict.fromkeys(requested))
