"""Cache maintenance: analyze, apply and invalidate, shared by the function and ``agentctl cache``.

``apply`` writes the recommended policy to ``config/cache`` in a transaction — a new version only
when something changed, so running it twice is harmless — and keeps every version in
``config/cache/history``; running functions reload the document within ``cache_policy_reload_s``.
The window of the next analysis starts where the last apply ended (``config/cache_maintenance``).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from shared import errors
from shared.cache_maintenance import analysis, eviction
from shared.cache_maintenance.analysis import ClassCounters, MemoryFigures
from shared.llm.cache import PREFIX, tag_key
from shared.llm.policy import POLICY_COLLECTION, POLICY_DOCUMENT, CachePolicy
from shared.memorystore import Memorystore
from shared.settings import Settings

log = logging.getLogger("ngx.cache.maintenance")
STATE_DOCUMENT = "cache_maintenance"
DEFAULT_WINDOW = timedelta(hours=24)
SCAN_BATCH = 500
TAG_KINDS = ("model", "template", "class")


async def _scan(pattern: str, cursor: int, r: Any) -> tuple[int, list[bytes]]:
    found: tuple[int, list[bytes]] = await r.scan(cursor=cursor, match=pattern, count=SCAN_BATCH)
    return found


async def _hgetall_many(keys: list[bytes], r: Any) -> list[dict[bytes, bytes]]:
    pipe = r.pipeline(transaction=False)
    for key in keys:
        pipe.hgetall(key)
    found: list[dict[bytes, bytes]] = await pipe.execute()
    return found


async def _unlink(keys: list[bytes], r: Any) -> int:
    return int(await r.unlink(*keys))


async def _info(r: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    return await r.info("memory"), await r.info("stats")


class CacheMaintenance:
    def __init__(self, settings: Settings, store: Memorystore, db: Any) -> None:
        self.settings = settings
        self.store = store
        self.db = db

    def _policy_ref(self) -> Any:
        return self.db.collection(POLICY_COLLECTION).document(POLICY_DOCUMENT)

    def _state_ref(self) -> Any:
        return self.db.collection(POLICY_COLLECTION).document(STATE_DOCUMENT)

    async def current_policy(self) -> CachePolicy:
        snapshot = await self._policy_ref().get()
        if not snapshot.exists:
            return CachePolicy.from_settings(self.settings)
        data = snapshot.to_dict() or {}
        return CachePolicy.model_validate(data.get("policy", data))

    async def _window(self, hours: int | None, now: datetime) -> datetime:
        if hours is not None:
            return now - timedelta(hours=hours)
        snapshot = await self._state_ref().get()
        last = (snapshot.to_dict() or {}).get("last_applied_at") if snapshot.exists else None
        return last if isinstance(last, datetime) else now - DEFAULT_WINDOW

    async def counters(self, since: datetime, until: datetime) -> dict[str, ClassCounters]:
        """Per-class counters of the hours in [since, until], found by SCAN in batches."""
        hours = set(analysis.window_hours(since, until))
        keys: list[bytes] = []
        cursor = 0
        while True:
            cursor, batch = await self.store.run(
                partial(_scan, f"{PREFIX}:stats:*", cursor), timeout=5.0
            )
            keys += [k for k in batch if k.decode().rsplit(":", 1)[-1] in hours]
            if cursor == 0:
                break
        found: dict[str, ClassCounters] = {}
        for start in range(0, len(keys), SCAN_BATCH):
            chunk = keys[start : start + SCAN_BATCH]
            values = await self.store.run(partial(_hgetall_many, chunk), timeout=5.0)
            for key, raw in zip(chunk, values, strict=True):
                name = key.decode()[len(f"{PREFIX}:stats:") :].rsplit(":", 1)[0]
                found.setdefault(name, ClassCounters()).add(
                    {k.decode(): int(v) for k, v in raw.items()}
                )
        return found

    async def memory(self) -> MemoryFigures:
        memory, stats = await self.store.run(_info, timeout=5.0)
        maximum = int(memory.get("maxmemory", 0))
        budget = self.settings.cache_memory_budget_bytes or (int(maximum * 0.8) or None)
        return MemoryFigures(
            used_bytes=int(memory.get("used_memory", 0)),
            max_bytes=maximum,
            budget_bytes=budget,
            eviction_policy=str(memory.get("maxmemory_policy", "")),
            evicted_keys=int(stats.get("evicted_keys", 0)),
            expired_keys=int(stats.get("expired_keys", 0)),
        )

    async def analyze(
        self, window_hours: int | None = None, now: datetime | None = None
    ) -> tuple[dict[str, Any], CachePolicy]:
        """The report and the policy it recommends."""
        until = now or datetime.now(UTC)
        since = await self._window(window_hours, until)
        counters = await self.counters(since, until)
        memory = await self.memory()
        policy = await self.current_policy()
        return recommend(self.settings, counters, policy, memory, since, until)

    async def apply(
        self, who: str, dry_run: bool = False, window_hours: int | None = None
    ) -> dict[str, Any]:
        """Analyze, then write the recommended policy (a new version only when it changed) and,
        when an instance is configured, the eviction policy."""
        from google.cloud import firestore

        now = datetime.now(UTC)
        report, recommended = await self.analyze(window_hours, now)
        why = (
            "; ".join(
                f"{c['query_class']}: {c['current_ttl_s']} s → {c['recommended_ttl_s']} s"
                for c in report["classes"]
                if c["current_ttl_s"] != c["recommended_ttl_s"]
            )
            or "thresholds only"
        )
        outcome: dict[str, Any] = {"dry_run": dry_run}
        if dry_run:
            current = await self.current_policy()
            outcome["policy_changed"] = _differs(current, recommended)
            outcome["policy_version"] = current.version
        else:
            transaction = self.db.transaction()

            @firestore.async_transactional  # type: ignore[untyped-decorator]
            async def write(tx: Any) -> tuple[int, bool]:
                snapshot = await self._policy_ref().get(transaction=tx)
                data = (snapshot.to_dict() or {}) if snapshot.exists else {}
                current = (
                    CachePolicy.model_validate(data.get("policy", data))
                    if snapshot.exists
                    else CachePolicy.from_settings(self.settings)
                )
                if not _differs(current, recommended):
                    return current.version, False
                version = current.version + 1
                new = recommended.model_copy(update={"version": version})
                record = {
                    "policy": new.model_dump(),
                    "updated_at": now,
                    "updated_by": who,
                    "reason": why,
                }
                tx.set(self._policy_ref(), record)
                history = self._policy_ref().collection("history").document(f"{version:06d}")
                tx.set(
                    history,
                    {**record, "previous_version": current.version, "window": report["window"]},
                )
                return version, True

            version, changed = await write(transaction)
            await self._state_ref().set({"last_applied_at": now, "updated_by": who})
            outcome |= {"policy_changed": changed, "policy_version": version}
            log.info(
                "cache policy applied",
                extra={"policy_version": version, "changed": changed, "who": who},
            )
        outcome["eviction"] = await eviction.ensure(
            self.settings, report["recommended_eviction_policy"], dry_run=dry_run
        )
        return {**report, **outcome, "reason": why}

    async def invalidate(
        self, tag: str | None = None, query_class: str | None = None, dry_run: bool = False
    ) -> dict[str, Any]:
        """Delete the entries of one tag (``model:…``, ``template:…``, ``class:…``) or one query
        class, in batches; ``dry_run`` counts them."""
        if (tag is None) == (query_class is None):
            raise errors.ValidationFailed(
                "give exactly one of tag or query_class",
                details=[{"field": "tag", "issue": "exactly one of tag, query_class"}],
            )
        if tag is not None:
            kind, _, value = tag.partition(":")
            if kind not in TAG_KINDS or not value:
                raise errors.ValidationFailed(
                    f"tag must be one of {', '.join(k + ':VALUE' for k in TAG_KINDS)}",
                    details=[{"field": "tag", "issue": "unknown kind"}],
                )
            if kind == "class":
                query_class = value
            else:
                return await self._by_tag(kind, value, dry_run)
        assert query_class is not None
        return await self._by_class(query_class, dry_run)

    async def _by_tag(self, kind: str, value: str, dry_run: bool) -> dict[str, Any]:
        from shared.llm.cache import ResponseCache

        key = tag_key(kind, value)
        if dry_run:
            count = int(await self.store.run(lambda r: r.scard(key), timeout=5.0))
            return {"tag": f"{kind}:{value}", "dry_run": True, "entries": count}
        deleted = await ResponseCache(self.store).invalidate_tag(kind, value)
        return {"tag": f"{kind}:{value}", "dry_run": False, "deleted": deleted}

    async def _by_class(self, query_class: str, dry_run: bool) -> dict[str, Any]:
        """Every entry key of a class shares its prefix: SCAN it in batches (maintenance path)."""
        pattern = f"{PREFIX}:c:{_escape(query_class)}:*"
        cursor, matched, deleted = 0, 0, 0
        while True:
            cursor, batch = await self.store.run(partial(_scan, pattern, cursor), timeout=5.0)
            matched += len(batch)
            if batch and not dry_run:
                deleted += await self.store.run(partial(_unlink, batch), timeout=5.0)
            if cursor == 0:
                break
        if not dry_run:
            await self.store.run(lambda r: r.unlink(tag_key("class", query_class)), timeout=5.0)
        result: dict[str, Any] = {"query_class": query_class, "dry_run": dry_run}
        return result | ({"entries": matched} if dry_run else {"deleted": deleted})


def recommend(
    settings: Settings,
    counters: dict[str, ClassCounters],
    policy: CachePolicy,
    memory: MemoryFigures,
    since: datetime,
    until: datetime,
) -> tuple[dict[str, Any], CachePolicy]:
    """The analysis report and the policy it recommends, from counters however obtained."""
    window_s = max(60.0, (until - since).total_seconds())
    advice = analysis.advise(counters, policy, settings, memory, window_s)
    limit, limit_why = analysis.size_limit(counters, policy)
    threshold, threshold_why = analysis.compression_threshold(policy, memory)
    evict, evict_why = analysis.eviction_policy(memory)
    recommended = policy.model_copy(
        update={
            "class_ttl_s": {
                **policy.class_ttl_s,
                **{
                    a.query_class: a.recommended_ttl_s
                    for a in advice
                    if a.query_class in policy.class_ttl_s
                    or a.recommended_ttl_s != policy.ttl_for(a.query_class)
                },
            },
            "max_entry_bytes": limit,
            "compress_min_bytes": threshold,
        }
    )
    reasons = {
        "max_entry_bytes": limit_why,
        "compress_min_bytes": threshold_why,
        "eviction_policy": f"{evict}: {evict_why}",
    }
    report = analysis.report(advice, memory, policy, recommended, reasons, since, until)
    report["recommended_eviction_policy"] = evict
    return report, recommended


def _differs(current: CachePolicy, recommended: CachePolicy) -> bool:
    return current.model_dump(exclude={"version"}) != recommended.model_dump(exclude={"version"})


def _escape(value: str) -> str:
    """A literal for a Redis glob pattern."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in value)
