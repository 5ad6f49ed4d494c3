"""The live cache policy: TTL per query class and size thresholds, read from ``config/cache``.

Cache maintenance writes the document; every process re-reads it at most every
``cache_policy_reload_s`` seconds, in the background, so a new policy takes effect without restart
and no request waits for Firestore after the first load.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from shared.settings import Settings

log = logging.getLogger("ngx.cache.policy")
POLICY_COLLECTION, POLICY_DOCUMENT = "config", "cache"


class CachePolicy(BaseModel):
    """What to cache and for how long."""

    version: int = 0
    default_ttl_s: int = Field(3600, ge=1)
    class_ttl_s: dict[str, int] = Field(default_factory=dict)
    compress_min_bytes: int = Field(1024, ge=0)
    max_entry_bytes: int = Field(256 * 1024, ge=1024)

    def ttl_for(self, query_class: str) -> int:
        return self.class_ttl_s.get(query_class, self.default_ttl_s)

    @classmethod
    def from_settings(cls, settings: Settings) -> CachePolicy:
        return cls(
            default_ttl_s=settings.cache_default_ttl_s,
            compress_min_bytes=settings.cache_compress_min_bytes,
            max_entry_bytes=settings.cache_max_entry_bytes,
        )


class PolicySource:
    """Holds the current policy and refreshes it from Firestore on an interval."""

    def __init__(
        self, settings: Settings, db: Any | None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self._db = db
        self._interval = settings.cache_policy_reload_s
        self._policy = CachePolicy.from_settings(settings)
        self._loaded_at = float("-inf")
        self._refreshing: asyncio.Task[None] | None = None

    async def current(self) -> CachePolicy:
        """The policy now; the first call loads it (briefly), later ones refresh in background."""
        if self._db is None:
            return self._policy
        age = self._clock() - self._loaded_at
        if self._loaded_at == float("-inf"):
            await self.refresh(timeout=1.0)
        elif age >= self._interval and (self._refreshing is None or self._refreshing.done()):
            self._refreshing = asyncio.create_task(self.refresh(timeout=5.0))
        return self._policy

    async def settled(self) -> None:
        """Wait for a background refresh in flight, if any (tests, shutdown)."""
        if self._refreshing is not None:
            await self._refreshing

    async def refresh(self, timeout: float) -> None:
        """Read ``config/cache``; keep the previous policy when it is missing or invalid."""
        self._loaded_at = self._clock()
        assert self._db is not None
        try:
            snapshot = await asyncio.wait_for(
                self._db.collection(POLICY_COLLECTION).document(POLICY_DOCUMENT).get(), timeout
            )
        except Exception as exc:
            log.warning("cache policy not refreshed", extra={"error_type": type(exc).__name__})
            return
        if not snapshot.exists:
            return
        data = snapshot.to_dict() or {}
        try:
            policy = CachePolicy.model_validate(data.get("policy", data), strict=False)
        except ValidationError as exc:
            log.error(
                "cache policy document is invalid; keeping the previous one",
                extra={"errors": exc.errors(include_url=False)},
            )
            return
        if policy.version != self._policy.version:
            log.info("cache policy loaded", extra={"policy_version": policy.version})
        self._policy = policy
