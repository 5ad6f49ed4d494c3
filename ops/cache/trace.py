"""Recorded request traces: replay one under a policy, and derive the counters the cache would
have written, so a policy can be judged before it is applied (``agentctl cache analyze --trace``).

A trace is NDJSON, one lookup per line: ``{"t": seconds, "class": "faq", "key": "…", "bytes": 900}``
(``key`` identifies identical requests; ``bytes`` is the stored entry's size).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from shared.cache_maintenance.analysis import ClassCounters
from shared.llm.cache import bucket
from shared.llm.policy import CachePolicy


@dataclass(frozen=True)
class Lookup:
    t: float
    query_class: str
    key: str
    size: int


def load(path: Path) -> list[Lookup]:
    """Read a trace; a bad line raises ValueError naming it."""
    found = []
    with path.open() as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                found.append(
                    Lookup(
                        float(data["t"]),
                        str(data["class"]),
                        str(data["key"]),
                        int(data.get("bytes", 1024)),
                    )
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: not a trace line ({exc})") from None
    return sorted(found, key=lambda item: item.t)


def replay(
    trace: list[Lookup], policy: CachePolicy, horizon_s: float = 7 * 86400
) -> dict[str, ClassCounters]:
    """Counters as the cache would record them under ``policy``: hits (with the entry's age),
    misses, gaps between identical requests (within ``horizon_s``), stores and sizes. Memory
    pressure and evictions are not modelled."""
    created: dict[str, float] = {}
    last: dict[str, float] = {}
    counters: dict[str, ClassCounters] = {}
    for item in trace:
        c = counters.setdefault(item.query_class, ClassCounters())
        previous = last.get(item.key)
        last[item.key] = item.t
        if previous is not None and item.t - previous <= horizon_s:
            c.repeats += 1
            c.gaps[bucket(item.t - previous)] += 1
        born = created.get(item.key)
        if born is not None and item.t - born <= policy.ttl_for(item.query_class):
            c.hits += 1
            c.reuse[bucket(item.t - born)] += 1
            continue
        c.misses += 1
        if item.size <= policy.max_entry_bytes:
            created[item.key] = item.t
            c.stores += 1
            c.stored_bytes += item.size
            c.sizes[bucket(item.size)] += 1
        else:
            c.too_big += 1
    return counters


def hit_rate(counters: dict[str, ClassCounters]) -> float:
    hits = sum(c.hits for c in counters.values())
    lookups = hits + sum(c.misses for c in counters.values())
    return hits / lookups if lookups else 0.0
