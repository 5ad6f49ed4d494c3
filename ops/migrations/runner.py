"""Versioned Firestore data migrations: applied in order, once, under a lease, resumable.

Backfills follow expand, then contract: the release that starts writing a field ships the
backfill, and the release that first *relies* on the field ships it again (a new number), because
the previous release keeps writing old-shaped documents until its traffic is gone (canaries take
hours). Steps must therefore propose only what is still missing, so that running again is cheap.

State lives in the ``migrations`` collection: ``migrations/lease`` (who runs, until when) and one
record per migration, ``migrations/{number:04d}`` (state, checkpoint cursor, documents changed).

Each step of a migration is committed in **one atomic batch** with its checkpoint and the renewal
of the lease, the lease write carrying a precondition on the lease's last update. So:

- a run killed mid-way left either the whole step or none of it; the next run resumes from the
  last checkpoint, and no document is changed, or counted, twice;
- two concurrent runs cannot both apply: only one holds the lease, and a run whose lease was taken
  over (it stalled past its expiry) fails its next commit instead of writing beside the new holder.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

COLLECTION = "migrations"
LEASE = "lease"


class MigrationError(RuntimeError):
    """A migration run that cannot go on; the message says why and what to do."""


class LeaseBusy(MigrationError):
    """Another run holds the lease."""


@dataclass(frozen=True)
class Step:
    """One batch of a migration: documents to update (path → fields) and where the next starts
    (``None``: the migration is complete after this step)."""

    updates: dict[str, dict[str, Any]]
    cursor: str | None


class Migration(Protocol):
    """A numbered data migration. ``step`` reads from ``cursor`` (``None``: the start) and returns
    at most ``limit`` updates; it must only propose changes still missing, so that a step that is
    read again after a crash proposes nothing already committed."""

    @property
    def number(self) -> int: ...

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    async def step(self, db: Any, cursor: str | None, limit: int) -> Step: ...


def record_id(number: int) -> str:
    return f"{number:04d}"


@dataclass
class Progress:
    """What a run did, reported after each committed step (progress bars, logs, tests)."""

    number: int
    name: str
    steps: int = 0
    documents: int = 0
    done: bool = False


Report = Callable[[Progress], Awaitable[None] | None]


@dataclass
class Runner:
    """Applies pending migrations against a Firestore ``AsyncClient``."""

    db: Any
    migrations: Sequence[Migration]
    lease_s: float = 60.0
    batch_size: int = 200
    holder: str = field(default_factory=lambda: f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}")
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    _lease_seen: Any = field(default=None, init=False)  # update time of our lease write

    def __post_init__(self) -> None:
        numbers = [m.number for m in self.migrations]
        if numbers != sorted(set(numbers)) or any(n < 1 for n in numbers):
            raise MigrationError(f"migration numbers must be unique, positive, ordered: {numbers}")

    def _ref(self, doc: str) -> Any:
        return self.db.collection(COLLECTION).document(doc)

    # --- status ---------------------------------------------------------------------------------

    async def records(self) -> dict[int, dict[str, Any]]:
        """The stored record of every migration that has one."""
        found: dict[int, dict[str, Any]] = {}
        async for snapshot in self.db.collection(COLLECTION).stream():
            if snapshot.id.isdigit():
                found[int(snapshot.id)] = snapshot.to_dict() or {}
        return found

    async def status(self) -> list[dict[str, Any]]:
        """One row per known migration: number, name, state, documents, applied_at, cursor."""
        records = await self.records()
        rows = []
        for migration in self.migrations:
            record = records.get(migration.number, {})
            applied = record.get("applied_at")
            rows.append(
                {
                    "number": migration.number,
                    "name": migration.name,
                    "state": record.get("state", "pending"),
                    "documents": record.get("documents", 0),
                    "applied_at": applied.isoformat() if applied else None,
                    "cursor": record.get("cursor"),
                    "description": migration.description,
                }
            )
        unknown = sorted(set(records) - {m.number for m in self.migrations})
        if unknown:  # applied by a newer release: this code must not run older steps over it
            raise MigrationError(
                f"migrations {unknown} are recorded but unknown to this release: "
                "run a newer agentctl"
            )
        return rows

    async def pending(self) -> list[Migration]:
        states = {row["number"]: row["state"] for row in await self.status()}
        return [m for m in self.migrations if states[m.number] != "applied"]

    # --- the lease ------------------------------------------------------------------------------

    async def acquire(self) -> None:
        """Take the lease, or raise `LeaseBusy` naming its holder and expiry."""
        from google.api_core import exceptions

        ref = self._ref(LEASE)
        snapshot = await ref.get()
        now = self.clock()
        mine = {"holder": self.holder, "until": now + timedelta(seconds=self.lease_s)}
        try:
            if not snapshot.exists:
                result = await ref.create(mine)
            else:
                held = snapshot.to_dict() or {}
                if held.get("holder") != self.holder and held.get("until", now) > now:
                    raise LeaseBusy(
                        f"another migration run holds the lease ({held.get('holder')}, until "
                        f"{held['until'].isoformat(timespec='seconds')}); wait for it, or run "
                        "again with --wait"
                    )
                result = await ref.update(mine, option=self._precondition(snapshot.update_time))
        except (exceptions.Conflict, exceptions.FailedPrecondition):
            raise LeaseBusy("another migration run took the lease at the same moment") from None
        self._lease_seen = result.update_time

    async def release(self) -> None:
        """Give the lease back (only ours: a lease taken over is left to its new holder)."""
        from google.api_core import exceptions

        if self._lease_seen is None:
            return
        with contextlib.suppress(exceptions.FailedPrecondition, exceptions.NotFound):
            await self._ref(LEASE).delete(option=self._precondition(self._lease_seen))
        self._lease_seen = None

    async def acquire_waiting(self, poll_s: float = 1.0, give_up_s: float = 900.0) -> None:
        """Take the lease, waiting while another run holds it (``--wait``)."""
        waited = 0.0
        while True:
            try:
                await self.acquire()
                return
            except LeaseBusy:
                if waited >= give_up_s:
                    raise
            await asyncio.sleep(poll_s)
            waited += poll_s

    def _precondition(self, update_time: Any) -> Any:
        return self.db.write_option(last_update_time=update_time)

    # --- applying -------------------------------------------------------------------------------

    async def up(self, report: Report | None = None) -> list[Progress]:
        """Apply every pending migration in order; the lease must be held (`acquire`)."""
        if self._lease_seen is None:
            raise MigrationError("take the lease first")
        done = []
        records = await self.records()
        for migration in await self.pending():
            done.append(await self._apply(migration, records.get(migration.number, {}), report))
        return done

    async def _apply(
        self, migration: Migration, record: dict[str, Any], report: Report | None
    ) -> Progress:
        progress = Progress(migration.number, migration.name, documents=record.get("documents", 0))
        cursor: str | None = record.get("cursor")
        while True:
            step = await migration.step(self.db, cursor, self.batch_size)
            if not await self._commit(migration, step):
                continue  # a document of the step vanished meanwhile: read the step again
            progress.steps += 1
            progress.documents += len(step.updates)
            progress.done = step.cursor is None
            if report is not None:
                shown = report(progress)
                if shown is not None:
                    await shown
            if step.cursor is None:
                return progress
            cursor = step.cursor

    async def _commit(self, migration: Migration, step: Step) -> bool:
        """The step's updates, its checkpoint and the lease renewal, in one atomic commit; False
        when a document of the step was deleted since it was read (nothing was written)."""
        from google.api_core import exceptions
        from google.cloud import firestore

        batch = self.db.batch()
        for path, fields in step.updates.items():
            batch.update(self.db.document(path), fields)
        now = self.clock()
        checkpoint: dict[str, Any] = {
            "number": migration.number,
            "name": migration.name,
            "cursor": step.cursor,
            "documents": firestore.Increment(len(step.updates)),
            "state": "running" if step.cursor else "applied",
            "updated_at": now,
            "holder": self.holder,
        }
        if step.cursor is None:
            checkpoint["applied_at"] = now
        batch.set(self._ref(record_id(migration.number)), checkpoint, merge=True)
        batch.update(
            self._ref(LEASE),
            {"until": now + timedelta(seconds=self.lease_s)},
            option=self._precondition(self._lease_seen),
        )
        try:
            results = await batch.commit()
        except (exceptions.FailedPrecondition, exceptions.NotFound):
            lease = await self._ref(LEASE).get()
            if lease.exists and lease.update_time == self._lease_seen:
                return False  # the lease is as we left it: a document of the step vanished
            if lease.exists and (lease.to_dict() or {}).get("holder") == self.holder:
                # Only this run writes a lease it holds: an earlier attempt of this very commit
                # landed (its reply was lost and the client retried). The step is done.
                self._lease_seen = lease.update_time
                return True
            self._lease_seen = None
            raise MigrationError(
                f"migration {migration.number} stopped: the lease was taken over by another run "
                "(this run stalled past its expiry); nothing of this step was written"
            ) from None
        self._lease_seen = results[-1].update_time
        return True
