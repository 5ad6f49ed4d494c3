"""A request's rate-limit check, deferred to its first Redis round trip.

A cache-hit chat needs two answers from Memorystore: whether its rate limits admit it, and the
cached answer. For a route marked ``deferred_limits`` the guard hands over an unsettled
*admission*; the response cache settles it in its lookup script (one round trip for both), and
anything that would do other work first — a Firestore read or write, a model call — settles it
on its own (`settle_pending`). A request the limits refuse does no work and gets the same 429 as
before; the router settles what is left when the handler ends.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from shared import errors
from shared.ratelimit import PERIOD_MS, Decision, Limit, RateLimiter, key_of


class Admission:
    """The rate limits of one request: checked now, or pending until its first round trip."""

    def __init__(self, limiter: RateLimiter, limits: list[Limit]) -> None:
        self._limiter = limiter
        self._limits = limits
        self.decision: Decision | None = None

    @property
    def pending(self) -> bool:
        return self.decision is None

    def script_keys(self) -> list[str]:
        return [key_of(limit) for limit in self._limits]

    def script_args(self, now_ms: int) -> list[int]:
        """``gcra``'s arguments: now, the period, and each limit per minute."""
        return [now_ms, PERIOD_MS, *(limit.per_minute for limit in self._limits)]

    async def settle(self) -> Decision:
        """Check the limits (once); raise `errors.RateLimited` if they refuse the request."""
        if self.decision is None:
            self._decide(await self._limiter.check(self._limits))
        assert self.decision is not None
        return self.decision

    def record(self, reply: list[Any]) -> None:
        """Settle from a script's ``gcra`` reply; raise if refused."""
        self._decide(self._limiter.decided(self._limits, reply))

    def record_locally(self) -> None:
        """Settle with this instance's limiter (Memorystore unreachable); raise if refused."""
        self._decide(self._limiter.decide_locally(self._limits))

    def headers(self) -> dict[str, str]:
        return self.decision.headers() if self.decision is not None else {}

    def _decide(self, decision: Decision) -> None:
        self.decision = decision
        if not decision.allowed:
            raise errors.RateLimited(
                f"rate limit of {decision.limit} requests per minute reached",
                retry_after=decision.retry_after_s,
                headers=decision.headers(),
            )


current: ContextVar[Admission | None] = ContextVar("admission", default=None)


def pending() -> Admission | None:
    """This request's admission, if it still waits to be settled."""
    admission = current.get()
    return admission if admission is not None and admission.pending else None


async def settle_pending() -> None:
    """Settle this request's admission before work that is not its cache lookup."""
    admission = pending()
    if admission is not None:
        await admission.settle()
