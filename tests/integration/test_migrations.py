"""Versioned migrations on the Firestore emulator: applied once, resumable after a kill, one run at
a time, and the shipped migration 0001 through ``agentctl migrate``.

The crash test kills a real process (SIGKILL) while it commits steps of a migration that is *not*
idempotent by itself (it increments a counter): every document must end counted exactly once.
Run as a module, this file is that process: ``python -m tests.integration.test_migrations``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ops.migrations.runner import LeaseBusy, MigrationError, Progress, Runner, Step
from tests.conftest import LocalStack, repo_root

ITEMS = 60
BATCH = 5


@dataclass(frozen=True)
class Touch:
    """Adds 1 to ``touched`` on every ``items`` document: applied twice, a document shows 2."""

    number: int = 1
    name: str = "touch"
    description: str = "count each item once"

    async def step(self, db: Any, cursor: str | None, limit: int) -> Step:
        from google.cloud import firestore
        from google.cloud.firestore_v1.base_query import FieldFilter

        items = db.collection("items")
        query = items.order_by("__name__").limit(limit)
        if cursor:
            query = query.where(filter=FieldFilter("__name__", ">", items.document(cursor)))
        docs = [doc async for doc in query.stream()]
        updates = {doc.reference.path: {"touched": firestore.Increment(1)} for doc in docs}
        return Step(updates, docs[-1].id if len(docs) == limit else None)


def runner(db: Any, **fields: Any) -> Runner:
    return Runner(db, [Touch()], **{"lease_s": 30.0, "batch_size": BATCH, **fields})


async def seed_items(db: Any) -> None:
    batch = db.batch()
    for i in range(ITEMS):
        batch.set(db.collection("items").document(f"item-{i:03d}"), {"n": i})
    await batch.commit()


async def touched(db: Any) -> list[int]:
    return [(d.to_dict() or {}).get("touched", 0) async for d in db.collection("items").stream()]


async def record(db: Any, number: int = 1) -> dict[str, Any]:
    snapshot = await db.collection("migrations").document(f"{number:04d}").get()
    return snapshot.to_dict() or {}


def later(seconds: float) -> Any:
    """A clock this many seconds ahead: a lease taken with the real clock has expired for it."""
    return lambda: datetime.now(UTC) + timedelta(seconds=seconds)


async def test_a_run_killed_mid_way_resumes_and_counts_every_document_once(
    stack: LocalStack, firestore_db: Any
) -> None:
    await seed_items(firestore_db)
    env = {**os.environ, "FIRESTORE_EMULATOR_HOST": stack.firestore_host}
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.test_migrations", stack.settings.project_id],
        cwd=repo_root(),
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None and process.stdout is not None
    lines = [process.stdout.readline(), process.stdout.readline()]  # two steps committed
    process.stdin.write("go\n")  # let it run on ...
    process.stdin.flush()
    process.send_signal(signal.SIGKILL)  # ... and kill it wherever it is in the next step
    process.wait(10)
    assert lines == ["step 1\n", "step 2\n"]
    interrupted = await record(firestore_db)
    assert interrupted["state"] == "running" and interrupted["documents"] >= 2 * BATCH

    with pytest.raises(LeaseBusy, match="holds the lease"):  # the dead run's lease still holds
        await runner(firestore_db).acquire()
    resumed = runner(firestore_db, clock=later(60))  # ... until it expires
    await resumed.acquire()
    await resumed.up()
    await resumed.release()
    assert sorted(await touched(firestore_db)) == [1] * ITEMS
    done = await record(firestore_db)
    assert done["state"] == "applied" and done["documents"] == ITEMS and done["cursor"] is None


async def test_two_concurrent_runs_never_both_apply(firestore_db: Any) -> None:
    await seed_items(firestore_db)
    first, second = runner(firestore_db), runner(firestore_db)
    outcomes = await asyncio.gather(first.acquire(), second.acquire(), return_exceptions=True)
    busy = [o for o in outcomes if isinstance(o, LeaseBusy)]
    assert len(busy) == 1, outcomes
    winner = first if outcomes[0] is None else second
    await winner.up()
    await winner.release()
    # The other run, started again once the lease is free, finds nothing left to apply.
    loser = second if winner is first else first
    await loser.acquire()
    assert await loser.up() == []
    await loser.release()
    assert sorted(await touched(firestore_db)) == [1] * ITEMS


async def test_a_run_whose_lease_was_taken_over_writes_nothing_more(firestore_db: Any) -> None:
    await seed_items(firestore_db)
    stalled = runner(firestore_db, lease_s=1.0)
    await stalled.acquire()
    seen: list[Progress] = []

    async def take_over_after_first_step(progress: Progress) -> None:
        seen.append(progress)
        if len(seen) == 1:  # the stalled run's lease has expired for a newer run: it takes over
            await runner(firestore_db, clock=later(5)).acquire()

    with pytest.raises(MigrationError, match="taken over"):
        await stalled.up(take_over_after_first_step)
    counts = await touched(firestore_db)
    assert sum(counts) == BATCH and max(counts) == 1  # the first step only
    assert (await record(firestore_db))["documents"] == BATCH


async def test_a_release_older_than_the_recorded_migrations_refuses_to_run(
    firestore_db: Any,
) -> None:
    await firestore_db.collection("migrations").document("0007").set({"state": "applied"})
    with pytest.raises(MigrationError, match=r"\[7\] are recorded but unknown"):
        await runner(firestore_db).status()


def agentctl(stack: LocalStack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "FIRESTORE_EMULATOR_HOST": stack.firestore_host,
        "NGX_PROJECT_ID": stack.settings.project_id,
        "NGX_MIGRATION_BATCH_SIZE": "3",
    }
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", "migrate", *args],
        cwd=repo_root(),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_migration_0001_gives_old_messages_their_owner(
    stack: LocalStack, firestore_db: Any
) -> None:
    conversations = firestore_db.collection("conversations")
    for c in range(4):
        ref = conversations.document(f"c{c}")
        await ref.set({"owner": f"user-{c % 2}", "title": "t"})
        for m in range(3):
            await ref.collection("messages").document(f"m{m}").set({"role": "user", "text": "x"})
    await (
        conversations.document("c0")
        .collection("messages")
        .document("m0")
        .update(
            {"owner": "user-0"}  # already migrated: left alone, not counted
        )
    )

    before = agentctl(stack, "status", "--json")
    assert before.returncode == 0 and '"state": "pending"' in before.stdout
    dry = agentctl(stack, "up")
    assert dry.returncode == 0 and dry.stdout.strip() == "would apply: 0001 message_owner"
    assert "dry run" in dry.stderr
    assert (await record(firestore_db)) == {}

    applied = agentctl(stack, "up", "--yes")
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.strip() == "applied: 0001 message_owner (11 documents)"
    async for conversation in conversations.stream():
        owner = conversation.to_dict()["owner"]
        async for message in conversation.reference.collection("messages").stream():
            assert message.to_dict()["owner"] == owner
    assert agentctl(stack, "up", "--yes").stdout.strip() == "nothing to apply"
    status = agentctl(stack, "status")
    assert "message_owner" in status.stdout and "applied" in status.stdout


async def test_up_exits_3_while_another_run_holds_the_lease(
    stack: LocalStack, firestore_db: Any
) -> None:
    holder = Runner(firestore_db, [], lease_s=300)
    await holder.acquire()
    busy = agentctl(stack, "up", "--yes")
    assert busy.returncode == 3
    assert busy.stderr.startswith("agentctl migrate: another migration run holds the lease")
    await holder.release()


async def _crash_driver(project: str) -> None:
    """The process the crash test kills: applies `Touch` step by step, saying so after each."""
    from google.cloud.firestore_v1.async_client import AsyncClient

    db = AsyncClient(project=project)
    run = runner(db)
    await run.acquire()

    def said(progress: Progress) -> None:
        print(f"step {progress.steps}", flush=True)
        if progress.steps == 2:
            sys.stdin.readline()  # held here until the test is ready to kill this process

    await run.up(said)


if __name__ == "__main__":
    asyncio.run(_crash_driver(sys.argv[1]))
