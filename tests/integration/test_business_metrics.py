"""Business metrics on a scripted workload: conversations, feedback and hand-offs made through the
API; `agentctl report` prints the rates the test computes on its own from what it did, and the
reports function keeps the day and writes it to Cloud Monitoring (the gRPC fake)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from emulator import devtokens
from emulator.grpc_server import serve
from emulator.monitoring import MonitoringFake
from emulator.settings import free_ports
from tests.conftest import LocalStack, start_function

RATING = {"up": 5, "down": 1}  # thumbs on the 1–5 scale; stars count as given


def script(stack: LocalStack, seed: int = 17) -> list[dict[str, Any]]:
    """Twelve conversations: some rated (thumbs or stars), some handed to a person."""
    rng = random.Random(seed)
    done = []
    for n in range(12):
        user = f"user{n % 3}"
        headers = stack.auth(user)
        chat = f"{stack.url('chat')}/v1/chat"
        first = httpx.post(chat, json={"message": f"question {n}"}, headers=headers, timeout=30)
        answer = first.json()
        cid = answer["conversation_id"]
        ratings: list[int] = []
        for rating in rng.sample([None, "up", "down", 4, 2, 5], k=rng.randint(0, 2)):
            if rating is None:
                continue
            body = {"stars": rating} if isinstance(rating, int) else {"thumbs": rating}
            second = httpx.post(
                chat,
                json={"message": f"more {n}", "conversation_id": cid},
                headers=headers,
                timeout=30,
            ).json()
            rated = httpx.post(
                f"{stack.url('chat')}/v1/conversations/{cid}/messages/{second['message_id']}/feedback",
                json=body,
                headers=headers,
                timeout=30,
            )
            assert rated.status_code == 200, rated.text
            ratings.append(rating if isinstance(rating, int) else RATING[rating])
        handed = n % 4 == 1
        if handed:
            held = httpx.post(
                chat,
                json={"message": "let me talk to a human", "conversation_id": cid},
                headers=headers,
                timeout=30,
            ).json()
            assert held["finish_reason"] == "handoff"
        done.append({"conversation_id": cid, "ratings": ratings, "handoff": handed})
    return done


def expected(done: list[dict[str, Any]]) -> dict[str, Any]:
    """The day's rates from the script's own record."""
    scores = [r for d in done for r in d["ratings"]]
    resolved = [d for d in done if not d["handoff"] and all(r > 2 for r in d["ratings"])]
    handoffs = sum(d["handoff"] for d in done)
    return {
        "conversations": len(done),
        "resolved": len(resolved),
        "handoffs": handoffs,
        "ratings": len(scores),
        "csat": round(sum(scores) / len(scores), 4) if scores else None,
        "resolution_rate": round(len(resolved) / len(done), 4),
        "deflection_rate": round(1 - handoffs / len(done), 4),
    }


def test_agentctl_report_prints_the_rates_of_a_scripted_day(
    stack: LocalStack, tmp_path: Path
) -> None:
    done = script(stack)
    want = expected(done)
    assert 0 < want["handoffs"] < len(done) and want["ratings"] > 0  # the script covers both
    png = tmp_path / "report.png"
    report = stack.agentctl("report", "--since", "2d", "--json", "--png", str(png))
    assert report.returncode == 0, report.stderr
    rows = json.loads(report.stdout)
    today = datetime.now(UTC).date().isoformat()
    assert [row["day"] for row in rows][-1] == today and len(rows) == 3
    row = rows[-1]
    assert {k: row[k] for k in want} == want
    assert rows[0]["conversations"] == 0 and rows[0]["resolution_rate"] is None
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = stack.agentctl("report", "--since", "1d")
    assert today in table.stdout and f"{want['resolution_rate'] * 100:.1f}%" in table.stdout


@pytest.mark.parametrize("since", ["0d", "401d", "7", "-1d", "7w", "1e3d", "७d"])
def test_agentctl_report_refuses_a_bad_period(stack: LocalStack, since: str) -> None:
    report = stack.agentctl("report", f"--since={since}")
    assert report.returncode == 1 and "--since" in report.stderr


@pytest.fixture
def monitoring(stack: LocalStack) -> Iterator[tuple[MonitoringFake, str]]:
    """The Cloud Monitoring fake, and a reports function that writes to it."""
    from emulator.cloudrun import CloudRunFake

    fake = MonitoringFake(
        CloudRunFake(stack.settings.project_id, "us-central1"), stack.settings.project_id
    )
    port = free_ports(1)[0]
    server = serve(fake, "127.0.0.1", port)
    url, process = start_function(
        stack.settings, "reports", NGX_MONITORING_ENDPOINT=f"127.0.0.1:{port}"
    )
    yield fake, url
    process.terminate()
    process.wait(10)
    server.stop(0.2)


async def test_the_nightly_job_keeps_the_day_and_writes_custom_metrics(
    stack: LocalStack, firestore_db: Any, monitoring: tuple[MonitoringFake, str]
) -> None:
    fake, url = monitoring
    done = script(stack, seed=5)
    want = expected(done)
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    moved = datetime.combine(yesterday, datetime.min.time(), UTC) + timedelta(hours=12)
    for item in done:  # the scripted conversations started yesterday
        await (
            firestore_db.collection("conversations")
            .document(item["conversation_id"])
            .update({"created_at": moved})
        )
    token = devtokens.invoker_token(
        stack.settings, devtokens.scheduler_account(stack.settings), url
    )
    response = httpx.post(
        url,
        json={"action": "business_metrics"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["metrics"]["day"] == yesterday.isoformat()
    assert {k: body["metrics"][k] for k in want} == want
    kept = (
        await firestore_db.collection("business_days").document(yesterday.isoformat()).get()
    ).to_dict()
    assert {k: kept[k] for k in want} == want
    written = {p["metric"].rsplit("/", 1)[1]: p for p in fake.written}
    assert written["resolution_rate"]["value"] == pytest.approx(want["resolution_rate"])
    assert written["deflection_rate"]["value"] == pytest.approx(want["deflection_rate"])
    assert written["csat"]["value"] == pytest.approx(want["csat"])
    assert written["conversations"]["value"] == len(done)
    assert {p["end"][:10] for p in fake.written} == {datetime.now(UTC).date().isoformat()}
    assert body["points_written"] == 4
    again = httpx.post(  # run twice (a retried job): the same day, replaced, not doubled
        url,
        json={"action": "business_metrics", "day": yesterday.isoformat()},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    assert again.status_code == 200 and again.json()["metrics"] == body["metrics"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"action": "business_metrics", "day": "2999-01-01"}, 422),
        ({"action": "business_metrics", "day": "today"}, 422),
        ({"action": "business_metrics", "day": "1999-01-01"}, 422),
        ({"action": "business_metrics", "day": 20261206}, 422),
        ({"action": "business_metrics", "extra": True}, 422),
        ({"action": "drop_everything"}, 422),
        ({"action": "business_metrics", "day": "2026-13-45"}, 422),
    ],
)
def test_bad_report_calls_are_refused(
    stack: LocalStack, monitoring: tuple[MonitoringFake, str], body: Any, status: int
) -> None:
    fake, url = monitoring
    token = devtokens.invoker_token(
        stack.settings, devtokens.scheduler_account(stack.settings), url
    )
    response = httpx.post(url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert response.status_code == status, response.text
    assert fake.written == []
    assert httpx.post(url, json=body, timeout=30).status_code == 401
    assert httpx.post(url, json=body, headers=stack.auth(), timeout=30).status_code == 401
