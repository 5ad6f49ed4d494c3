"""The tools file (``NGX_TOOLS_FILE``, TOML): read and validated when a function starts.

Each ``[tools.NAME]`` table declares one tool; its ``[tools.NAME.arguments.ARG]`` tables become the
pydantic model of its arguments, whose JSON Schema the model is given. A mistake anywhere (an
unknown key, a placeholder without an argument, a host off the allow-list, a credential whose
variable is unset) stops the start with a message naming it: a tool is never half-configured.
See ``docs/agent.md`` for the format.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from shared.agent.connectors import Credential, FirestoreLookup, HttpConnector, template_fields
from shared.agent.egress import Egress, host_allowed, refused_address
from shared.agent.tools import TOOL_NAME, Tool, ToolRegistry
from shared.contracts import ID_PATTERN
from shared.errors import SettingsError

BUILT_IN = frozenset({"retrieve", "handoff"})  # names the runtime's own tools take
FORBIDDEN_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "host"})
ENV_NAME = r"^[A-Z][A-Z0-9_]{0,127}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ArgumentConfig(_Strict):
    """One argument the model fills."""

    type: Literal["string", "integer", "number", "boolean"] = "string"
    description: str = Field("", max_length=512)
    required: bool = True
    enum: list[str] | None = Field(None, min_length=1, max_length=64)
    pattern: str | None = Field(None, max_length=256)
    min_length: int | None = Field(None, ge=0)
    max_length: int | None = Field(256, ge=1, le=4096)
    minimum: float | None = None
    maximum: float | None = None

    @model_validator(mode="after")
    def _pattern_compiles(self) -> ArgumentConfig:
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern {self.pattern!r} does not compile: {exc}") from None
        return self


class CredentialConfig(_Strict):
    env: str = Field(pattern=ENV_NAME)
    header: str = Field("Authorization", pattern=r"^[A-Za-z0-9-]{1,64}$")
    prefix: str = Field("Bearer ", max_length=32)


class ToolConfig(_Strict):
    """One ``[tools.NAME]`` table."""

    kind: Literal["http", "firestore_lookup"]
    description: str = Field(min_length=1, max_length=1024)
    scope: str | None = Field(None, pattern=r"^tools:[a-z0-9_-]{1,64}$")
    timeout_s: float | None = Field(None, gt=0, le=120)
    cache_ttl_s: int | None = Field(None, ge=1, le=7 * 86400)
    confirm: bool = False
    arguments: dict[str, ArgumentConfig] = Field(default_factory=dict, max_length=32)
    # http
    url: str | None = Field(None, max_length=2048)
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    allow_hosts: list[str] = Field(default_factory=list, max_length=32)
    headers: dict[str, str] = Field(default_factory=dict, max_length=32)
    credential: CredentialConfig | None = None
    max_response_bytes: int = Field(64 * 1024, ge=256, le=4 * 1024 * 1024)
    # firestore_lookup
    collection: str | None = Field(None, pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
    fields: list[str] = Field(default_factory=list, max_length=64)
    shared: bool = False

    @model_validator(mode="after")
    def _kind_rules(self) -> ToolConfig:
        for name in self.arguments:
            if not re.match(r"^[a-z][a-z0-9_]{0,63}\Z", name):
                raise ValueError(f"argument name {name!r} is not snake_case")
        if self.confirm and self.cache_ttl_s is not None:
            raise ValueError("a tool that needs confirmation acts, so it cannot be cached")
        if self.kind == "http":
            self._http_rules()
        else:
            self._lookup_rules()
        return self

    def _http_rules(self) -> None:
        if not self.url or not self.allow_hosts:
            raise ValueError("an http tool needs url and allow_hosts")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or "{" in parts.netloc:
            raise ValueError("url must be http(s) with a fixed host (placeholders in the path)")
        if not host_allowed(parts.hostname or "", self.allow_hosts):
            raise ValueError(f"url's host {parts.hostname!r} is not in allow_hosts")
        missing = set(template_fields(self.url)) - set(self.arguments)
        if missing:
            raise ValueError(f"url placeholders without an argument: {', '.join(sorted(missing))}")
        for header in self.headers:
            if header.lower() in FORBIDDEN_HEADERS:
                raise ValueError(f"header {header!r} is not configurable (use credential)")

    def _lookup_rules(self) -> None:
        if not self.collection or not self.fields:
            raise ValueError("a firestore_lookup tool needs collection and fields")
        unknown = set(self.arguments) - {"id", *self.fields}
        if unknown:
            raise ValueError(
                f"arguments must be id or readable fields: {', '.join(sorted(unknown))}"
            )


class ToolsFile(_Strict):
    tools: dict[str, ToolConfig] = Field(default_factory=dict, max_length=128)

    @model_validator(mode="after")
    def _names(self) -> ToolsFile:
        for name in self.tools:
            if not re.match(TOOL_NAME, name):
                raise ValueError(f"tool name {name!r} must match {TOOL_NAME}")
            if name in BUILT_IN:
                raise ValueError(f"tool name {name!r} is a built-in tool's")
        return self


def read(path: str | None, exempt: Sequence[str] = ()) -> ToolsFile:
    """Parse and validate the tools file (none: no tools); raises `SettingsError`. A URL naming a
    non-public address outright is refused here already, unless ``exempt`` lists its host:port."""
    if not path:
        return ToolsFile()
    try:
        with open(path, "rb") as handle:
            raw = tomllib.load(handle)
        parsed = ToolsFile.model_validate(raw)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"NGX_TOOLS_FILE={path!r}: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in exc.errors()
        )
        raise SettingsError(f"NGX_TOOLS_FILE={path!r}: {problems}") from None
    for name, tool in parsed.tools.items():
        if tool.credential is not None and not os.environ.get(tool.credential.env):
            raise SettingsError(
                f"tool {name!r}: its credential variable {tool.credential.env} is unset"
            )
        if tool.url is not None:
            _public_or_exempt(name, tool.url, exempt)
    return parsed


def _public_or_exempt(name: str, url: str, exempt: Sequence[str]) -> None:
    parts = urlsplit(url)
    try:
        address = ipaddress.ip_address(parts.hostname or "")
    except ValueError:
        return  # a name: checked when it is resolved, at each call
    port = parts.port or (443 if parts.scheme == "https" else 80)
    why = refused_address(address)
    if why and f"{parts.hostname}:{port}" not in exempt:
        raise SettingsError(f"tool {name!r}: its url names a {why} address ({address})")


def arguments_model(name: str, arguments: dict[str, ArgumentConfig]) -> type[BaseModel]:
    """The pydantic model of a tool's arguments (its JSON Schema is what the model sees)."""
    kinds: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool}
    fields: dict[str, Any] = {}
    for arg, spec in arguments.items():
        kind: Any = Literal[tuple(spec.enum)] if spec.enum else kinds[spec.type]
        constraints: dict[str, Any] = {"description": spec.description or None}
        if spec.type == "string" and not spec.enum:
            constraints |= {
                "pattern": spec.pattern,
                "min_length": spec.min_length,
                "max_length": spec.max_length,
            }
        if spec.type in ("integer", "number"):
            constraints |= {"ge": spec.minimum, "le": spec.maximum}
        constraints = {k: v for k, v in constraints.items() if v is not None}
        if spec.required:
            fields[arg] = (kind, Field(..., **constraints))
        else:
            fields[arg] = (kind | None, Field(None, **constraints))
    title = "".join(part.capitalize() for part in name.split("_")) + "Arguments"
    model: type[BaseModel] = create_model(title, __config__=ConfigDict(extra="forbid"), **fields)
    return model


