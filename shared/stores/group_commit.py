"""Group commit: exchanges written at about the same time share one Firestore batch commit.

Each caller hands over its writes and waits for the commit that carries them, so nothing is
acknowledged before it is stored; a batch holds whole exchanges only (never half of one), up to
Firestore's 500 writes. Under load this turns hundreds of small commits a second into a few large
ones (each write is still billed alone; what shrinks is RPCs and commit latency under contention).
The first exchange of a quiet period is committed at once; later ones wait at most ``linger_s``
for company.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_WRITES = 500
Write = Callable[[Any], None]  # adds one or more writes to a batch


@dataclass
class _Group:
    writes: list[Write] = field(default_factory=list)
    count: int = 0
    done: asyncio.Future[None] | None = None


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
        group = self._open
        if group is None or group.count + count > MAX_WRITES:
            group = _Group(done=asyncio.get_running_loop().create_future())
            self._open = group
            asyncio.get_running_loop().call_soon(self._schedule, group)
        group.writes.append(write)
        group.count += count
        assert group.done is not None
        await asyncio.shield(group.done)

    def _schedule(self, group: _Group) -> None:
        # Nothing in flight: commit now. Otherwise linger so concurrent exchanges join in.
        delay = 0.0 if self._in_flight == 0 else self._linger_s
        asyncio.get_running_loop().call_later(
            delay, lambda: asyncio.ensure_future(self._flush(group))
        )

    async def _flush(self, group: _Group) -> None:
        if self._open is group:
            self._open = None
        assert group.done is not None
        batch = self._db.batch()
        for write in group.writes:
            write(batch)
        self._in_flight += 1
        try:
            await batch.commit()
        except Exception as exc:
            group.done.set_exception(exc)
            group.done.exception()  # every waiter re-raises it; none may be left unretrieved
        else:
            group.done.set_result(None)
        finally:
            self._in_flight -= 1
