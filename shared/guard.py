"""The gate in front of every non-public route: authenticate, check the scope, apply rate limits."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from shared import errors, pseudonyms, telemetry
from shared.admission import Admission
from shared.auth.apikeys import ApiKeyStore
from shared.auth.principal import Principal
from shared.auth.tokens import TokenVerifier
from shared.ratelimit import Limit, RateLimiter
from shared.settings import Settings

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="ngx"'}


def client_ip(request: HTTPConnection, trusted_hops: int = 1) -> str:
    """The caller's address as the trusted proxies recorded it.

    Each proxy appends the address it received from to ``X-Forwarded-For``; anything before is
    what the client wrote and proves nothing. Behind Cloud Run's front end alone (one hop) the
    caller is the last entry; behind a load balancer too (two hops), the one before it. With 0
    hops, or fewer entries than hops, the connection's own peer is used.
    """
    entries = [e.strip() for e in request.headers.get("x-forwarded-for", "").split(",")]
    entries = [e for e in entries if e]
    if trusted_hops > 0 and len(entries) >= trusted_hops:
        return entries[-trusted_hops][:64]
    return request.client.host if request.client else "unknown"


class Guard:
    def __init__(
        self,
        settings: Settings,
        tokens: TokenVerifier,
        keys: ApiKeyStore,
        limiter: RateLimiter | None,
    ) -> None:
        self.settings = settings
        self.tokens = tokens
        self.keys = keys
        self.limiter = limiter

    async def authenticate(self, request: HTTPConnection) -> Principal:
        """A principal from ``Authorization: Bearer`` or ``X-API-Key``, or 401."""
        authorization = request.headers.get("authorization")
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise errors.Unauthenticated(
                    "Authorization must be 'Bearer <token>'", headers=CHALLENGE
                )
            return await self.bearer(token.strip())
        api_key = request.headers.get("x-api-key")
        if api_key:
            return await self.keys.authenticate(api_key.strip())
        raise errors.Unauthenticated(
            "credentials required: a bearer token or an API key", headers=CHALLENGE
        )

    async def bearer(self, token: str) -> Principal:
        """The principal of an ID token, or 401 with the bearer challenge."""
        try:
            return await self.tokens.verify(token)
        except errors.Unauthenticated as exc:
            exc.headers = CHALLENGE
            raise

    async def admit(
        self, request: HTTPConnection, scope: str, defer: bool = False
    ) -> tuple[Principal, Admission | None]:
        """The caller, once authenticated, authorized for ``scope`` and within its limits (with
        ``defer``, limits still to be settled: see `shared.admission`)."""
        with telemetry.span("auth"):
            principal = await self.authenticate(request)
        self.authorize(principal, scope)
        admission = self.limits(principal, request)
        if admission is not None and not defer:
            await self.settle(principal, admission)
        return principal, admission

    @staticmethod
    def authorize(principal: Principal, scope: str) -> None:
        """403 unless ``principal`` holds ``scope``."""
        if not principal.allows(scope):
            raise errors.PermissionDenied(f"this credential lacks the {scope!r} scope")

    def limits(self, principal: Principal, connection: HTTPConnection) -> Admission | None:
        """The rate limits one request of ``principal`` counts against (its key or subject by
        tier, and its address), still to be settled; None when limits are off."""
        if self.limiter is None:
            return None
        tiers = self.settings.rate_limit_tiers
        tier = principal.tier or self.settings.rate_limit_default_tier
        per_minute = tiers.get(tier, tiers.get(self.settings.rate_limit_default_tier, 60))
        who = f"key:{principal.key_id}" if principal.key_id else principal.subject
        ip = f"ip:{client_ip(connection, self.settings.trusted_proxy_hops)}"
        return Admission(
            self.limiter,
            [Limit(who, per_minute), Limit(ip, self.settings.rate_limit_ip_per_minute)],
        )

    async def settle(self, principal: Principal, admission: Admission) -> None:
        """Count one request now: 429 (with its headers) when over a limit."""
        tier = principal.tier or self.settings.rate_limit_default_tier
        with telemetry.span("ratelimit", tier=tier):
            await admission.settle()

    def pseudonym(self, principal: Principal) -> str:
        """The caller as the logs name it: a keyed hash of its subject."""
        return pseudonyms.of_subject(self.settings, principal.subject)