def build(parsed: ToolsFile, egress: Egress, db: Any, default_timeout_s: float) -> ToolRegistry:
    """The registry of the configured tools, wired to this process's egress and Firestore."""
    tools = []
    for name, spec in parsed.tools.items():
        timeout = spec.timeout_s or default_timeout_s
        arguments = dict(spec.arguments)
        run: Any
        if spec.kind == "http":
            run = HttpConnector(
                egress=egress,
                url=spec.url or "",
                method=spec.method,
                allow_hosts=tuple(spec.allow_hosts),
                headers=tuple(spec.headers.items()),
                credential=Credential(**spec.credential.model_dump()) if spec.credential else None,
                max_response_bytes=spec.max_response_bytes,
                timeout_s=timeout,
            )
        else:
            if "id" in arguments:
                arguments["id"] = arguments["id"].model_copy(update={"pattern": ID_PATTERN})
            run = FirestoreLookup(db, spec.collection or "", tuple(spec.fields), spec.shared)
        tools.append(
            Tool(
                name=name,
                description=spec.description,
                arguments=arguments_model(name, arguments),
                run=run,
                kind=spec.kind,
                scope=spec.scope,
                timeout_s=timeout,
                cache_ttl_s=spec.cache_ttl_s,
                confirm=spec.confirm,
                private=spec.kind == "firestore_lookup" and not spec.shared,
            )
        )
    return ToolRegistry(tools)
