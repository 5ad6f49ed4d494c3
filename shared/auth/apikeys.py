"""API keys: stored only as SHA-256 hashes in Firestore (``api_keys/{sha256}``), with scopes and a
rate-limit tier. Lookups are cached in Memorystore for ``api_key_cache_s``; revoking a key drops
its cache entry, so revocation takes effect at once."""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from shared import errors
from shared.auth.principal import DEFAULT_KEY_SCOPES, Principal, is_scope
from shared.memorystore import Memorystore, StoreUnavailable

COLLECTION = "api_keys"
PREFIX = "ngx_"


def key_hash(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """What is stored about a key (never the key itself)."""

    key_id: str
    name: str
    subject: str
    scopes: tuple[str, ...]
    tier: str
    created_at: str
    revoked_at: str | None = None

    def principal(self) -> Principal:
        return Principal(
            subject=self.subject,
            kind="api_key",
            scopes=self.scopes,
            tier=self.tier,
            key_id=self.key_id,
        )


class ApiKeyStore:
    """Creates, lists, revokes and checks API keys."""

    def __init__(self, db: Any, cache: Memorystore | None = None, cache_s: int = 60) -> None:
        self._db = db
        self._cache = cache
        self._cache_s = cache_s

    async def create(
        self,
        name: str,
        subject: str | None = None,
        scopes: tuple[str, ...] = DEFAULT_KEY_SCOPES,
        tier: str = "standard",
    ) -> tuple[str, ApiKey]:
        """A new key: the plaintext (shown once) and its stored record."""
        unknown = {scope for scope in scopes if not is_scope(scope)}
        if unknown:
            raise errors.BadRequest(f"unknown scopes: {', '.join(sorted(unknown))}")
        plaintext = PREFIX + secrets.token_urlsafe(32)
        digest = key_hash(plaintext)
        key_id = digest[:12]
        record = ApiKey(
            key_id=key_id,
            name=name,
            subject=subject or f"key:{key_id}",
            scopes=tuple(scopes),
            tier=tier,
            created_at=datetime.now(UTC).isoformat(),
        )
        await self._db.collection(COLLECTION).document(digest).create(_to_doc(record))
        return plaintext, record

    async def list_keys(self) -> list[ApiKey]:
        return [_from_doc(doc.to_dict()) async for doc in self._db.collection(COLLECTION).stream()]

    async def _find(self, key_id: str) -> Any:
        """The stored document of a key, by its public id; unknown ids are an error."""
        from google.cloud.firestore_v1.base_query import FieldFilter

        query = (
            self._db.collection(COLLECTION)
            .where(filter=FieldFilter("key_id", "==", key_id))
            .limit(1)
        )
        found = [doc async for doc in query.stream()]
        if not found:
            raise errors.NotFound(f"no API key {key_id}")
        return found[0]

    async def get(self, key_id: str) -> ApiKey:
        """A key's record, by its public id."""
        record: ApiKey = _from_doc((await self._find(key_id)).to_dict())
        return record

    async def revoke(self, key_id: str) -> ApiKey:
        """Mark a key revoked (kept for audit); unknown ids are an error."""
        doc = await self._find(key_id)
        revoked_at = datetime.now(UTC).isoformat()
        await doc.reference.update({"revoked_at": revoked_at})
        if self._cache is not None:
            try:
                await self._cache.run(lambda r: r.delete(_cache_key(doc.id)))
            except StoreUnavailable:
                raise errors.Unavailable(
                    "key revoked, but cached copies may stay valid for "
                    f"{self._cache_s} s: Memorystore is unreachable"
                ) from None
        record: ApiKey = _from_doc(doc.to_dict() | {"revoked_at": revoked_at})
        return record

    async def authenticate(self, plaintext: str) -> Principal:
        """The principal of a valid, unrevoked key; anything else is 401."""
        if not plaintext.startswith(PREFIX) or len(plaintext) > 128:
            raise errors.Unauthenticated("API key is not valid")
        digest = key_hash(plaintext)
        record = await self._cached(digest)
        if record is None:
            snapshot = await self._db.collection(COLLECTION).document(digest).get()
            record = _from_doc(snapshot.to_dict()) if snapshot.exists else None
            await self._remember(digest, record)
        if record is None or record.revoked_at:
            raise errors.Unauthenticated("API key is not valid")
        return record.principal()

    async def _cached(self, digest: str) -> ApiKey | None:
        if self._cache is None or not self._cache_s:
            return None
        try:
            raw = await self._cache.run(lambda r: r.get(_cache_key(digest)))
        except StoreUnavailable:
            return None
        return _from_doc(json.loads(raw)) if raw else None

    async def _remember(self, digest: str, record: ApiKey | None) -> None:
        if self._cache is None or not self._cache_s or record is None:
            return
        payload = json.dumps(_to_doc(record))
        with contextlib.suppress(StoreUnavailable):
            await self._cache.run(lambda r: r.set(_cache_key(digest), payload, ex=self._cache_s))


def _cache_key(digest: str) -> str:
    return f"ngx:apikey:{digest}"


def _to_doc(record: ApiKey) -> dict[str, Any]:
    doc = asdict(record)
    doc["scopes"] = list(record.scopes)
    return doc


def _from_doc(doc: dict[str, Any] | None) -> ApiKey:
    assert doc is not None
    return ApiKey(**{**doc, "scopes": tuple(doc.get("scopes", ()))})
