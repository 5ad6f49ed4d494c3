"""Group commit: exchanges written at about the same time share one Firestore batch commit.

Each caller hands over its writes and waits for the commit that carries them, so nothing is
acknowledged before it is stored; a batch holds whole exchanges only (never half of one), up to
Firestore's 500 writes. Under load this turns hundreds of small commits a second into a few large
ones (each write is still billed alone; what shrinks is RPCs and commit latency under contention).
The first exchange of a quiet period is committed at once; later ones wait at most ``linger_s``
for company. A commit refused for a failed precondition (an idempotent answer sealed by an owner
that lost its claim) is retried member by member, so only the member that holds it fails.
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
        asyncio.get_running_loop().call_later(
            delay, lambda: asyncio.ensure_future(self._flush(group))
        )

    async def _flush(self, group: _Group) -> None:
        if self._open is group:
            self._open = None
        self._in_flight += 1
        try:
            failure = await self._commit(group.members)
            split = len(group.members) > 1 and type(failure).__name__ in PRECONDITION_ERRORS
            if split:
                await asyncio.gather(*(self._alone(member) for member in group.members))
                return
            for member in group.members:
                _settle(member, failure)
        finally:
            self._in_flight -= 1

    async def _alone(self, member: _Member) -> None:
        _settle(member, await self._commit([member]))

    async def _commit(self, members: list[_Member]) -> Exception | None:
        batch = self._db.batch()
        for member in members:
            member.write(batch)
        try:
            await batch.commit()
        except Exception as exc:
            return exc
        return None


def _settle(member: _Member, failure: Exception | None) -> None:
    if failure is None:
        member.done.set_result(None)
    else:
        member.done.set_exception(failure)
        member.done.exception()  # its waiter re-raises it; never reported as unretrieved
