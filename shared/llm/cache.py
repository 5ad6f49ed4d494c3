"""The response cache in Memorystore: keys, entries, tags and per-class counters.

An entry is ``<created_ms>:<codec><payload>``; the codec is ``J`` (JSON) or ``Z`` (zstd level 3,
chosen by `tests/bench/cache_codec.py`: about zlib-6's ratio at a fifth of its cost). A lookup
runs one Lua script that reads the entry and bumps the class's counters in the same round trip:
hits and misses, the age of a hit entry (``reuse_le_<b>``: age ≤ 2^b s), and — through a small
``seen`` marker per request kept for ``cache_reuse_horizon_s`` — the gap since the same request
was last made (``gap_le_<b>``, ``repeats``). Gaps do not depend on the TTL in force, so cache
maintenance can predict the hit rate of any TTL from them.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict
from datetime import UTC, datetime
from functools import partial
from typing import Any

from shared.admission import Admission
from shared.llm.policy import CachePolicy
from shared.llm.types import LlmRequest, LlmResult, Turn, result_from_dict
from shared.memorystore import Memorystore, StoreUnavailable
from shared.ratelimit import GCRA_FUNCTION

PREFIX = "ngx"
STATS_TTL_S = 48 * 3600

# Read an entry and count it: KEYS[k] entry, KEYS[k+1] class stats, KEYS[k+2] seen marker;
# ARGV[a] now (ms), ARGV[a+1] stats TTL, ARGV[a+2] reuse horizon.
LOOKUP_FUNCTION = """
local function bucket(seconds)
  local b = 0
  while 2 ^ b < seconds and b < 24 do b = b + 1 end
  return b
end
local function lookup(k, a)
  local v = redis.call('GET', KEYS[k])
  local stats = KEYS[k + 1]
  local now = tonumber(ARGV[a])
  if v then
    redis.call('HINCRBY', stats, 'hits', 1)
    redis.call('HINCRBY', stats, 'hit_bytes', string.len(v))
    local created = tonumber(string.match(v, '^(%d+):'))
    if created then
      redis.call('HINCRBY', stats, 'reuse_le_' .. bucket(math.max(0, (now - created) / 1000)), 1)
    end
  else
    redis.call('HINCRBY', stats, 'misses', 1)
  end
  local last = tonumber(redis.call('GET', KEYS[k + 2]))
  redis.call('SET', KEYS[k + 2], ARGV[a], 'EX', ARGV[a + 2])
  if last then
    redis.call('HINCRBY', stats, 'repeats', 1)
    redis.call('HINCRBY', stats, 'gap_le_' .. bucket(math.max(0, (now - last) / 1000)), 1)
  end
  redis.call('EXPIRE', stats, ARGV[a + 1])
  return v
end
"""
_LOOKUP = LOOKUP_FUNCTION + "return lookup(1, 1)"
# A request's rate limits, then (if they admit it) its lookup: KEYS = n limit keys + the three
# lookup keys; ARGV = n, gcra's arguments (now, period, n limits), lookup's three.
_ADMIT_AND_LOOKUP = (
    GCRA_FUNCTION
    + LOOKUP_FUNCTION
    + """
