"""Canary rollouts against gRPC fakes of Cloud Run Admin v2 and Monitoring v3, driven by the real
``run_v2`` / ``monitoring_v3`` clients, with rollout state in the real Firestore emulator.

The Monitoring fake splits a modelled request rate by the traffic the Cloud Run fake actually
routes, so what a check sees follows from the split the rollout set. Checks run every 0.1 s and
bakes last 0.3 s: a whole rollout takes about a second.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from emulator.cloudrun import CloudRunFake
from emulator.grpc_server import serve
from emulator.monitoring import LLM_ERRORS, MonitoringFake
from emulator.settings import free_ports
from ops.canary.plan import make_plan
from ops.canary.rollout import Canary
from ops.settings import get_ops_settings
from shared import errors
from tests.conftest import LocalStack

SERVICE = "ngx-chat"
OLD = "ngx-chat-00001-old"
STABLE = "ngx-chat-00002-abc"
CANDIDATE = "ngx-chat-00003-def"
COMMIT_TAG = "c-0a1b2c3"  # what `gcloud run deploy --no-traffic --tag` gave the candidate
RATE = 4000.0  # requests per second: 80 reach a 20% candidate in one 0.1 s window
FAST: dict[str, object] = {
    "interval_s": 0.1,
    "window_s": 0.1,
    "max_window_s": 0.4,
    "min_requests": 20,
    "lag_s": 0.0,
}
FAST_FLAGS = ["--interval", "100ms", "--window", "100ms", "--max-window", "400ms"]
FAST_FLAGS += ["--min-requests", "20", "--lag", "0s", "--yes"]


@dataclass
class Google:
    """The Cloud Run and Monitoring fakes and where they answer."""

    run: CloudRunFake
    monitoring: MonitoringFake
    name: str
    env: dict[str, str]

    def split(self) -> dict[str, int]:
        return self.run.split(self.name)

    def splits_applied(self) -> list[dict[str, int]]:
        return [change["split"] for change in self.run.changes]

    def traffic(self) -> list[tuple[str, int, str]]:
        return [(t.revision, t.percent, t.tag) for t in self.run.services[self.name].traffic]


@pytest.fixture
def google(stack: LocalStack) -> Iterator[Google]:
    run = CloudRunFake(stack.settings.project_id, "us-central1", operation_s=0.05)
    name = run.add_service(
        SERVICE, [OLD, STABLE, CANDIDATE], serving=STABLE, tags={COMMIT_TAG: CANDIDATE}
    )
    monitoring = MonitoringFake(run, stack.settings.project_id, min_alignment_s=0)
    monitoring.set_rate(SERVICE, RATE)
    run_port, monitoring_port = free_ports(2)
    servers = [serve(run, "127.0.0.1", run_port), serve(monitoring, "127.0.0.1", monitoring_port)]
    env = {
        "NGX_RUN_ENDPOINT": f"127.0.0.1:{run_port}",
        "NGX_MONITORING_ENDPOINT": f"127.0.0.1:{monitoring_port}",
    }
    yield Google(run, monitoring, name, env)
    for server in servers:
        server.stop(0.2)


def canary_for(stack: LocalStack, google: Google, db: Any, who: str = "test:ops") -> Canary:
    settings = stack.client_settings(
        run_endpoint=google.env["NGX_RUN_ENDPOINT"],
        monitoring_endpoint=google.env["NGX_MONITORING_ENDPOINT"],
    )
    return Canary(settings, db, who)


@pytest.fixture
async def canary(stack: LocalStack, google: Google, firestore_db: Any) -> AsyncIterator[Canary]:
    client = canary_for(stack, google, firestore_db)
    yield client
    await client.close()


def plan(bake: tuple[float, ...] = (0.3, 0.3), **gates: Any) -> Any:
    return make_plan([20, 50, 100], list(bake), {**FAST, **gates})


def soon(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


async def test_a_healthy_candidate_reaches_100_percent_step_by_step(
    canary: Canary, google: Google, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "ngx.canary")
    started = await canary.start("chat", CANDIDATE, plan())
    assert started.service == SERVICE and started.stable == STABLE  # stable: the one at 100%
    assert google.split() == {STABLE: 80, CANDIDATE: 20}

    done = await asyncio.wait_for(canary.drive("chat"), 10)

    assert done.status == "promoted" and done.percent == 100
    assert google.splits_applied() == [
        {STABLE: 80, CANDIDATE: 20},
        {STABLE: 50, CANDIDATE: 50},
        {CANDIDATE: 100},
    ]
    assert google.run.tags(google.name) == {"canary": CANDIDATE, COMMIT_TAG: CANDIDATE}
    assert [c.action for c in done.history] == ["start", "advance", "promote"]
    start, advance, promote = (c.at for c in done.history)
    assert advance - start >= timedelta(seconds=0.3) and promote - advance >= timedelta(seconds=0.3)
    assert done.checks and all(c.verdict in ("pass", "inconclusive") for c in done.checks)
    assert done.checks[-1].verdict == "pass" and done.checks[-1].requests >= 20
    # Read-edit-write: every write carried the etag it read, and no revision was created.
    assert all(update["etag"] for update in google.run.update_requests)
    assert google.run.created_revisions == []
    # The checks asked Monitoring for the candidate's counts by code class and its p95.
    kinds = {(q["metric"], q["aligner"], q["reducer"]) for q in google.monitoring.queries}
    assert ("run.googleapis.com/request_count", "ALIGN_DELTA", "REDUCE_SUM") in kinds
    assert (
        "run.googleapis.com/request_latencies",
        "ALIGN_DELTA",
        "REDUCE_PERCENTILE_95",
    ) in kinds
    # Each check reads the candidate and, over the same window, the stable revision.
    revisions = [
        rev
        for q in google.monitoring.queries[2:]
        for rev in (STABLE, CANDIDATE)
        if f'revision_name = "{rev}"' in q["filter"]
    ]
    assert len(revisions) == len(google.monitoring.queries[2:])
    assert {STABLE, CANDIDATE} == set(revisions)
    # Every traffic change is a structured log line naming the split.
    changed = [r for r in caplog.records if r.getMessage() == "canary traffic changed"]
    assert [r.__dict__["percents"] for r in changed] == google.splits_applied()


@pytest.mark.parametrize(
    ("behaviour", "gates", "reason"),
    [
        ({"error_ratio": 0.08}, {}, r"error ratio \d+\.\d% > 2\.0%"),
        ({"p95_ms": 3000.0}, {}, r"p95 3,\d{3} ms > 2,000 ms"),
        ({"llm_error_ratio": 0.2}, {"kpis": True}, r"model error ratio \d+\.\d% > 5\.0%"),
        # Within the absolute bounds (2%, 2,000 ms), but worse than the stable revision.
        # (absolute bound lifted to 20%: however few requests a window holds, only the
        # comparison with stable can fail this one)
        (
            {"error_ratio": 0.05},
            {"max_error_ratio": 0.2},
            r"^error ratio \d+\.\d% > stable's 0\.0% \+ 1\.0%$",
        ),
        ({"p95_ms": 1500.0}, {}, r"p95 1,\d{3} ms > 1\.5 × stable's \d{3} ms"),
    ],
    ids=["errors-8-percent", "slow", "model-errors-kpi", "worse-than-stable", "slower-than-stable"],
)
async def test_a_failing_candidate_is_rolled_back_at_the_first_failed_window(
    canary: Canary,
    google: Google,
    behaviour: dict[str, float],
    gates: dict[str, Any],
    reason: str,
) -> None:
    google.monitoring.set_revision(CANDIDATE, **behaviour)
    await canary.start("chat", CANDIDATE, plan(**gates))

    done = await asyncio.wait_for(canary.drive("chat"), 10)

    assert done.status == "rolled_back" and done.failed_checks == 1
    assert [c.verdict for c in done.checks].count("fail") == 1
    assert done.checks[-1].verdict == "fail" and done.checks[-1].percent == 20
    assert done.outcome.startswith("rolled back at 20%")
    assert re.search(reason, done.checks[-1].reason), done.checks[-1].reason
    assert google.split() == {STABLE: 100}
    assert google.splits_applied() == [{STABLE: 80, CANDIDATE: 20}, {STABLE: 100}]
    # The candidate keeps its tag at 0% so it can still be reached for debugging.
    assert (CANDIDATE, 0, "canary") in google.traffic()
    assert google.run.tags(google.name) == {"canary": CANDIDATE, COMMIT_TAG: CANDIDATE}
    assert [c.action for c in done.history] == ["start", "rollback"]
    if gates.get("kpis"):
        assert any(q["metric"] == LLM_ERRORS for q in google.monitoring.queries)


async def test_a_low_traffic_candidate_stays_inconclusive_and_is_never_promoted(
    canary: Canary, google: Google
) -> None:
    google.monitoring.set_rate(SERVICE, 50.0)  # 1 request per window at 20%
    await canary.start("chat", CANDIDATE, plan(bake=(0.1, 0.1)))

    waited = await canary.drive("chat", until=soon(1.2))

    assert waited.status == "running" and waited.step == 0 and waited.percent == 20
    assert len(waited.checks) >= 5
    assert {c.verdict for c in waited.checks} == {"inconclusive"}
    assert all("< 20 needed" in c.reason for c in waited.checks)
    assert {c.window_s for c in waited.checks} == {0.4}  # each quiet window widened first
    assert google.splits_applied() == [{STABLE: 80, CANDIDATE: 20}]
    assert [c.action for c in waited.history] == ["start"]


async def test_abort_mid_rollout_restores_100_percent_stable(
    stack: LocalStack, canary: Canary, google: Google, firestore_db: Any
) -> None:
    await canary.start("chat", CANDIDATE, plan(bake=(0.2, 60.0)))
    driver = asyncio.create_task(canary.drive("chat"))
    for _ in range(100):
        if google.split().get(CANDIDATE) == 50:
            break
        await asyncio.sleep(0.05)
    assert google.split() == {STABLE: 50, CANDIDATE: 50}

    other = canary_for(stack, google, firestore_db, who="test:oncall")  # another terminal
    try:
        aborted = await other.abort("chat", reason="pager fired")
    finally:
        await other.close()
    ended = await asyncio.wait_for(driver, 5)  # the driving process notices and stops

    assert aborted.status == ended.status == "aborted"
    assert google.split() == {STABLE: 100}
    assert (CANDIDATE, 0, "canary") in google.traffic()
    assert google.splits_applied()[-1] == {STABLE: 100}
    last = ended.history[-1]
    assert (last.action, last.by, last.reason) == ("abort", "test:oncall", "pager fired")
    assert last.percents == {STABLE: 100, CANDIDATE: 0}


async def test_promote_moves_one_step_and_promote_full_skips_the_rest(
    canary: Canary, google: Google, firestore_db: Any
) -> None:
    await canary.start("chat", CANDIDATE, make_plan([10, 25, 50, 100], [60.0], FAST))
    one = await canary.promote("chat")
    assert one.status == "running" and one.percent == 25
    assert google.split() == {STABLE: 75, CANDIDATE: 25}

    full = await canary.promote("chat", full=True)

    assert full.status == "promoted"
    assert google.splits_applied() == [
        {STABLE: 90, CANDIDATE: 10},
        {STABLE: 75, CANDIDATE: 25},
        {CANDIDATE: 100},
    ]
    assert [c.action for c in full.history] == ["start", "advance", "promote"]
    with pytest.raises(errors.FailedPrecondition, match="already ended"):
        await canary.abort("chat")

    # The next rollout may start; the ended one is kept, history and all.
    nxt = await canary.start("chat", OLD, plan(bake=(60.0, 60.0)))
    assert nxt.stable == CANDIDATE and google.split() == {CANDIDATE: 80, OLD: 20}
    past = [d.to_dict() async for d in firestore_db.collection(f"canaries/{SERVICE}/past").stream()]
    assert [p["candidate"] for p in past] == [CANDIDATE]
    assert [c["action"] for c in past[0]["history"]] == ["start", "advance", "promote"]


async def test_a_concurrent_edit_of_the_service_is_kept(canary: Canary, google: Google) -> None:
    from google.cloud import run_v2

    await canary.start("chat", CANDIDATE, plan(bake=(60.0, 60.0)))
    kind = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION

    def someone_else(service: Any) -> None:  # tags the old revision between our read and write
        service.traffic.append(run_v2.TrafficTarget(type_=kind, revision=OLD, tag="preview"))

    google.run.before_next_update(someone_else)
    await canary.promote("chat")

    refused = [u for u in google.run.update_requests if u["etag"] and not u["validate_only"]]
    assert len(refused) == 3  # step 1, the stale write (ABORTED), the redone write
    assert google.split() == {STABLE: 50, CANDIDATE: 50}
    assert google.run.tags(google.name) == {
        "canary": CANDIDATE,
        "preview": OLD,
        COMMIT_TAG: CANDIDATE,
    }


def agentctl_env(stack: LocalStack, google: Google) -> dict[str, str]:
    from emulator.stack import function_env

    return {**function_env(stack.settings), **google.env}


@pytest.fixture
def in_process(stack: LocalStack, google: Google, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``agentctl canary …`` in this process, as a terminal would run it: (code, out, err)."""
    for key, value in agentctl_env(stack, google).items():
        monkeypatch.setenv(key, value)
    get_ops_settings.cache_clear()
    logger = logging.getLogger("ngx.canary")

    def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
        from ops.cli import main

        capsys.readouterr()
        code = main(["canary", *args])
        out, err = capsys.readouterr()
        return code, out, err

    yield run
    get_ops_settings.cache_clear()
    logger.handlers[:] = []
    logger.propagate = True


