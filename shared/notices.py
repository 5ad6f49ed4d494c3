"""Notices to a user's open WebSocket sessions, wherever they are: a job finished, an operator
replied. Published on a Redis channel named for the user's pseudonym; each stream instance keeps
one subscribing connection for the users with a session open on it and hands notices to them.

Best effort by design: a notice published while the user has no session open is not kept — the
state it announces (a job's status, an operator's message) is in Firestore for the client to read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from shared import pseudonyms
from shared.memorystore import Memorystore, StoreUnavailable
from shared.settings import Settings

log = logging.getLogger("ngx.notices")
Listener = Callable[[str, str], None]  # event name, JSON data


def channel(settings: Settings, subject: str) -> str:
    return f"ngx:notice:{pseudonyms.of_subject(settings, subject)}"


async def publish(
    store: Memorystore, settings: Settings, subject: str, name: str, data: BaseModel
) -> int:
    """Send a notice to the subject's open sessions; how many instances received it (0 when
    Memorystore is unreachable: the notice is dropped, its state is in Firestore)."""
    message = json.dumps({"type": name, "data": json.loads(data.model_dump_json())})
    target = channel(settings, subject)
    try:
        return int(await store.run(lambda r: r.publish(target, message)))
    except StoreUnavailable:
        log.warning("notice dropped: memorystore unavailable", extra={"notice": name})
        return 0


class NoticeHub:
    """One subscribing connection per process, shared by every session on it."""

    def __init__(self, store: Memorystore, settings: Settings) -> None:
        self._store = store
        self._settings = settings
        self._listeners: dict[str, set[Listener]] = {}
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def listen(self, subject: str, listener: Listener) -> None:
        """Call ``listener`` with each notice to ``subject`` until `unlisten`."""
        name = channel(self._settings, subject)
        async with self._lock:
            first = name not in self._listeners
            self._listeners.setdefault(name, set()).add(listener)
            if self._pubsub is None and (self._reader is None or self._reader.done()):
                self._pubsub = self._store.pubsub()
                first = True
            if first and self._pubsub is not None:
                try:
                    await asyncio.wait_for(self._pubsub.subscribe(name), 2.0)
                except Exception as exc:  # sessions work without notices; the reader retries
                    log.warning("notices unavailable", extra={"error_type": type(exc).__name__})
                    await self._drop()
            if self._reader is None or self._reader.done():
                self._reader = asyncio.create_task(self._read())

    async def unlisten(self, subject: str, listener: Listener) -> None:
        name = channel(self._settings, subject)
        async with self._lock:
            listeners = self._listeners.get(name)
            if listeners is None:
                return
            listeners.discard(listener)
            if not listeners:
                del self._listeners[name]
                if self._pubsub is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(self._pubsub.unsubscribe(name), 2.0)

    async def _read(self) -> None:
        while self._listeners:
            if self._pubsub is None:
                await asyncio.sleep(1.0)
                await self._resubscribe()
                continue
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except Exception as exc:
                log.warning("notice connection lost", extra={"error_type": type(exc).__name__})
                await self._drop()
                continue
            if message is None or message.get("type") != "message":
                continue
            name = message["channel"].decode()
            try:
                parsed = json.loads(message["data"])
                event, data = str(parsed["type"]), json.dumps(parsed["data"])
            except (ValueError, KeyError, TypeError):
                continue
            for listener in list(self._listeners.get(name, ())):
                listener(event, data)

    async def _drop(self) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        self._pubsub = None

    async def _resubscribe(self) -> None:
        """A new connection subscribed to every channel with a listener (None if it fails)."""
        async with self._lock:
            if not self._listeners:
                return
            self._pubsub = self._store.pubsub()
            try:
                await asyncio.wait_for(self._pubsub.subscribe(*self._listeners), 2.0)
            except Exception:
                await self._drop()
