"""Confirmation before acting: the demo ``cancel_order`` tool (``confirm = true``) is proposed, not
run; approving runs it exactly once even when sent twice at once; denying tells the model; a pause
survives a restart of the function; only the owner decides, and only before it expires."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from google.cloud import firestore

from tests.conftest import LocalStack, start_function
from tests.integration.test_agent_tools import sse_events

CANCEL = "Please cancel order A-1234 now"


def orders_user(stack: LocalStack, user: str = "carol") -> dict[str, str]:
    """A user whose token carries the scope of the order tools."""
    return {"Authorization": f"Bearer {stack.token(user, scopes=['tools:orders'])}"}


def propose(stack: LocalStack, url: str | None = None) -> dict[str, Any]:
    response = httpx.post(
        f"{url or stack.url('chat')}/v1/chat",
        json={"message": CANCEL},
        headers=orders_user(stack),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def decide(
    stack: LocalStack,
    confirmation_id: str,
    decision: str,
    user: str = "carol",
    url: str | None = None,
) -> httpx.Response:
    """Send a decision (to the stack's chat function, or the one at ``url``)."""
    return httpx.post(
        f"{url or stack.url('chat')}/v1/confirmations/{confirmation_id}",
        json={"decision": decision},
        headers=orders_user(stack, user),
        timeout=30,
    )


def cancels(stack: LocalStack) -> list[dict[str, Any]]:
    return [r for r in stack.demo_requests() if r["path"].endswith("/cancel")]


def test_a_confirm_tool_is_proposed_not_run(stack: LocalStack) -> None:
    body = propose(stack)
    assert body["finish_reason"] == "confirmation_required"
    proposal = body["confirmation"]
    assert proposal["tool"] == "cancel_order"
    assert proposal["arguments"] == {"order_id": "A-1234"}
    assert proposal["confirmation_id"].startswith("cf_")
    [call] = body["tool_calls"]
    assert call["status"] == "awaiting_confirmation"
    assert cancels(stack) == []


def test_approve_runs_the_call_once_even_when_sent_twice_at_once(stack: LocalStack) -> None:
    proposal = propose(stack)["confirmation"]

    async def both() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            url = f"{stack.url('chat')}/v1/confirmations/{proposal['confirmation_id']}"
            sends = [
                client.post(url, json={"decision": "approve"}, headers=orders_user(stack))
                for _ in range(2)
            ]
            return list(await asyncio.gather(*sends))

    first, second = asyncio.run(both())
    assert first.status_code == 200, first.text
    assert second.status_code in (200, 409), second.text
    if second.status_code == 200:
        assert second.content == first.content  # the replay is the same answer
    assert len(cancels(stack)) == 1
    answer = first.json()
    assert answer["finish_reason"] == "STOP"
    assert "cancelled" in answer["text"]  # the model answered with the call's result
    assert [c["status"] for c in answer["tool_calls"]] == ["ok"]
    # Sent again later: the same answer, still one cancellation.
    again = decide(stack, proposal["confirmation_id"], "approve")
    assert again.status_code == 200 and again.content == first.content
    assert len(cancels(stack)) == 1
    # The other decision now: refused.
    assert decide(stack, proposal["confirmation_id"], "deny").status_code == 422


def test_deny_tells_the_model_and_runs_nothing(stack: LocalStack) -> None:
    body = propose(stack)
    response = decide(stack, body["confirmation"]["confirmation_id"], "deny")
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["conversation_id"] == body["conversation_id"]
    assert [c["status"] for c in answer["tool_calls"]] == ["denied"]
    assert "declined" in answer["text"]
    assert cancels(stack) == []
    stored = httpx.get(
        f"{stack.url('chat')}/v1/conversations/{body['conversation_id']}",
        headers=orders_user(stack),
        timeout=10,
    ).json()
    assert [m["role"] for m in reversed(stored["messages"])] == ["user", "model", "model"]


def test_a_pause_survives_a_restart_of_the_function(stack: LocalStack) -> None:
    url, process = start_function(stack.settings, "chat")
    try:
        body = propose(stack, url)
    finally:
        process.kill()
        process.wait(10)
    url, process = start_function(stack.settings, "chat")
    try:
        response = decide(stack, body["confirmation"]["confirmation_id"], "approve", url=url)
    finally:
        process.kill()
    assert response.status_code == 200, response.text
    assert len(cancels(stack)) == 1


def test_only_the_owner_decides(stack: LocalStack) -> None:
    proposal = propose(stack)["confirmation"]
    response = decide(stack, proposal["confirmation_id"], "approve", user="mallory")
    assert response.status_code == 404, response.text
    assert cancels(stack) == []
    for bad in ("cf_short", "__name__", "cf_" + "A" * 16):
        assert decide(stack, bad, "approve").status_code == 404


def test_a_bad_decision_is_422(stack: LocalStack) -> None:
    proposal = propose(stack)["confirmation"]
    response = decide(stack, proposal["confirmation_id"], "maybe")
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "decision"


def test_an_expired_confirmation_is_410(stack: LocalStack) -> None:
    url, process = start_function(stack.settings, "chat", NGX_CONFIRMATION_TTL_S="30")
    try:
        proposal = propose(stack, url)["confirmation"]
        db = firestore.Client(project=stack.settings.project_id)
        db.collection("confirmations").document(proposal["confirmation_id"]).update(
            {"expires_at": datetime.now(UTC) - timedelta(seconds=1)}
        )
        response = decide(stack, proposal["confirmation_id"], "approve", url=url)
    finally:
        process.kill()
    assert response.status_code == 410, response.text
    assert response.json()["error"]["code"] == "gone"
    assert cancels(stack) == []


def test_a_stream_carries_the_proposal(stack: LocalStack) -> None:
    response = httpx.post(
        f"{stack.url('stream')}/v1/chat:stream",
        json={"message": CANCEL},
        headers=orders_user(stack),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    events = sse_events(response.text)
    names = [n for n, _ in events]
    assert names == ["meta", "tool_call", "confirmation_required", "usage", "done"]
    assert dict(events)["done"]["finish_reason"] == "confirmation_required"
    proposal = dict(events)["confirmation_required"]
    assert decide(stack, proposal["confirmation_id"], "approve").status_code == 200
    assert len(cancels(stack)) == 1


def test_a_claim_left_without_its_outcome_is_never_run_again(stack: LocalStack) -> None:
    """An instance that claimed an approved call and stopped before keeping its outcome: the call
    may have run, so a retry does not run it; the model is told its outcome is unknown."""
    proposal = propose(stack)["confirmation"]
    db = firestore.Client(project=stack.settings.project_id)
    db.collection("confirmations").document(proposal["confirmation_id"]).update(
        {"state": "executing"}
    )
    response = decide(stack, proposal["confirmation_id"], "approve")
    assert response.status_code == 200, response.text
    answer = response.json()
    assert cancels(stack) == []
    assert [c["status"] for c in answer["tool_calls"]] == ["error"]
    assert "outcome_unknown" in answer["tool_calls"][0]["summary"]
    assert decide(stack, proposal["confirmation_id"], "deny").status_code in (409, 422)


def test_a_deleted_conversations_proposal_cannot_be_approved(stack: LocalStack) -> None:
    body = propose(stack)
    deleted = httpx.delete(
        f"{stack.url('chat')}/v1/conversations/{body['conversation_id']}",
        headers=orders_user(stack),
        timeout=10,
    )
    assert deleted.status_code == 200, deleted.text
    response = decide(stack, body["confirmation"]["confirmation_id"], "approve")
    assert response.status_code == 404, response.text
    assert cancels(stack) == []


def test_a_resumed_loop_keeps_its_step_bound(stack: LocalStack) -> None:
    """Paused on its last allowed round, a loop that goes on may not start another one."""
    url, process = start_function(stack.settings, "chat", NGX_AGENT_MAX_STEPS="1")
    try:
        response = httpx.post(
            f"{url}/v1/chat",
            json={"message": 'tool!:cancel_order {"order_id": "A-77"}'},
            headers=orders_user(stack),
            timeout=30,
        )
        assert response.status_code == 200, response.text
        proposal = response.json()["confirmation"]
        decided = decide(stack, proposal["confirmation_id"], "approve", url=url)
    finally:
        process.kill()
    assert decided.status_code == 200, decided.text
    answer = decided.json()
    assert answer["finish_reason"] == "max_steps" and answer["confirmation"] is None
    assert len(cancels(stack)) == 1
