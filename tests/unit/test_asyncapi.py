"""The committed AsyncAPI document is the one the session protocol generates, and it names every
message either side may send."""

from __future__ import annotations

import json
import typing
from pathlib import Path

from shared import asyncapi
from shared.contracts import STREAM_EVENTS
from shared.sessions import protocol

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json"


def test_committed_document_matches_the_code() -> None:
    assert COMMITTED.read_text() == asyncapi.render(), "run `make openapi` and commit the result"


def test_every_client_message_and_server_event_is_described() -> None:
    doc = json.loads(COMMITTED.read_text())
    assert doc["asyncapi"] == "3.0.0"
    union = typing.get_args(typing.get_args(protocol.ClientMessage)[0])
    client_types = {typing.get_args(m.model_fields["type"].annotation)[0] for m in union}
    messages = doc["channels"]["session"]["messages"]
    assert {k.removeprefix("client.") for k in messages if k.startswith("client.")} == client_types
    server = {k.removeprefix("server.") for k in messages if k.startswith("server.")}
    assert server == set(STREAM_EVENTS) | set(protocol.SESSION_EVENTS)
    for code in protocol.Close:
        assert f"{int(code)} " in doc["info"]["description"]
