"""A stream's events reach its Redis buffer in order, every one, several to a write.

The recorder stands in for Redis and lets the test hold a write in flight: the tests order events
around writes with events, not with sleeps.
"""

from __future__ import annotations

import asyncio
from typing import Any

from shared.batching import BatchedWriter
from shared.streams import Event, _is_terminal


class Recorder:
    """Records writes; while ``hold`` is set, a write waits in flight until ``release``."""

    def __init__(self, hold: bool = False) -> None:
        self.writes: list[list[Event]] = []
        self.tasks: set[Any] = set()
        self.started = asyncio.Event()  # a write has begun
        self.released = asyncio.Event()
        if not hold:
            self.released.set()

    async def write(self, events: list[Event]) -> None:
        self.started.set()
        await self.released.wait()  # a round trip to Redis
        self.writes.append(events)


async def test_events_added_together_share_a_write_and_keep_their_order() -> None:
    sink = Recorder()
    publisher = BatchedWriter(sink.write, sink.tasks.add, _is_terminal)
    for seq in range(1, 31):
        publisher.add((seq, "delta", b"x"))  # all before the publisher's linger is over
    publisher.add((31, "done", b"end"))
    await publisher.close()
    assert sink.writes == [[(seq, "delta", b"x") for seq in range(1, 31)] + [(31, "done", b"end")]]


async def test_a_terminal_event_is_written_without_lingering() -> None:
    sink = Recorder(hold=True)
    publisher = BatchedWriter(sink.write, sink.tasks.add, _is_terminal)
    publisher.add((1, "error", b"failed"))
    await asyncio.sleep(0)  # one turn of the loop: the publisher starts, and does not linger
    assert sink.started.is_set()
    sink.released.set()
    await publisher.close()
    assert sink.writes == [[(1, "error", b"failed")]]


async def test_events_added_while_a_write_is_in_flight_follow_it() -> None:
    sink = Recorder(hold=True)
    publisher = BatchedWriter(sink.write, sink.tasks.add, _is_terminal)
    publisher.add((1, "meta", b"m"))
    await sink.started.wait()  # the first write is in flight
    publisher.add((2, "delta", b"d"))
    publisher.add((3, "done", b"e"))
    sink.released.set()
    await publisher.close()
    assert sink.writes == [[(1, "meta", b"m")], [(2, "delta", b"d"), (3, "done", b"e")]]
