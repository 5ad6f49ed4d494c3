"""The AsyncAPI 3 document of the WebSocket sessions, generated from the protocol's models.

``python -m shared.asyncapi > docs/asyncapi.json`` regenerates the committed copy (beside the
OpenAPI one); a test fails when they drift apart.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared import registry
from shared.contracts import STREAM_EVENTS
from shared.openapi import VERSION
from shared.sessions import protocol

CLIENT_MESSAGES: dict[str, type[BaseModel]] = {
    "auth": protocol.AuthMessage,
    "chat": protocol.ChatMessage,
    "cancel": protocol.CancelMessage,
    "resume": protocol.ResumeMessage,
    "ping": protocol.PingMessage,
}


def _server_event(name: str, data: type[BaseModel]) -> dict[str, Any]:
    """A server event's envelope: its type, the stream's event id, its stream, the client's ref."""
    return {
        "type": "object",
        "required": ["type", "data"],
        "properties": {
            "type": {"const": name},
            "id": {"type": "string", "description": "{stream_id}:{seq}, as the SSE event id"},
            "stream_id": {"type": "string"},
            "ref": {"type": "string", "description": "the ref of the message it answers"},
            "data": {"$ref": f"#/components/schemas/{data.__name__}"},
        },
    }


def document() -> dict[str, Any]:
    """The whole AsyncAPI document."""
    server_events = {**STREAM_EVENTS, **protocol.SESSION_EVENTS}
    models = [*CLIENT_MESSAGES.values(), *server_events.values()]
    _, definitions = models_json_schema(
        [(model, "validation") for model in models], ref_template="#/components/schemas/{model}"
    )
    schemas = dict(definitions["$defs"])
    for name, model in server_events.items():
        schemas[f"{name}Frame"] = _server_event(name, model)
    messages = {
        f"client.{name}": {
            "name": name,
            "title": f"client {name}",
            "summary": (model.__doc__ or "").strip().split("\n")[0],
            "payload": {"$ref": f"#/components/schemas/{model.__name__}"},
        }
        for name, model in CLIENT_MESSAGES.items()
    } | {
        f"server.{name}": {
            "name": name,
            "title": f"server {name}",
            "summary": (model.__doc__ or "").strip().split("\n")[0],
            "payload": {"$ref": f"#/components/schemas/{name}Frame"},
        }
        for name, model in server_events.items()
    }
    port = registry.STREAM.local_port
    closes = {str(int(code)): reason for code, reason in sorted(protocol.CLOSE_REASONS.items())}
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "NGX Agent Functions sessions",
            "version": VERSION,
            "description": (
                "WebSocket sessions on the stream function. Handshake with subprotocol "
                f"`{protocol.PROTOCOL}`; authenticate with a second offered subprotocol "
                f"`{protocol.BEARER_PREFIX}<ID token>` or `{protocol.KEY_PREFIX}<API key>` "
                "(never echoed), or with an `auth` message first (never the query string). "
                "Every frame is a JSON text frame. Server events mirror the Server-Sent Events "
                "of POST /v1/chat:stream (same names, ids and data); a stream dropped here is "
                "resumed by `resume` on any instance, or by SSE Last-Event-ID. Close codes: "
                + "; ".join(f"{code} {reason}" for code, reason in closes.items())
                + "."
            ),
        },
        "servers": {
            "local": {
                "host": f"127.0.0.1:{port}",
                "protocol": "ws",
                "description": "stream function (local stack)",
            }
        },
        "channels": {
            "session": {
                "address": "/v1/sessions",
                "messages": {key: {"$ref": f"#/components/messages/{key}"} for key in messages},
            }
        },
        "operations": {
            "send": {
                "action": "receive",  # what the server receives from clients
                "channel": {"$ref": "#/channels/session"},
                "messages": [
                    {"$ref": f"#/channels/session/messages/client.{name}"}
                    for name in CLIENT_MESSAGES
                ],
            },
            "events": {
                "action": "send",
                "channel": {"$ref": "#/channels/session"},
                "messages": [
                    {"$ref": f"#/channels/session/messages/server.{name}"} for name in server_events
                ],
            },
        },
        "components": {"schemas": schemas, "messages": messages},
    }


def render() -> str:
    """The document as committed: sorted keys, two-space indent, trailing newline."""
    return json.dumps(document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(render(), end="")
