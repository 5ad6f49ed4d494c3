"""Tool kinds declared in configuration: ``http`` connectors and ``firestore_lookup``.

An HTTP connector fills a URL template with the model's arguments (each one percent-encoded as a
single path segment; ``.`` and ``..`` refused), sends the rest as JSON on methods with a body, adds
the configured headers and credential (from an environment variable, which Cloud Run fills from
Secret Manager) and nothing of the caller's own, and goes through `Egress`. A Firestore lookup
reads one named collection, returns only the declared fields, and is filtered to the caller's own
documents (``owner``) unless the collection is declared shared.
"""

from __future__ import annotations

import json
import os
import string
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from shared.agent.egress import Egress, EgressRefused, Fetched
from shared.agent.tools import ToolContext
from shared.contracts import reserved


class ToolFailed(Exception):
    """A tool that ran and failed: reported to the model as a structured error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def template_fields(template: str) -> list[str]:
    """The ``{name}`` placeholders of a URL template."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


@dataclass(frozen=True)
class Credential:
    """A secret header: its value is read from ``env`` when the tool is called."""

    env: str
    header: str = "Authorization"
    prefix: str = "Bearer "

    def value(self) -> str:
        secret = os.environ.get(self.env)
        if not secret:
            raise ToolFailed("misconfigured", f"the tool's credential ({self.env}) is not set")
        return self.prefix + secret


@dataclass(frozen=True)
class HttpConnector:
    """The ``run`` of an ``http`` tool."""

    egress: Egress
    url: str
    method: str
    allow_hosts: tuple[str, ...]
    headers: tuple[tuple[str, str], ...] = ()
    credential: Credential | None = None
    max_response_bytes: int = 64 * 1024
    timeout_s: float = 10.0

    async def __call__(self, arguments: BaseModel, context: ToolContext) -> Any:
        values = arguments.model_dump(mode="json", exclude_none=True)
        in_path = template_fields(self.url)
        segments = {}
        for name in in_path:
            text = _text(values.get(name, ""))
            if text in ("", ".", ".."):
                raise ToolFailed("invalid_arguments", f"{name!r} must be a non-empty value")
            segments[name] = quote(text, safe="")
        url = self.url.format(**segments)
        rest = {k: v for k, v in values.items() if k not in in_path}
        headers = dict(self.headers)
        if self.credential is not None:
            headers[self.credential.header] = self.credential.value()
        body = rest if self.method in ("POST", "PUT", "PATCH") else None
        if body is None and rest:
            url += ("&" if "?" in url else "?") + "&".join(
                f"{quote(k, safe='')}={quote(_text(v), safe='')}" for k, v in sorted(rest.items())
            )
        try:
            fetched = await self.egress.fetch(
                self.method,
                url,
                allow_hosts=self.allow_hosts,
                headers=headers,
                json_body=body,
                max_bytes=self.max_response_bytes,
                timeout_s=self.timeout_s,
                secret_headers=[self.credential.header] if self.credential else [],
            )
        except EgressRefused as exc:
            raise ToolFailed("refused", str(exc)) from None
        except (OSError, httpx.HTTPError) as exc:
            raise ToolFailed(
                "unreachable", f"the service did not answer ({type(exc).__name__})"
            ) from None
        return _result(fetched)


def _text(value: Any) -> str:
    """An argument as URL text: JSON's spelling for booleans, integers without ``.0``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _result(fetched: Fetched) -> Any:
    """What the model is given: the status and the body (parsed when it is JSON)."""
    text = fetched.body.decode("utf-8", errors="replace")
    body: Any = text
    if "json" in fetched.content_type and not fetched.truncated:
        try:
            body = json.loads(text)
        except ValueError:
            body = text
    if fetched.status >= 400:
        raise ToolFailed(
            f"http_{fetched.status}", f"the service answered {fetched.status}: {text[:200]}"
        )
    result: dict[str, Any] = {"status": fetched.status, "body": body}
    if fetched.truncated:
        result["truncated"] = f"the response was cut at {len(fetched.body)} bytes"
    return result


@dataclass(frozen=True)
class FirestoreLookup:
    """The ``run`` of a ``firestore_lookup`` tool: one document by id, or a few by one field."""

    db: Any
    collection: str
    fields: tuple[str, ...]
    shared: bool = False
    limit: int = 10

    async def __call__(self, arguments: BaseModel, context: ToolContext) -> Any:
        values = arguments.model_dump(mode="json", exclude_none=True)
        collection = self.db.collection(self.collection)
        if "id" in values:
            if reserved(str(values["id"])):
                raise ToolFailed("invalid_arguments", "id: is a reserved id (__…__)")
            snapshot = await collection.document(str(values["id"])).get()
            found = (
                [snapshot] if snapshot.exists and self._visible(snapshot.to_dict(), context) else []
            )
        else:
            from google.cloud.firestore_v1.base_query import FieldFilter

            query = collection
            if not self.shared:
                query = query.where(filter=FieldFilter("owner", "==", context.subject))
            for name, value in values.items():
                query = query.where(filter=FieldFilter(name, "==", value))
            found = [s async for s in query.limit(self.limit).stream()]
        return {
            "documents": [
                {
                    "id": s.id,
                    **{k: _plain(v) for k, v in (s.to_dict() or {}).items() if k in self.fields},
                }
                for s in found
            ]
        }

    def _visible(self, data: dict[str, Any] | None, context: ToolContext) -> bool:
        return self.shared or (data or {}).get("owner") == context.subject


def _plain(value: Any) -> Any:
    """A Firestore value as JSON (timestamps as RFC 3339 text)."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
