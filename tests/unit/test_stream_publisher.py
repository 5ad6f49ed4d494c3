"""A stream's events reach its Redis buffer in order, every one, several to a write."""

from __future__ import annotations

import asyncio
from typing import Any

from shared.streams import PUBLISH_LINGER_S, Event, _Publisher


class Recorder:
    def __init__(self, delay_s: float = 0.0) -> None:
        self.writes: list[list[Event]] = []
        self.delay_s = delay_s
        self.tasks: set[Any] = set()

    async def write(self, events: list[Event]) -> None:
        await asyncio.sleep(self.delay_s)  # a round trip to Redis
        self.writes.append(events)


async def test_events_close_together_share_a_write_and_keep_their_order() -> None:
    sink = Recorder(delay_s=0.005)
    publisher = _Publisher(sink.write, sink.tasks.add)
    for seq in range(1, 31):
        publisher.add((seq, "delta", b"x"))
        await asyncio.sleep(PUBLISH_LINGER_S / 10)
    publisher.add((31, "done", b"end"))
    await publisher.close()
    written = [event for batch in sink.writes for event in batch]
    assert [seq for seq, _, _ in written] == list(range(1, 32))
    assert len(sink.writes) < 10


async def test_a_terminal_event_is_written_without_lingering() -> None:
    sink = Recorder()
    publisher = _Publisher(sink.write, sink.tasks.add)
    started = asyncio.get_running_loop().time()
    publisher.add((1, "error", b"failed"))
    await publisher.close()
    assert sink.writes == [[(1, "error", b"failed")]]
    assert asyncio.get_running_loop().time() - started < PUBLISH_LINGER_S


async def test_events_added_while_a_write_is_in_flight_follow_it() -> None:
    sink = Recorder(delay_s=0.05)
    publisher = _Publisher(sink.write, sink.tasks.add)
    publisher.add((1, "meta", b"m"))
    await asyncio.sleep(PUBLISH_LINGER_S + 0.01)  # the first write is now in flight
    publisher.add((2, "delta", b"d"))
    publisher.add((3, "done", b"e"))
    await publisher.close()
    assert sink.writes == [[(1, "meta", b"m")], [(2, "delta", b"d"), (3, "done", b"e")]]
