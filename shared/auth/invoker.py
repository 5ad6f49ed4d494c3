"""Who may call the private functions (cache-maintenance and backup; ingest).

Cloud Run IAM already admits only the scheduler's and the operators' service accounts; the
functions check again in code (defence in depth, and a misconfigured ``allUsers`` binding stays
harmless): a Google-signed OIDC ID token whose audience is this service and whose verified
``email`` is Cloud Scheduler's identity (Eventarc's, for ingest) or an operator's. The
scheduler's identity never gets the operator-only actions (restore). A bypass exists for the
local stack and tests only, when a setting says so (settings refuse it in staging and prod).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Literal

from starlette.requests import Request

from shared import errors
from shared.auth.tokens import JwksCache, decode
from shared.settings import Settings

GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="ngx-scheduled"'}
Role = Literal["scheduler", "events", "push", "operator"]


@dataclass(frozen=True)
class Invoker:
    email: str
    role: Role


class InvokerAuth:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.jwks = JwksCache(settings.invoker_jwks_url, settings.auth_jwks_ttl_s)
        issuer = settings.invoker_issuer
        self.issuers = list(GOOGLE_ISSUERS) if issuer in GOOGLE_ISSUERS else [issuer]
        service = os.environ.get("K_SERVICE")
        self._hashed = (
            re.compile(rf"https://{re.escape(service)}-[a-z0-9]+-[a-z]{{2,4}}\.a\.run\.app/?\Z")
            if service
            else None
        )

    async def caller(
        self, request: Request, roles: tuple[Role, ...] = ("scheduler", "operator")
    ) -> Invoker:
        """The verified caller in one of ``roles``, or 401 (no or bad token) / 403 (an identity
        not allowed here)."""
        if self.settings.invoker_auth_bypass:
            return Invoker("local-bypass", "operator")
        audience = self.settings.invoker_audience
        if not audience:
            raise errors.Unavailable("this function has no invoker audience configured")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise errors.Unauthenticated(
                "a Google-signed OIDC token is required (Authorization: Bearer …)",
                headers=CHALLENGE,
            )
        try:
            claims = await decode(
                token.strip(), self.jwks, self.issuers, None, self.settings.auth_clock_skew_s
            )
        except errors.Unauthenticated as exc:
            exc.headers = CHALLENGE
            raise
        email = str(claims.get("email", ""))
        if not email or claims.get("email_verified") is not True:
            raise errors.Unauthenticated("token carries no verified email", headers=CHALLENGE)
        found = self._role(email)
        if not self._for_us(claims.get("aud"), audience, hashed=found == "events"):
            raise errors.Unauthenticated("token audience is not this service", headers=CHALLENGE)
        if found is None or found not in roles:
            raise errors.PermissionDenied(f"{email} may not invoke this function")
        return Invoker(email, found)

    def _for_us(self, claimed: object, audience: str, hashed: bool) -> bool:
        """Whether ``claimed`` names this service: its configured URL — or, for Eventarc's
        identity (``hashed``) on Cloud Run, where ``K_SERVICE`` is set, the service's other URL
        (``https://NAME-HASH-REGION.a.run.app``, the one a trigger signs for, and which Cloud Run
        has already checked belongs to this service). Every other caller signs for the URL."""
        found = claimed if isinstance(claimed, list) else [claimed]
        return any(
            isinstance(a, str)
            and (
                a.rstrip("/") == audience.rstrip("/")
                or bool(hashed and self._hashed and self._hashed.match(a))
            )
            for a in found
        )

    def _role(self, email: str) -> Role | None:
        if email == self.settings.scheduler_service_account:
            return "scheduler"
        if self.settings.event_service_account and email == self.settings.event_service_account:
            return "events"
        if self.settings.push_service_account and email == self.settings.push_service_account:
            return "push"
        if email in self.settings.operator_service_accounts:
            return "operator"
        return None


def require_operator(invoker: Invoker, action: str) -> None:
    """Operator-only actions (restore) are refused to the scheduler's identity."""
    if invoker.role != "operator":
        raise errors.PermissionDenied(
            f"{action!r} is for operators; {invoker.email} may not run it"
        )
