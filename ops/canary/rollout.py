"""The canary state machine: start, check, advance, roll back, promote, abort, and continue.

The Firestore document says what the split should be. A process that changes it applies that
split right after, reads the document again and applies again if it moved on meanwhile
(`Canary.reconcile`), so the traffic always ends where the latest state says, whichever terminal,
job or interrupted process acted last. Every traffic change is logged (logger ``ngx.canary``) and
kept in the document's history.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from ops.canary.checks import Check, judge
from ops.canary.metrics import Monitoring
from ops.canary.plan import Plan
from ops.canary.state import Rollout, RolloutStore, Stale
from ops.canary.traffic import CloudRun, Split, service_id
from ops.settings import OpsSettings
from shared import errors

log = logging.getLogger("ngx.canary")
Listener = Callable[[str, Rollout, dict[str, Any]], None]
RECONCILE_ROUNDS = 5


def _now() -> datetime:
    return datetime.now(UTC)


class Canary:
    """Rollouts of Cloud Run revisions, by service, on behalf of ``who``."""

    def __init__(
        self,
        settings: OpsSettings,
        db: Any,
        who: str,
        run: CloudRun | None = None,
        monitoring: Monitoring | None = None,
        on_event: Listener | None = None,
    ) -> None:
        self.store = RolloutStore(db)
        self.run = run or CloudRun(settings)
        self.monitoring = monitoring or Monitoring(settings)
        self.who = who
        self.on_event = on_event

    async def close(self) -> None:
        await self.run.close()
        await self.monitoring.close()

    def _emit(self, kind: str, rollout: Rollout, **detail: Any) -> None:
        if self.on_event is not None:
            self.on_event(kind, rollout, detail)

    async def start(
        self,
        service: str,
        candidate: str,
        plan: Plan,
        stable: str | None = None,
        tag: str = "canary",
        dry_run: bool = False,
        supersede: bool = False,
    ) -> Rollout:
        """Check everything, then give the candidate the first step (``dry_run``: only check).

        Every split the rollout may ask for (each step, and the rollback) is validated by Cloud
        Run with ``validate_only`` before any traffic moves.
        """
        sid = service_id(service)
        existing = await self.store.get(sid)
        superseding = bool(
            existing and existing.running and supersede and existing.candidate != candidate
        )
        if existing is not None and existing.running and not superseding:
            raise errors.Conflict(
                f"a rollout of {sid} is already running (candidate {existing.candidate} at "
                f"{existing.percent}%): promote or abort it first"
            )
        split = await self.run.read(sid)
        await self.run.require_revision(sid, candidate)
        if superseding and existing is not None:
            # A newer release replaces one left running: its stable revision takes 100% first.
            stable = stable or existing.stable
            if not dry_run:
                await self.abort(sid, f"superseded by {candidate}")
                split = await self.run.read(sid)
        if stable is None:
            stable = split.serving_all()
            if stable is None:
                raise errors.FailedPrecondition(
                    f"no revision of {sid} serves 100% ({split.text()}): "
                    "name the stable one with --stable"
                )
        else:
            await self.run.require_revision(sid, stable)
        if stable == candidate:
            raise errors.ValidationFailed(
                f"{candidate} is already the stable revision of {sid}: nothing to roll out"
            )
        # Monitoring must be readable before any traffic depends on it.
        await self.monitoring.sample(sid, stable, plan.gates.window_s, plan.gates.kpis)
        now = _now()
        rollout = Rollout(
            service=sid,
            stable=stable,
            candidate=candidate,
            tag=tag,
            plan=plan,
            step_started_at=now,
            started_by=self.who,
            started_at=now,
            updated_at=now,
        )
        rollout.record("start", now, self.who, f"{candidate} at {rollout.percent}%")
        for percents in splits(rollout):
            await self.run.apply(sid, percents, candidate, tag, validate_only=True)
        if dry_run:
            return rollout
        created = await self.store.create(rollout)
        log.info(
            "canary started",
            extra={"canary": _fields(created), "plan": plan.model_dump(), "by": self.who},
        )
        self._emit("start", created)
        try:
            await self.reconcile(sid)
        except errors.AppError as exc:
            exc.message += (
                f" (the rollout is stored: `agentctl canary start --resume --service {sid}` "
                "applies it, `agentctl canary abort` cancels it)"
            )
            raise
        return created

    async def status(self, service: str) -> tuple[Rollout, Split]:
        """The stored rollout and the service's live split."""
        sid = service_id(service)
        rollout = await self._get(sid)
        return rollout, await self.run.read(sid)

    async def promote(self, service: str, full: bool = False, dry_run: bool = False) -> Rollout:
        """Move to the next step now, or with ``full`` straight to 100%."""
        who = self.who

        def change(rollout: Rollout) -> None:
            _require_running(rollout)
            now = _now()
            rollout.step = len(rollout.plan.steps) - 1 if full else rollout.step + 1
            rollout.step_started_at = rollout.updated_at = now
            if rollout.plan.percent(rollout.step) == 100:
                _end(rollout, "promoted", now, f"promoted to 100% by {who}")
                rollout.record("promote", now, who, "promoted by hand")
            else:
                rollout.record("advance", now, who, "advanced by hand")

        return await self._act(service, change, dry_run)

    async def abort(self, service: str, reason: str = "", dry_run: bool = False) -> Rollout:
        """Send all traffic back to the stable revision; the candidate keeps its tag at 0%."""
        who = self.who

        def change(rollout: Rollout) -> None:
            _require_running(rollout)
            now = _now()
            why = reason or "aborted by hand"
            _end(rollout, "aborted", now, f"aborted by {who}: {why}")
            rollout.record("abort", now, who, why)

        return await self._act(service, change, dry_run)

    async def _act(self, service: str, change: Callable[[Rollout], None], dry_run: bool) -> Rollout:
        sid = service_id(service)
        if dry_run:
            rollout = (await self._get(sid)).model_copy(deep=True)
            change(rollout)
            await self.run.apply(
                sid, rollout.desired(), rollout.candidate, rollout.tag, validate_only=True
            )
            return rollout
        rollout = await self.store.update(sid, change)
        log.info(
            f"canary {rollout.history[-1].action}",
            extra={"canary": _fields(rollout), "by": self.who},
        )
        self._emit(rollout.history[-1].action, rollout)
        await self.reconcile(sid)
        return rollout

    async def drive(self, service: str, until: datetime | None = None) -> Rollout:
        """Check the rollout at its interval and act on each check until it ends (or ``until``).

        Any process may drive a stored rollout: the plan, the step and the checks are in the
        document, and a check another process recorded first is not repeated.
        """
        sid = service_id(service)
        rollout = await self._get(sid)
        this = rollout.started_at
        if rollout.running:
            await self.reconcile(sid)
        while True:
            rollout = await self._get(sid)
            if rollout.started_at != this:
                raise errors.Conflict(
                    f"the rollout of {sid} was replaced by a newer one "
                    f"(candidate {rollout.candidate}); see `agentctl canary status`"
                )
            if not rollout.running:
                return rollout
            due, now = rollout.next_check_at(), _now()
            if until is not None and due > until:
                return rollout
            if due > now:
                await asyncio.sleep((due - now).total_seconds())
                continue
            await self.tick(rollout)

    async def tick(self, read: Rollout) -> Rollout:
        """One check of the candidate and what follows from it, recorded against ``read``."""
        gates, who = read.plan.gates, self.who
        now = _now()
        try:
            end = now - timedelta(seconds=gates.lag_s)
            window = gates.window_s
            while True:  # a quiet window is widened, never passed on no evidence
                sample = await self.monitoring.sample(
                    read.service, read.candidate, window, gates.kpis, end=end
                )
                if sample.requests >= gates.min_requests or window >= gates.max_window_s:
                    break
                window = min(2 * window, gates.max_window_s)
            stable = await self.monitoring.sample(read.service, read.stable, window, False, end=end)
            check = judge(
                sample,
                gates,
                at=now,
                step=read.step,
                percent=read.percent,
                stable=stable,
                window_s=window,
            )
        except errors.Unavailable as exc:  # a blip is no evidence either way
            check = Check(
                at=now,
                step=read.step,
                percent=read.percent,
                verdict="inconclusive",
                requests=0,
                reason=exc.message,
            )

        def change(rollout: Rollout) -> None:
            rollout.add_check(check)
            rollout.updated_at = now
            if check.verdict == "fail":
                rollout.failed_checks += 1
                if rollout.failed_checks >= gates.max_failed_checks:
                    why = f"rolled back at {check.percent}%: {check.reason}"
                    _end(rollout, "rolled_back", now, why)
                    rollout.record("rollback", now, who, check.reason)
            elif check.verdict == "pass":
                baked = (now - rollout.step_started_at).total_seconds()
                if baked >= rollout.plan.bake(rollout.step):
                    rollout.step += 1
                    rollout.step_started_at = now
                    if rollout.plan.percent(rollout.step) == 100:
                        _end(rollout, "promoted", now, "promoted: every step passed its checks")
                        rollout.record("promote", now, who, check.reason)
                    else:
                        rollout.record(
                            "advance", now, who, f"{check.percent}% baked; {check.reason}"
                        )

        try:
            rollout = await self.store.update(read.service, change, expected_version=read.version)
        except Stale:
            return await self._get(read.service)  # someone acted first: look again
        level = logging.WARNING if check.verdict == "fail" else logging.INFO
        extra = {"canary": _fields(rollout), "check": check.model_dump(mode="json")}
        log.log(level, "canary check", extra=extra)
        self._emit("check", rollout, check=check)
        if rollout.desired() != read.desired():
            action = rollout.history[-1].action
            log.log(
                logging.WARNING if action == "rollback" else logging.INFO,
                f"canary {action}",
                extra={"canary": _fields(rollout), "by": who},
            )
            self._emit(action, rollout)
            await self.reconcile(read.service)
        return rollout

    async def reconcile(self, service: str) -> None:
        """Make the traffic what the stored state asks for, until the state stops moving."""
        for _ in range(RECONCILE_ROUNDS):
            rollout = await self._get(service)
            wanted = rollout.desired()
            before = await self.run.read(service)
            after, changed = await self.run.apply(service, wanted, rollout.candidate, rollout.tag)
            if changed:
                log.info(
                    "canary traffic changed",
                    extra={
                        "canary": _fields(rollout),
                        "previous_percents": before.percents,
                        "percents": after.percents,
                        "by": self.who,
                    },
                )
                self._emit("traffic", rollout, split=after)
            again = await self._get(service)
            if again.desired() == wanted:
                return
        raise errors.Conflict(f"the rollout of {service} kept changing; run status to see it")

    async def _get(self, sid: str) -> Rollout:
        rollout = await self.store.get(sid)
        if rollout is None:
            raise errors.NotFound(f"no rollout of {sid}: start one with `agentctl canary start`")
        return rollout


def splits(rollout: Rollout) -> list[dict[str, int]]:
    """Every split a rollout may ask for: each step, then the rollback."""
    out = []
    for step in range(len(rollout.plan.steps)):
        percent = rollout.plan.percent(step)
        out.append({rollout.stable: 100 - percent, rollout.candidate: percent})
    out.append({rollout.stable: 100, rollout.candidate: 0})
    return out


def _require_running(rollout: Rollout) -> None:
    if not rollout.running:
        ended = rollout.outcome or rollout.status
        raise errors.FailedPrecondition(
            f"the rollout of {rollout.service} has already ended: {ended}"
        )


def _end(rollout: Rollout, status: Any, at: datetime, outcome: str) -> None:
    rollout.status = status
    rollout.ended_at = at
    rollout.outcome = outcome


def _fields(rollout: Rollout) -> dict[str, Any]:
    """The rollout's identity and position, for structured logs."""
    return {
        "service": rollout.service,
        "candidate": rollout.candidate,
        "stable": rollout.stable,
        "status": rollout.status,
        "step": rollout.step,
        "percent": rollout.percent,
        "desired": rollout.desired(),
        "failed_checks": rollout.failed_checks,
        "version": rollout.version,
    }