local n = tonumber(ARGV[1])
local decision = gcra(1, n, tonumber(ARGV[2]), tonumber(ARGV[3]), 4)
if decision[1] == 0 then return decision end
decision[5] = lookup(n + 1, 4 + n)
return decision
"""
)


def bucket(value: float) -> int:
    """The log2 bucket of a positive figure, as the lookup script computes it (0..24)."""
    found = 0
    while 2**found < value and found < 24:
        found += 1
    return found


_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


def stats_key(query_class: str, when: datetime | None = None) -> str:
    """The hourly counters hash of a query class."""
    hour = (when or datetime.now(UTC)).strftime("%Y%m%d%H")
    return f"{PREFIX}:stats:{query_class}:{hour}"


def seen_key(key: str) -> str:
    """When the request of an entry key was last made (ms); outlives the entry."""
    return key.replace(f"{PREFIX}:c:", f"{PREFIX}:seen:", 1)


def tag_key(kind: str, value: str) -> str:
    return f"{PREFIX}:tag:{kind}:{value}"


def request_key(request: LlmRequest, model: str) -> str:
    """Entry key: hash of model, contents, system instruction, generation parameters, scope, and
    the offered tools and answer schema (named only when set, so plain requests keep their keys)."""
    fields: dict[str, Any] = {
        "model": model,
        "turns": [_turn_material(t) for t in request.turns],
        "system": request.system_instruction,
        "max_output_tokens": request.max_output_tokens,
        "temperature": round(request.temperature, 4),
        "scope": request.cache_scope,
        "template": request.template_version,
    }
    if request.tools:
        fields["tools"] = [[t.name, t.description, t.parameters] for t in request.tools]
        fields["tool_choice"] = request.tool_choice
    if request.response_schema is not None:
        fields["schema"] = request.response_schema
    material = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(material.encode()).hexdigest()
    return f"{PREFIX}:c:{request.query_class}:{digest}"


def _turn_material(turn: Turn) -> list[Any]:
    """A turn as key material: plain turns keep their historical form (their keys stay valid)."""
    if not turn.calls and not turn.results:
        return [turn.role, turn.text]
    calls = [[c.name, json.dumps(c.args, sort_keys=True)] for c in turn.calls]
    results = [[r.name, json.dumps(r.response, sort_keys=True)] for r in turn.results]
    return [turn.role, turn.text, calls, results]


async def _sscan(tag: str, cursor: int, count: int, r: Any) -> tuple[int, list[bytes]]:
    found: tuple[int, list[bytes]] = await r.sscan(tag, cursor=cursor, count=count)
    return found


async def _unlink(keys: list[bytes], r: Any) -> int:
    return int(await r.unlink(*keys))


def _lock_key(key: str) -> str:
    return key.replace(f"{PREFIX}:c:", f"{PREFIX}:lock:", 1)


def owned_keys(subject: str) -> str:
    """The set of Redis keys written for a subject's requests (what erasing it must delete)."""
    return f"{PREFIX}:owned:{hashlib.sha256(subject.encode()).hexdigest()[:32]}"


def own(pipe: Any, subject: str | None, keys: list[str], ttl_s: int) -> None:
    """Add ``keys`` to the subject's set, which lives at least as long as each of them."""
    if not subject:
        return
    index = owned_keys(subject)
    pipe.sadd(index, *keys)
    pipe.expire(index, ttl_s, nx=True)  # a new set gets the keys' lifetime…
    pipe.expire(index, ttl_s, gt=True)  # …and an older one only ever lives longer


def fill_key(key: str, holder: str) -> str:
    """The Redis stream the fill-lock ``holder`` copies its model stream to, chunk by chunk."""
    return key.replace(f"{PREFIX}:c:", f"{PREFIX}:fill:", 1) + f":{holder}"


def is_cacheable(request: LlmRequest, max_temperature: float) -> bool:
    """Only deterministic-enough requests without side-effecting tools are cached."""
    return request.temperature <= max_temperature and not request.side_effect_tools


def encode(result: LlmResult, policy: CachePolicy, now_ms: int) -> bytes | None:
    """The stored form of an answer, or None when it is above the size limit."""
    payload = json.dumps(asdict(result), separators=(",", ":")).encode()
    codec = b"J"
    if len(payload) >= policy.compress_min_bytes:
        import zstandard

        payload, codec = zstandard.ZstdCompressor(level=3).compress(payload), b"Z"
    entry = str(now_ms).encode() + b":" + codec + payload
    return entry if len(entry) <= policy.max_entry_bytes else None


def decode(entry: bytes) -> LlmResult:
    """An answer from its stored form."""
    _, _, rest = entry.partition(b":")
    codec, payload = rest[:1], rest[1:]
    if codec == b"Z":
        import zstandard

        payload = zstandard.ZstdDecompressor().decompress(payload)
    data: dict[str, Any] = json.loads(payload)
    return result_from_dict(data)