def stored(stack: LocalStack) -> httpx.Response:
    return httpx.get(
        f"http://{stack.firestore_host}/v1/projects/{stack.settings.project_id}"
        f"/databases/(default)/documents/canaries/{SERVICE}",
        headers={"Authorization": "Bearer owner"},
        timeout=10,
    )


def test_a_new_process_resumes_a_stored_rollout(
    stack: LocalStack, google: Google, in_process: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = in_process(
        capsys, "start", "--service", "chat", "--revision", CANDIDATE, "--bake", "300ms",
        "--no-wait", *FAST_FLAGS,
    )  # fmt: skip
    assert code == 0 and "still running" in out
    assert google.split() == {STABLE: 80, CANDIDATE: 20}

    resumed = subprocess.run(
        [
            sys.executable,
            "-m",
            "ops.cli",
            "canary",
            "start",
            "--resume",
            "--service",
            "chat",
            "--yes",
        ],
        env={**os.environ, **agentctl_env(stack, google)},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert resumed.returncode == 0, resumed.stderr
    assert f"{SERVICE}: promoted: every step passed its checks" in resumed.stdout
    assert google.splits_applied() == [
        {STABLE: 80, CANDIDATE: 20},
        {STABLE: 50, CANDIDATE: 50},
        {CANDIDATE: 100},
    ]
    logs = [json.loads(line) for line in resumed.stderr.splitlines() if line.startswith("{")]
    changes = [entry for entry in logs if entry["message"] == "canary traffic changed"]
    assert [entry["percents"] for entry in changes] == google.splits_applied()[1:]
    assert all(entry["logger"] == "ngx.canary" and entry["severity"] == "INFO" for entry in changes)

    code, out, _ = in_process(capsys, "status", "--service", "chat")
    assert code == 0
    assert out.startswith(f"{SERVICE}: promoted, candidate {CANDIDATE} at 100%")
    assert f"traffic now: {CANDIDATE} 100%" in out and "tags: canary" in out
    history = json.loads(in_process(capsys, "status", "--service", "chat", "--json")[1])
    actions = [change["action"] for change in history["rollout"]["history"]]
    assert actions == ["start", "advance", "promote"]


def test_a_dry_run_prints_the_plan_and_changes_nothing(
    stack: LocalStack, google: Google, in_process: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = in_process(
        capsys,
        "start",
        "--service",
        "chat",
        "--revision",
        CANDIDATE,  # no --yes: a dry run
    )

    assert code == 0, err
    assert f"step 1: {STABLE} 80%, {CANDIDATE} 20%  (bake 0:30:00)" in out
    assert f"step 2: {STABLE} 50%, {CANDIDATE} 50%  (bake 1:00:00)" in out
    assert f"step 3: {STABLE} 0%, {CANDIDATE} 100%  (final)" in out
    assert f"rollback: {STABLE} 100%, {CANDIDATE} 0%" in out
    assert len(google.run.update_requests) == 4  # every step and the rollback, validated
    assert all(update["validate_only"] for update in google.run.update_requests)
    assert google.run.changes == [] and google.split() == {STABLE: 100}
    assert stored(stack).status_code == 404


BAD_STARTS = [
    (["--service", "nope", "--revision", CANDIDATE], "service nope not found"),
    (
        ["--service", "chat", "--revision", "ngx-chat-09999-zzz"],
        f"revision ngx-chat-09999-zzz not found in service {SERVICE}",
    ),
    (["--service", "chat", "--revision", CANDIDATE, "--steps", "50,20,100"], "steps must increase"),
    (["--service", "chat", "--revision", CANDIDATE, "--steps", "20,50"], "must end at 100"),
    (["--service", "chat", "--revision", CANDIDATE, "--steps", "20,150"], "150% is not between"),
    (["--service", "chat", "--revision", CANDIDATE, "--steps", "20,x,100"], "'x' is not a whole"),
    (["--service", "chat", "--revision", CANDIDATE, "--bake", "5 min"], "is not a duration"),
    (["--service", "chat", "--revision", CANDIDATE, "--bake", "1m,2m,3m"], "one duration for"),
    (["--service", "chat", "--revision", STABLE], "is already the stable revision"),
    (["--service", "chat", "--revision", CANDIDATE, "--tag", "Not_OK"], "not a valid DNS label"),
    (["--service", "chat", "--revision", CANDIDATE, "--max-error-ratio", "2"], "max-error-ratio"),
]


@pytest.mark.parametrize(("args", "message"), BAD_STARTS, ids=[m for _, m in BAD_STARTS])
def test_a_bad_start_is_refused_with_one_clear_line_and_nothing_changes(
    stack: LocalStack,
    google: Google,
    in_process: Any,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    code, _, err = in_process(capsys, "start", *args)

    assert code == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("agentctl canary start: ") and message in last, err
    assert "Traceback" not in err
    assert google.run.changes == [] and google.split() == {STABLE: 100}
    assert all(update["validate_only"] for update in google.run.update_requests)
    assert stored(stack).status_code == 404


def test_a_second_start_while_a_rollout_runs_is_refused(
    stack: LocalStack, google: Google, in_process: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    first = ["start", "--service", "chat", "--revision", CANDIDATE, "--no-wait", *FAST_FLAGS]
    assert in_process(capsys, *first)[0] == 0
    before = stored(stack).json()

    code, _, err = in_process(capsys, "start", "--service", "chat", "--revision", OLD, "--no-wait")

    assert code == 2
    assert err.strip().splitlines()[-1] == (
        f"agentctl canary start: a rollout of {SERVICE} is already running "
        f"(candidate {CANDIDATE} at 20%): promote or abort it first"
    )
    assert stored(stack).json()["fields"] == before["fields"]
    assert google.splits_applied() == [{STABLE: 80, CANDIDATE: 20}]


@pytest.mark.parametrize("action", [["promote"], ["promote", "--full"], ["abort"], ["status"]])
def test_promote_abort_or_status_without_a_rollout_is_refused(
    google: Google, in_process: Any, capsys: pytest.CaptureFixture[str], action: list[str]
) -> None:
    code, _, err = in_process(capsys, *action, "--service", "chat")

    assert code == 2
    assert err.strip() == (
        f"agentctl canary {action[0]}: no rollout of {SERVICE}: "
        "start one with `agentctl canary start`"
    )
    assert google.run.update_requests == []


def test_a_rolled_back_rollout_exits_1(
    google: Google, in_process: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    google.monitoring.set_revision(CANDIDATE, error_ratio=0.5)
    code, out, _ = in_process(
        capsys, "start", "--service", "chat", "--revision", CANDIDATE, *FAST_FLAGS
    )

    assert code == 1
    assert f"{SERVICE}: rolled back at 20%: error ratio" in out
    assert " 20%  fail " in out
    assert google.split() == {STABLE: 100}


async def test_a_newer_release_supersedes_a_rollout_left_running(
    canary: Canary, google: Google
) -> None:
    with google.run.lock:  # a newer build deployed another revision
        google.run.revisions[google.name].append("ngx-chat-00004-new")
    await canary.start("chat", CANDIDATE, plan(), tag="c-0a1b2c3")
    with pytest.raises(errors.Conflict):
        await canary.start("chat", "ngx-chat-00004-new", plan())
    assert google.split() == {STABLE: 80, CANDIDATE: 20}

    newer = await canary.start("chat", "ngx-chat-00004-new", plan(), supersede=True)

    assert newer.stable == STABLE and newer.candidate == "ngx-chat-00004-new"
    assert google.splits_applied() == [
        {STABLE: 80, CANDIDATE: 20},
        {STABLE: 100},
        {STABLE: 80, "ngx-chat-00004-new": 20},
    ]
    assert (CANDIDATE, 0, COMMIT_TAG) in google.traffic()  # the older candidate keeps its tag


async def test_a_stream_is_judged_without_a_request_latency_gate(
    canary: Canary, google: Google
) -> None:
    google.monitoring.set_revision(CANDIDATE, p95_ms=60_000.0)  # one-minute streams
    await canary.start("chat", CANDIDATE, plan(max_p95_ms=None))

    done = await asyncio.wait_for(canary.drive("chat"), 10)

    assert done.status == "promoted"
    assert all("p95" not in c.reason for c in done.checks)


async def test_checks_look_at_a_window_that_ends_before_the_ingestion_lag(
    canary: Canary, google: Google
) -> None:
    await canary.start("chat", CANDIDATE, plan(lag_s=0.4, window_s=0.2))
    await canary.drive("chat", until=soon(0.35))

    checks = [q for q in google.monitoring.queries if f'"{CANDIDATE}"' in q["filter"]]
    assert checks
    for query in checks:  # the window, or twice it when too few requests had arrived in it
        width = query["end"] - query["start"]
        assert abs(width - 0.2) < 0.01 or abs(width - 0.4) < 0.01
        assert query["end"] < time.time() - 0.3
