"""Authentication, ownership, CORS and rate limits on the running chat and stream functions."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from emulator import devtokens
from shared.auth.apikeys import ApiKeyStore
from shared.memorystore import Memorystore
from tests.conftest import LocalStack, start_function


def post_chat(stack: LocalStack, headers: dict[str, str], **body: Any) -> httpx.Response:
    return httpx.post(
        f"{stack.url('chat')}/v1/chat", json={"message": "hi", **body}, headers=headers, timeout=30
    )


def assert_401(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "unauthenticated"
    assert response.json()["error"]["request_id"] == response.headers["X-Request-Id"]


@pytest.mark.parametrize("function,path", [("chat", "/v1/chat"), ("stream", "/v1/chat:stream")])
def test_missing_credentials_are_401(stack: LocalStack, function: str, path: str) -> None:
    response = httpx.post(f"{stack.url(function)}{path}", json={"message": "hi"}, timeout=10)
    assert_401(response)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert stack.model_calls()["total"] == 0


def test_bad_tokens_are_401(stack: LocalStack, tmp_path: Path) -> None:
    other_key = devtokens.ensure_key(tmp_path / "other")
    forged = devtokens.mint(
        other_key,
        user="alice",
        issuer=devtokens.issuer(stack.settings),
        audience=stack.settings.project_id,
    )
    cases = {
        "expired": stack.token("alice", ttl_s=-120),  # beyond the 60 s clock-skew allowance
        "wrong signature": forged,
        "wrong audience": stack.token("alice", aud="another-project"),
        "wrong issuer": stack.token("alice", iss="https://evil.example"),
        "garbage": "not.a.jwt",
    }
    for name, token in cases.items():
        response = post_chat(stack, {"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, name
    assert_401(post_chat(stack, {"Authorization": "Basic abc"}))
    assert stack.model_calls()["total"] == 0


def test_token_within_clock_skew_is_accepted(stack: LocalStack) -> None:
    token = stack.token("alice", ttl_s=-10)  # expired 10 s ago: inside the allowed skew
    assert post_chat(stack, {"Authorization": f"Bearer {token}"}).status_code == 200


async def test_api_keys_work_until_revoked(stack: LocalStack, firestore_db: Any) -> None:
    settings = stack.client_settings()
    store = Memorystore(settings)
    keys = ApiKeyStore(firestore_db, store, cache_s=60)
    plaintext, record = await keys.create("mobile", tier="standard")
    stored = await firestore_db.collection("api_keys").get()
    assert plaintext not in str([d.to_dict() for d in stored])  # only the hash is kept
    headers = {"X-API-Key": plaintext}
    assert post_chat(stack, headers).status_code == 200
    assert post_chat(stack, headers).status_code == 200  # now served from the key cache
    await keys.revoke(record.key_id)
    assert_401(post_chat(stack, headers))
    assert_401(post_chat(stack, {"X-API-Key": "ngx_unknown"}))
    limited, _ = await keys.create("reader", scopes=("conversations",))
    forbidden = post_chat(stack, {"X-API-Key": limited})
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["code"] == "permission_denied"
    await store.close()


def test_another_users_conversation_is_404(stack: LocalStack) -> None:
    mine = post_chat(stack, stack.auth("alice")).json()
    cid = mine["conversation_id"]
    base = stack.url("chat")
    bob = stack.auth("bob")
    calls_before = stack.model_calls()["total"]
    assert httpx.get(f"{base}/v1/conversations/{cid}", headers=bob, timeout=10).status_code == 404
    assert (
        httpx.delete(f"{base}/v1/conversations/{cid}", headers=bob, timeout=10).status_code == 404
    )
    assert post_chat(stack, bob, conversation_id=cid).status_code == 404
    assert (
        httpx.get(f"{base}/v1/conversations", headers=bob, timeout=10).json()["conversations"] == []
    )
    assert stack.model_calls()["total"] == calls_before
    detail = httpx.get(f"{base}/v1/conversations/{cid}", headers=stack.auth("alice"), timeout=10)
    assert detail.status_code == 200 and len(detail.json()["messages"]) == 2


def test_cors_allow_list(stack: LocalStack) -> None:
    url = f"{stack.url('chat')}/v1/chat"
    allowed, foreign = "http://localhost:3000", "https://evil.example"
    ok = httpx.post(url, json={"message": "hi"}, headers={**stack.auth(), "Origin": allowed})
    assert ok.headers["Access-Control-Allow-Origin"] == allowed
    assert "X-Request-Id" in ok.headers["Access-Control-Expose-Headers"]
    bad = httpx.post(url, json={"message": "hi"}, headers={**stack.auth(), "Origin": foreign})
    assert bad.status_code == 200 and "Access-Control-Allow-Origin" not in bad.headers
    preflight = {"Access-Control-Request-Method": "POST"}
    good = httpx.options(url, headers={**preflight, "Origin": allowed})
    assert good.status_code == 204
    assert good.headers["Access-Control-Allow-Origin"] == allowed
    assert "POST" in good.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in good.headers["Access-Control-Allow-Headers"]
    refused = httpx.options(url, headers={**preflight, "Origin": foreign})
    assert "Access-Control-Allow-Origin" not in refused.headers


def test_health_is_public_and_readiness_checks_dependencies(stack: LocalStack) -> None:
    assert httpx.get(f"{stack.url('chat')}/healthz", timeout=10).json() == {"status": "ok"}
    ready = httpx.get(f"{stack.url('chat')}/readyz", timeout=10)
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"redis": "ok", "firestore": "ok", "vertex": "ok"}


@pytest.fixture
def three_chat_instances(stack: LocalStack) -> Iterator[list[str]]:
    """The stack's chat function plus two more processes of it, as Cloud Run would scale."""
    processes = []
    urls = [stack.url("chat")]
    try:
        for _ in range(2):
            url, process = start_function(stack.settings, "chat")
            processes.append(process)
            urls.append(url)
        yield urls
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)


async def test_rate_limit_is_shared_by_every_instance(
    stack: LocalStack, firestore_db: Any, three_chat_instances: list[str]
) -> None:
    settings = stack.client_settings()
    store = Memorystore(settings)
    plaintext, _ = await ApiKeyStore(firestore_db, store).create("free-app", tier="free")
    await store.close()
    limit = settings.rate_limit_tiers["free"]
    headers = {"X-API-Key": plaintext}
    async with httpx.AsyncClient(timeout=30) as client:
        responses = await asyncio.gather(
            *(
                client.get(f"{three_chat_instances[i % 3]}/v1/conversations", headers=headers)
                for i in range(3 * limit)
            )
        )
    statuses = [r.status_code for r in responses]
    admitted = statuses.count(200)
    assert abs(admitted - limit) <= 1, statuses
    assert statuses.count(429) == len(statuses) - admitted
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["RateLimit-Limit"] == str(limit)
    assert refused.headers["RateLimit-Remaining"] == "0"
    ok = next(r for r in responses if r.status_code == 200)
    assert int(ok.headers["RateLimit-Remaining"]) < limit
