"""Writes of a sequence of items to Redis, in order, several to a round trip.

Items that arrive within `LINGER_S` of the first waiting one, or while a write is in flight, share
the next write (under load most of a stream's items do). An *urgent* item (a stream's last one)
is written without lingering. Used for a stream's resume buffer and for a shared model stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")
LINGER_S = 0.02


class BatchedWriter(Generic[T]):
    """Hands items to ``write`` in order, batched; ``keep`` holds on to the background task."""

    def __init__(
        self,
        write: Callable[[list[T]], Awaitable[None]],
        keep: Callable[[Any], None],
        urgent: Callable[[T], bool] = lambda _: False,
    ) -> None:
        self._write = write
        self._keep = keep
        self._urgent = urgent
        self._pending: list[T] = []
        self._task: asyncio.Task[None] | None = None

    def add(self, item: T) -> None:
        self._pending.append(item)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
            self._keep(self._task)

    async def _drain(self) -> None:
        while self._pending:
            if not self._urgent(self._pending[-1]):
                await asyncio.sleep(LINGER_S)
            batch, self._pending = self._pending, []
            await self._write(batch)

    async def close(self) -> None:
        """Wait until every added item is written."""
        if self._task is not None:
            await self._task
