"""Group commit: exchanges written at about the same time share one Firestore batch commit.

Each caller hands over its writes and waits for the commit that carries them, so nothing is
acknowledged before it is stored; a batch holds whole exchanges only (never half of one), up to
Firestore's 500 writes. Under load this turns hundreds of small commits a second into a few large
ones (each write is still billed alone; what shrinks is RPCs and commit latency under contention).
The first exchange of a quiet period is committed at once; later ones wait at most ``linger_s``
for company. A commit refused for a failed precondition (an idempotent answer sealed by an owner
that lost its claim) is retried member by member, so only the member that holds it fails.
Members *create* their new documents: a member refused alone with ``AlreadyExists`` was stored
by an earlier attempt (a commit that landed but whose reply was lost, then retried by the client
library) and is reported stored, never written twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_WRITES = 500
Write = Callable[[Any], None]  # adds one or more writes to a batch
# A failed precondition belongs to one member's writes: the others are committed without it.
PRECONDITION_ERRORS = frozenset({"FailedPrecondition", "NotFound", "AlreadyExists"})


@dataclass
class _Member:
    write: Write
    done: asyncio.Future[None]


@dataclass
class _Group:
    members: list[_Member] = field(default_factory=list)
    count: int = 0


class GroupCommitter:
    def __init__(self, db: Any, linger_s: float = 0.002) -> None:
        self._db = db
        self._linger_s = linger_s
        self._open: _Group | None = None
        self._in_flight = 0
        self._flushes: set[asyncio.Task[None]] = set()  # the loop keeps only weak references

    async def commit(self, write: Write, count: int) -> None:
        """Commit ``write`` (``count`` writes, applied to a batch) with whatever else is waiting."""
        if count > MAX_WRITES:
            raise ValueError(f"an exchange of {count} writes does not fit one batch")
        loop = asyncio.get_running_loop()
        group = self._open
        if group is None or group.count + count > MAX_WRITES:
            group = _Group()
            self._open = group
            loop.call_soon(self._schedule, group)
        member = _Member(write, loop.create_future())
        group.members.append(member)
        group.count += count
        await asyncio.shield(member.done)

    def _schedule(self, group: _Group) -> None:
        # Nothing in flight: commit now. Otherwise linger so concurrent exchanges join in.
        delay = 0.0 if self._in_flight == 0 else self._linger_s
        asyncio.get_running_loop().call_later(delay, self._start_flush, group)

    def _start_flush(self, group: _Group) -> None:
        task = asyncio.ensure_future(self._flush(group))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush(self, group: _Group) -> None:
        if self._open is group:
            self._open = None
        self._in_flight += 1
        try:
            failure = await self._commit(group.members)
            if len(group.members) > 1 and type(failure).__name__ in PRECONDITION_ERRORS:
                await asyncio.gather(*(self._alone(member) for member in group.members))
                return
            for member in group.members:
                _settle(member, _unless_stored(failure))
        finally:
            self._in_flight -= 1

    async def _alone(self, member: _Member) -> None:
        _settle(member, _unless_stored(await self._commit([member])))

    async def _commit(self, members: list[_Member]) -> BaseException | None:
        try:
            batch = self._db.batch()
            for member in members:
                member.write(batch)
            await batch.commit()
        except BaseException as exc:  # every waiter hears of it, cancellation included
            return exc
        return None


def _unless_stored(failure: BaseException | None) -> BaseException | None:
    """``AlreadyExists`` from a single member: the documents it creates exist, so it is stored."""
    return None if type(failure).__name__ == "AlreadyExists" else failure


def _settle(member: _Member, failure: BaseException | None) -> None:
    if member.done.done():
        return
    if isinstance(failure, asyncio.CancelledError):
        member.done.cancel()
    elif failure is None:
        member.done.set_result(None)
    else:
        member.done.set_exception(failure)
        member.done.exception()  # its waiter re-raises it; never reported as unretrieved