class ResponseCache:
    """Reads and writes cached answers; every method may raise `StoreUnavailable`."""

    def __init__(self, store: Memorystore, reuse_horizon_s: int = 7 * 86400) -> None:
        self.store = store
        self.reuse_horizon_s = reuse_horizon_s
        self._lookup = store.redis.register_script(_LOOKUP)
        self._admit_and_lookup = store.redis.register_script(_ADMIT_AND_LOOKUP)
        self._release = store.redis.register_script(_RELEASE)
        self._renew = store.redis.register_script(_RENEW)

    async def lookup(
        self,
        key: str,
        query_class: str,
        now_ms: int | None = None,
        admission: Admission | None = None,
    ) -> LlmResult | None:
        """The cached answer (counted as a hit) or None (counted as a miss).

        A pending ``admission`` is settled in the same round trip, first: a request its limits
        refuse raises `errors.RateLimited` and is not counted. Should Memorystore be unreachable
        it is settled by this instance's limiter before `StoreUnavailable` is raised."""
        now_ms = now_ms or int(time.time() * 1000)
        keys = [key, stats_key(query_class), seen_key(key)]
        args = [now_ms, STATS_TTL_S, self.reuse_horizon_s]
        if admission is None or not admission.pending:
            entry = await self.store.run(lambda r: self._lookup(keys=keys, args=args))
            return decode(entry) if entry else None
        limit_keys = admission.script_keys()
        limit_args = [len(limit_keys), *admission.script_args(now_ms)]
        try:
            reply = await self.store.run(
                lambda r: self._admit_and_lookup(keys=limit_keys + keys, args=limit_args + args)
            )
        except StoreUnavailable:
            admission.record_locally()
            raise
        admission.record(reply)
        return decode(reply[4]) if len(reply) > 4 and reply[4] else None

    async def peek(self, key: str) -> LlmResult | None:
        """The cached answer without counting (used while waiting for another caller)."""
        entry = await self.store.run(lambda r: r.get(key))
        return decode(entry) if entry else None

    async def store_answer(
        self,
        key: str,
        request: LlmRequest,
        result: LlmResult,
        policy: CachePolicy,
        unlock: str | None = None,
    ) -> bool:
        """Cache an answer with its tags and the class's counters; False when it is too big.
        ``unlock``: the fill-lock token to release in the same round trip (once stored)."""
        entry = encode(result, policy, int(time.time() * 1000))
        stats = stats_key(request.query_class)
        if entry is None:
            await self.store.run(lambda r: r.hincrby(stats, "too_big", 1))
            return False
        ttl = policy.ttl_for(request.query_class)
        tags = [
            tag_key("model", result.model),
            tag_key("template", request.template_version),
            tag_key("class", request.query_class),
        ]

        async def write(r: Any) -> None:
            pipe = r.pipeline(transaction=False)
            pipe.set(key, entry, ex=ttl)
            pipe.hincrby(stats, "stores", 1)
            pipe.hincrby(stats, "stored_bytes", len(entry))
            pipe.hincrby(stats, f"size_le_{bucket(len(entry))}", 1)
            pipe.expire(stats, STATS_TTL_S)
            for tag in tags:
                pipe.sadd(tag, key)
                pipe.expire(tag, max(ttl, 86400))
            own(pipe, request.subject, [key], ttl)
            if unlock is not None:
                await self._release(keys=[_lock_key(key)], args=[unlock], client=pipe)
            await pipe.execute()

        await self.store.run(write)
        return True

    async def peek_with_lock(self, key: str) -> tuple[LlmResult | None, bool]:
        """The cached answer (uncounted) and whether its fill lock is held, in one round trip."""
        entry, lock = await self.store.run(lambda r: r.mget(key, _lock_key(key)))
        return (decode(entry) if entry else None), lock is not None

    async def try_lock(self, key: str, token: str, ttl_s: float) -> bool:
        """Take the fill lock of an entry (across instances); True when this caller holds it."""
        lock = _lock_key(key)
        return bool(
            await self.store.run(lambda r: r.set(lock, token, nx=True, px=int(ttl_s * 1000)))
        )

    async def lock_holder(self, key: str) -> str | None:
        """The token of whoever holds an entry's fill lock, if anyone does."""
        holder = await self.store.run(lambda r: r.get(_lock_key(key)))
        return holder.decode() if holder is not None else None

    async def renew_lock(self, key: str, token: str, ttl_s: float) -> bool:
        """Extend a fill lock this caller holds (a long stream outlives the lock's first TTL)."""
        lock = _lock_key(key)
        ttl_ms = int(ttl_s * 1000)
        return bool(await self.store.run(lambda r: self._renew(keys=[lock], args=[token, ttl_ms])))

    async def unlock(self, key: str, token: str) -> None:
        lock = _lock_key(key)
        await self.store.run(lambda r: self._release(keys=[lock], args=[token]))

    async def invalidate_tag(self, kind: str, value: str, batch: int = 500) -> int:
        """Delete every entry carrying a tag, in batches; returns how many were deleted."""
        tag = tag_key(kind, value)
        deleted = 0
        cursor = 0
        while True:
            cursor, members = await self.store.run(partial(_sscan, tag, cursor, batch), timeout=5.0)
            if members:
                deleted += await self.store.run(partial(_unlink, members), timeout=5.0)
            if cursor == 0:
                break
        await self.store.run(lambda r: r.unlink(tag))
        return deleted
