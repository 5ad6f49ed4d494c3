"""Rollout state in Firestore (``canaries/{service}``): any terminal or job can continue.

Every write is a transaction; a write that depends on what was read checks the version it read,
so two processes acting on one rollout never both win — the loser reads again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field

from ops.canary.checks import Check
from ops.canary.plan import Plan
from shared import errors

COLLECTION = "canaries"
MAX_CHECKS = 50  # kept in the document: the latest ones
MAX_HISTORY = 200
Status = Literal["running", "promoted", "rolled_back", "aborted"]
Action = Literal["start", "advance", "promote", "rollback", "abort"]


class Change(BaseModel):
    """One traffic change of the rollout: what, the split it asks for, who and why."""

    at: datetime
    action: Action
    percents: dict[str, int]
    by: str
    reason: str


class Rollout(BaseModel):
    """One service's rollout: its plan, where it is, what the checks said, what changed."""

    service: str
    stable: str
    candidate: str
    tag: str
    plan: Plan
    status: Status = "running"
    step: int = 0
    step_started_at: datetime
    last_check_at: datetime | None = None
    failed_checks: int = 0
    checks: list[Check] = Field(default_factory=list)
    history: list[Change] = Field(default_factory=list)
    version: int = 0
    started_by: str
    started_at: datetime
    updated_at: datetime
    ended_at: datetime | None = None
    outcome: str = ""

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def percent(self) -> int:
        """The candidate's share of traffic that this state asks for."""
        if self.status == "promoted":
            return 100
        return self.plan.percent(self.step) if self.running else 0

    def desired(self) -> dict[str, int]:
        """Percent per revision that this state asks for."""
        return {self.stable: 100 - self.percent, self.candidate: self.percent}

    def next_check_at(self) -> datetime:
        last = max(self.step_started_at, self.last_check_at or self.step_started_at)
        return last + timedelta(seconds=self.plan.gates.interval_s)

    def record(self, action: Action, at: datetime, by: str, reason: str) -> None:
        """Append the change this state now asks for to the history."""
        change = Change(at=at, action=action, percents=self.desired(), by=by, reason=reason)
        self.history = [*self.history, change][-MAX_HISTORY:]

    def add_check(self, check: Check) -> None:
        self.checks = [*self.checks, check][-MAX_CHECKS:]
        self.last_check_at = check.at


class Stale(errors.Conflict):
    """The rollout changed since it was read; read it again."""


class RolloutStore:
    """Reads and transactional writes of ``canaries/{service}``."""

    def __init__(self, db: Any) -> None:
        self.db = db

    def _ref(self, service: str) -> Any:
        return self.db.collection(COLLECTION).document(service)

    async def get(self, service: str) -> Rollout | None:
        snapshot = await self._ref(service).get()
        return Rollout.model_validate(snapshot.to_dict()) if snapshot.exists else None

    async def create(self, rollout: Rollout) -> Rollout:
        """Store a new rollout, keeping an ended one under ``past/``; `errors.Conflict` while
        another rollout of the service is running."""
        from google.cloud import firestore

        ref = self._ref(rollout.service)

        @firestore.async_transactional  # type: ignore[untyped-decorator]
        async def write(tx: Any) -> Rollout:
            snapshot = await ref.get(transaction=tx)
            if snapshot.exists:
                current = Rollout.model_validate(snapshot.to_dict())
                if current.running:
                    raise errors.Conflict(
                        f"a rollout of {current.service} is already running (candidate "
                        f"{current.candidate} at {current.percent}%): promote or abort it first"
                    )
                rollout.version = current.version + 1
                # The ended rollout stays readable, with its checks and history, under past/.
                stamp = f"{current.started_at:%Y%m%dT%H%M%S.%fZ}"
                tx.set(ref.collection("past").document(stamp), current.model_dump())
            tx.set(ref, rollout.model_dump())
            return rollout

        created: Rollout = await write(self.db.transaction())
        return created

    async def update(
        self, service: str, change: Callable[[Rollout], None], expected_version: int | None = None
    ) -> Rollout:
        """Apply ``change`` to the stored rollout in a transaction and store it, one version up.

        With ``expected_version``, `Stale` when the rollout moved on since that version was read.
        """
        from google.cloud import firestore

        ref = self._ref(service)

        @firestore.async_transactional  # type: ignore[untyped-decorator]
        async def write(tx: Any) -> Rollout:
            snapshot = await ref.get(transaction=tx)
            if not snapshot.exists:
                raise errors.NotFound(
                    f"no rollout of {service}: start one with `agentctl canary start`"
                )
            rollout = Rollout.model_validate(snapshot.to_dict())
            if expected_version is not None and rollout.version != expected_version:
                raise Stale(f"the rollout of {service} changed while it was being checked")
            change(rollout)
            rollout.version += 1
            tx.set(ref, rollout.model_dump())
            return rollout

        updated: Rollout = await write(self.db.transaction())
        return updated
