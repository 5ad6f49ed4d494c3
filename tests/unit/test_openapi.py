"""The committed OpenAPI document is the one the contracts generate."""

from __future__ import annotations

import json
from pathlib import Path

from shared import openapi

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_committed_document_matches_the_code() -> None:
    assert COMMITTED.read_text() == openapi.render(), "run `make openapi` and commit the result"


def test_document_covers_every_public_route_and_the_error_envelope() -> None:
    doc = json.loads(COMMITTED.read_text())
    assert doc["openapi"] == "3.1.0"
    assert set(doc["paths"]) == {
        "/v1/chat",
        "/v1/chat:stream",
        "/v1/conversations",
        "/v1/conversations/{conversation_id}",
        "/v1/conversations/{conversation_id}/messages/{message_id}/feedback",
        "/v1/confirmations/{confirmation_id}",
        "/v1/me",
        "/v1/me/export",
        "/v1/jobs/{job_id}",
        "/v1/handoffs",
        "/v1/handoffs/{conversation_id}/messages",
        "/v1/handoffs/{conversation_id}/close",
        "/v1/sessions",
        "/healthz",
    }
    envelope = doc["components"]["schemas"]["ErrorEnvelope"]
    assert envelope["properties"]["error"]["$ref"].endswith("/ErrorBody")
    chat = doc["paths"]["/v1/chat"]["post"]
    assert {"401", "413", "415", "422", "429"} <= set(chat["responses"])
