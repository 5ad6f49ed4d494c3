"""Every function answers /readyz with the dependencies it needs, as Cloud Run probes it."""

from __future__ import annotations

import time

import httpx
import pytest

from shared import registry
from tests.conftest import LocalStack

NEEDS = {
    "chat": {"redis", "firestore", "vertex"},
    "stream": {"redis", "firestore", "vertex"},
    "cache_maintenance": {"redis", "firestore"},
    "backup": {"firestore"},
    "ingest": {"firestore", "vertex", "redis"},  # redis: the embedding cache, optional
    "worker": {"firestore", "redis"},  # redis: notices to open sessions, optional
    "reports": {"firestore"},
}


@pytest.mark.parametrize("spec", registry.FUNCTIONS, ids=lambda s: s.name)
def test_each_function_is_ready_when_its_dependencies_answer(
    stack: LocalStack, spec: registry.FunctionSpec
) -> None:
    answer = httpx.get(f"{stack.url(spec.service)}{spec.probes.readiness}", timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "ready", "checks": dict.fromkeys(NEEDS[spec.name], "ok")}


def test_a_model_that_is_down_makes_chat_unready(stack: LocalStack) -> None:
    stack.fault("*", error_rate=1.0, status="UNAVAILABLE")
    for i in range(6):  # failed calls in a row open each model's breaker in that process
        httpx.post(
            f"{stack.url('chat')}/v1/chat",
            json={"message": f"down {i}"},
            headers=stack.auth(),
            timeout=60,
        )
    answer = httpx.get(f"{stack.url('chat')}/readyz", timeout=10)
    assert answer.status_code == 503 and answer.headers["retry-after"]
    assert answer.json()["error"]["details"] == [{"dependency": "vertex", "error": "CircuitOpen"}]
    # Leave the shared chat process as found: once the breakers' pause is over it is ready again.
    stack.clear_faults()
    deadline = time.monotonic() + 30
    while httpx.get(f"{stack.url('chat')}/readyz", timeout=10).status_code != 200:
        assert time.monotonic() < deadline, "chat did not become ready again"
        time.sleep(0.2)
    answer = httpx.post(
        f"{stack.url('chat')}/v1/chat", json={"message": "back"}, headers=stack.auth(), timeout=60
    )
    assert answer.status_code == 200  # the probe call closed the breaker
