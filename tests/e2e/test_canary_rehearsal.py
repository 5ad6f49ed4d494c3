"""A canary rehearsed on real requests: a load generator sends chats through a router that splits
them by the Cloud Run fake's traffic; Monitoring answers from those requests; `agentctl canary`
promotes a healthy candidate and rolls back a faulty one, judged relative to stable."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import httpx
import pytest

from emulator.rehearsal import CANDIDATE, STABLE, Rehearsal
from emulator.stack import ROOT
from tests.conftest import LocalStack

RATE_PER_S = 40
TARGET = ["--revision", CANDIDATE, "--yes"]
FAST = ["--steps", "20,50,100", "--bake", "2s", "--interval", "1s", "--window", "2s"]
FAST += ["--max-window", "10s", "--min-requests", "60", "--lag", "0s", "--max-wait", "120s"]
# Two revisions, the stack and the load share two cores here: one slow request moves a p95 of a
# few dozen, so the latency comparison allows 2.5× (production: 1.5× over minutes of traffic).
FAST += ["--max-p95-ratio", "2.5"]
# The faulty candidate answers from a model that fails half the time, with no retry or fallback.
FAULTY = {
    "NGX_MODEL_TIERS": json.dumps({"fast": ["gemini-2.5-pro"], "quality": ["gemini-2.5-pro"]}),
    "NGX_RETRY_MAX_ATTEMPTS": "1",
}


class Load:
    """Chats at a steady rate through the router until stopped (at most 120 s), each unique so
    every one reaches a model."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.statuses: list[int] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with httpx.AsyncClient(base_url=self.url, timeout=30, headers=headers) as client:
            tasks: set[asyncio.Task[None]] = set()

            async def one(i: int) -> None:
                answer = await client.post("/v1/chat", json={"message": f"rehearsal {i}"})
                self.statuses.append(answer.status_code)

            for i in range(RATE_PER_S * 120):
                if self.stop.is_set():
                    break
                task = asyncio.create_task(one(i))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                await asyncio.sleep(1 / RATE_PER_S)
            await asyncio.gather(*tasks, return_exceptions=True)

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(60)


@pytest.fixture
def rehearsal(stack: LocalStack, request: pytest.FixtureRequest) -> Iterator[Rehearsal]:
    candidate_env = FAULTY if request.param == "faulty" else {}
    if request.param == "faulty":
        stack.fault("gemini-2.5-pro", error_rate=0.5, status="UNAVAILABLE", seed=3)
    with Rehearsal(stack.settings, candidate_env).running() as running:
        yield running


def canary(rehearsal: Rehearsal) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", "canary", "start", "--service", "chat", *TARGET, *FAST],
        cwd=ROOT,
        env={**os.environ, **rehearsal.agentctl_env},
        capture_output=True,
        text=True,
        timeout=180,
    )


def split(rehearsal: Rehearsal) -> dict[str, int]:
    return rehearsal.run.split(f"{rehearsal.run.parent}/services/ngx-chat")


@pytest.mark.parametrize("rehearsal", ["healthy"], indirect=True)
def test_a_healthy_candidate_is_promoted_on_real_traffic(
    stack: LocalStack, rehearsal: Rehearsal
) -> None:
    with Load(rehearsal.router_url, stack.token("load")) as load:
        result = canary(rehearsal)
    assert result.returncode == 0, result.stdout + result.stderr
    assert split(rehearsal) == {STABLE: 0, CANDIDATE: 100} or split(rehearsal) == {CANDIDATE: 100}
    # Both revisions served real requests, and every one of them succeeded.
    assert rehearsal.served(STABLE) > 0 and rehearsal.served(CANDIDATE) > 0
    assert set(load.statuses) == {200}


@pytest.mark.parametrize("rehearsal", ["faulty"], indirect=True)
def test_a_faulty_candidate_is_rolled_back_in_its_first_failed_window(
    stack: LocalStack, rehearsal: Rehearsal
) -> None:
    with Load(rehearsal.router_url, stack.token("load")) as load:
        result = canary(rehearsal)
        served_at_rollback = rehearsal.served(CANDIDATE)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "rolled back at 20%" in result.stdout + result.stderr
    assert "stable's" in result.stdout + result.stderr  # judged relative to stable
    assert split(rehearsal).get(CANDIDATE, 0) == 0
    # The candidate's failures were real answers to real requests, and they stopped with it.
    assert 503 in load.statuses and served_at_rollback > 0
    assert rehearsal.served(CANDIDATE) - served_at_rollback <= 5
