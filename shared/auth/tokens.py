"""ID token verification: RS256 JWTs checked against a cached JWKS.

Issuer, audience and JWKS URL are settings (Firebase Auth defaults). The key set is cached for its
``Cache-Control: max-age`` (or ``auth_jwks_ttl_s``) and fetched again when a token names an unknown
``kid`` — at most once every `MIN_REFRESH_S`, so forged kids cannot make us hammer the JWKS host.
A mobile app sends the same token for up to an hour, so each verified token is remembered
(`VerifiedTokens`) until it expires or the key set changes, and its RSA signature is checked once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import httpx
import jwt

from shared import errors
from shared.auth.principal import ALL_SCOPES, Principal, tool_scopes
from shared.settings import Settings

log = logging.getLogger("ngx.auth")
MIN_REFRESH_S = 10.0
_MAX_AGE = re.compile(r"max-age=(\d+)")


class JwksCache:
    """The signing keys of the token issuer, by ``kid``."""

    def __init__(self, url: str, ttl_s: int) -> None:
        self.url = url
        self.ttl_s = ttl_s
        self._keys: dict[str, Any] = {}
        self._expires = 0.0
        self._fetched = float("-inf")
        self._lock = asyncio.Lock()
        self.generation = 0  # bumped whenever the key set changes (a kid, or a key under a kid)
        self._fingerprint = ""

    def fresh(self) -> bool:
        """Whether the cached key set is within its lifetime (no fetch would be made)."""
        return bool(self._keys) and time.monotonic() < self._expires

    async def key(self, kid: str) -> Any:
        """The public key for ``kid``; refreshes when stale or when the kid is unknown."""
        now = time.monotonic()
        if now >= self._expires or (kid not in self._keys and now - self._fetched > MIN_REFRESH_S):
            async with self._lock:
                if time.monotonic() - self._fetched > MIN_REFRESH_S or not self._keys:
                    await self._fetch()
        found = self._keys.get(kid)
        if found is None:
            raise errors.Unauthenticated("token signed by an unknown key")
        return found

    async def _fetch(self) -> None:
        self._fetched = time.monotonic()
        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                response = await client.get(self.url)
                response.raise_for_status()
        except httpx.HTTPError as exc:
            log.error("JWKS fetch failed", extra={"error_type": type(exc).__name__})
            if not self._keys:
                raise errors.Unavailable("cannot verify tokens right now", retry_after=5) from None
            return
        listed = response.json().get("keys", [])
        keys = {}
        for jwk in listed:
            try:
                keys[jwk["kid"]] = jwt.PyJWK(jwk).key
            except (KeyError, jwt.PyJWKError):
                continue
        fingerprint = json.dumps(listed, sort_keys=True)
        if fingerprint != self._fingerprint:
            self.generation += 1
            self._fingerprint = fingerprint
        self._keys = keys
        found = _MAX_AGE.search(response.headers.get("cache-control", ""))
        ttl = int(found.group(1)) if found else self.ttl_s
        self._expires = time.monotonic() + min(ttl, self.ttl_s)


class VerifiedTokens:
    """Claims of tokens already verified, by the token itself, until they expire (LRU-bounded).

    The key is the whole token, signature included, so only the very token that was verified
    finds its entry. Entries end at the token's ``exp`` (plus the allowed skew, as `decode`
    allows) and all together when the key set changes or goes stale, so a withdrawn key stops
    being honoured at the next JWKS refresh, as without the cache.
    """

    def __init__(
        self, jwks: JwksCache, size: int, leeway: int, clock: Callable[[], float] = time.time
    ) -> None:
        self._clock = clock
        self._jwks = jwks
        self._size = size
        self._leeway = leeway
        self._entries: OrderedDict[str, tuple[dict[str, Any], float]] = OrderedDict()
        self._generation = jwks.generation

    def get(self, token: str) -> dict[str, Any] | None:
        if not self._entries:
            return None
        if self._generation != self._jwks.generation or not self._jwks.fresh():
            self._entries.clear()
            return None
        found = self._entries.get(token)
        if found is None:
            return None
        claims, until = found
        if self._clock() >= until:
            del self._entries[token]
            return None
        self._entries.move_to_end(token)
        return claims

    def put(self, token: str, claims: dict[str, Any]) -> None:
        if self._size == 0:
            return
        if self._generation != self._jwks.generation:
            self._entries.clear()
            self._generation = self._jwks.generation
        self._entries[token] = (claims, int(claims["exp"]) + self._leeway)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)


class TokenVerifier:
    """Verifies ID tokens and turns them into principals."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock  # wall-clock seconds: token expiry is judged by it
        self.issuer = settings.token_issuer
        self.audience = settings.token_audience
        self.leeway = settings.auth_clock_skew_s
        self.jwks = JwksCache(settings.auth_jwks_url, settings.auth_jwks_ttl_s)
        self.verified = VerifiedTokens(
            self.jwks, settings.auth_token_cache_size, self.leeway, clock
        )

    async def verify(self, token: str) -> Principal:
        claims = self.verified.get(token)
        if claims is None:
            claims = await decode(
                token, self.jwks, self.issuer, self.audience, self.leeway, self.clock()
            )
            self.verified.put(token, claims)
        subject = str(claims["sub"])
        if not subject or len(subject) > 128:
            raise errors.Unauthenticated("bearer token has no usable subject")
        tier = claims.get("tier")  # Identity Platform custom claim, set by the app's backend
        return Principal(
            subject=f"user:{subject}",
            kind="user",
            scopes=ALL_SCOPES + tool_scopes(claims.get("scopes")),
            tier=tier if isinstance(tier, str) and 0 < len(tier) <= 32 else None,
            claims=claims,
        )


async def decode(
    token: str,
    jwks: JwksCache,
    issuer: str | list[str],
    audience: str | None,
    leeway: int,
    now: float | None = None,
) -> dict[str, Any]:
    """The claims of an RS256 token signed by a key of ``jwks``, or 401 saying what is wrong
    (``audience`` None: the caller checks the ``aud`` claim itself).

    Expiry is judged against ``now`` (default: the wall clock), so that the verified-token cache
    and the full check agree on one clock, and tests move it instead of waiting."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise errors.Unauthenticated("malformed bearer token") from None
    if header.get("alg") != "RS256" or not header.get("kid"):
        raise errors.Unauthenticated("bearer token must be RS256 with a key id")
    key = await jwks.key(str(header["kid"]))
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key=key,
            algorithms=["RS256"],
            audience=audience,
            issuer=issuer,
            leeway=leeway,
            options={
                "require": ["exp", "iat", "sub", "aud", "iss"],
                "verify_exp": False,
                "verify_aud": audience is not None,
            },
        )
    except jwt.ExpiredSignatureError:
        raise errors.Unauthenticated("bearer token has expired") from None
    except jwt.InvalidAudienceError:
        raise errors.Unauthenticated("bearer token is for another audience") from None
    except jwt.InvalidIssuerError:
        raise errors.Unauthenticated("bearer token is from another issuer") from None
    except jwt.PyJWTError:
        raise errors.Unauthenticated("bearer token is not valid") from None
    expires = claims["exp"]
    if isinstance(expires, bool) or not isinstance(expires, int):  # as PyJWT: a whole number
        raise errors.Unauthenticated("bearer token is not valid")
    if expires + leeway <= (time.time() if now is None else now):
        raise errors.Unauthenticated("bearer token has expired")
    return claims
