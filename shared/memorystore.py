"""Memorystore (Redis protocol) access that degrades instead of failing.

Every operation has a short timeout. After a failure the store is skipped for a back-off period, so
an outage costs one timeout per period rather than one per request; callers treat
`StoreUnavailable` as "no cache" (or "no shared limit"), never as an error for the user.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from shared.settings import Settings

log = logging.getLogger("ngx.memorystore")
T = TypeVar("T")


MAX_CONNECTIONS = 256


def _client(
    url: str, socket_timeout: float | None, connect_timeout: float, security: dict[str, Any]
) -> Any:
    """A client whose pool waits for a free connection instead of failing when all are busy;
    ``security``: authentication and TLS arguments (`redis_auth.connection_options`)."""
    import redis.asyncio

    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url,
        **security,
        max_connections=MAX_CONNECTIONS,
        timeout=connect_timeout,
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
        health_check_interval=0,
    )
    return redis.asyncio.Redis.from_pool(pool)  # the client owns (and closes) its pool


class StoreUnavailable(Exception):
    """Memorystore did not answer in time or is in its back-off period."""


class Memorystore:
    """A `redis.asyncio` client with timeouts and an outage back-off."""

    def __init__(
        self,
        settings: Settings,
        credentials: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock  # the outage back-off runs on it
        self.timeout = settings.redis_timeout_s
        self.backoff = settings.redis_backoff_s
        from shared.redis_auth import connection_options  # redis loads with the first client

        self._security = connection_options(settings, credentials)
        self.redis: Any = _client(
            settings.redis_url, settings.redis_timeout_s, self.timeout, self._security
        )
        self._url = settings.redis_url
        self._patient: Any = None
        self._down_until = 0.0

    def _client_for(self, timeout: float) -> Any:
        """The short-timeout client, or (for blocking reads and batch jobs) a patient one."""
        if timeout <= self.timeout:
            return self.redis
        if self._patient is None:
            self._patient = _client(self._url, None, self.timeout * 10, self._security)
        return self._patient

    def pubsub(self) -> Any:
        """A Redis Pub/Sub connection of its own (on the patient client: it blocks reading)."""
        return self._client_for(self.timeout * 10).pubsub(ignore_subscribe_messages=True)

    @property
    def available(self) -> bool:
        return self._clock() >= self._down_until

    async def run(
        self, operation: Callable[[Any], Awaitable[T]], timeout: float | None = None
    ) -> T:
        """Run ``operation(redis)``; raise `StoreUnavailable` on failure, timeout or back-off."""
        if not self.available:
            raise StoreUnavailable("in back-off after a failure")
        limit = timeout or self.timeout
        try:
            return await asyncio.wait_for(operation(self._client_for(limit)), limit)
        except (TimeoutError, OSError, ConnectionError) as exc:
            self._mark_down(exc)
            raise StoreUnavailable(str(exc)) from exc
        except Exception as exc:
            if not type(exc).__module__.startswith("redis"):
                raise
            if type(exc).__name__ == "ResponseError":  # an error reply (OOM, a script error)
                log.error("memorystore refused a command", extra={"error": str(exc)[:300]})
            else:  # connection-level trouble: skip Memorystore for a while
                self._mark_down(exc)
            raise StoreUnavailable(str(exc)) from exc

    def _mark_down(self, exc: BaseException) -> None:
        if self.available:
            log.warning(
                "memorystore unavailable; continuing without it",
                extra={"error_type": type(exc).__name__, "backoff_s": self.backoff},
            )
        self._down_until = self._clock() + self.backoff

    async def close(self) -> None:
        await self.redis.aclose()
        if self._patient is not None:
            await self._patient.aclose()
