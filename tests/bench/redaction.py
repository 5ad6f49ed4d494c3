"""What redaction costs per request: the two log lines a chat writes (the request line and the
``llm call`` line), formatted with and without the redactor, in the same run.

The target: redaction adds less than 10% of the function CPU of a cache-hit chat (≈ 0.4 ms, see
``chat_throughput``), i.e. under 40 µs per request.

    python -m tests.bench.redaction
"""

from __future__ import annotations

import json
import logging
import statistics
import time

from shared.logs import CloudLoggingFormatter
from shared.redact import Redactor

TARGET_US = 40.0
RUNS, LINES = 7, 4000


def records() -> list[logging.LogRecord]:
    """A chat's two lines, as the functions write them."""
    request = logging.makeLogRecord(
        {
            "name": "ngx.http",
            "levelname": "INFO",
            "msg": "request",
            "httpRequest": {
                "requestMethod": "POST",
                "requestUrl": "/v1/chat",
                "status": 200,
                "latency": "0.004211s",
            },
        }
    )
    call = logging.makeLogRecord(
        {
            "name": "vertex_ai.client",
            "levelname": "INFO",
            "msg": "llm call",
            "latency_ms": 1.92,
            "model": "gemini-2.5-flash",
            "tokens_in": 0,
            "tokens_out": 0,
            "tokens": 0,
            "cache": "hit",
            "cache_hit": True,
            "attempts": 0,
            "fallback": False,
            "cost_usd": 0.0,
            "query_class": "chat",
        }
    )
    return [request, call]


class Bare(CloudLoggingFormatter):
    """The same formatter with nothing to redact: the baseline."""

    def __init__(self) -> None:
        super().__init__("ngx-bench")
        self.redactor.value = lambda value: value  # type: ignore[method-assign]


def per_request_us(formatter: logging.Formatter) -> float:
    pair = records()
    samples = []
    for _ in range(RUNS):
        started = time.perf_counter()
        for _ in range(LINES // 2):
            for record in pair:
                formatter.format(record)
        samples.append((time.perf_counter() - started) / (LINES // 2) * 1e6)
    return statistics.median(samples)


def main() -> int:
    bare = per_request_us(Bare())
    redacted = per_request_us(CloudLoggingFormatter("ngx-bench", Redactor()))
    added = redacted - bare
    met = added <= TARGET_US
    print(
        f"redaction: {redacted:.1f} µs per request's log lines vs {bare:.1f} µs without → "
        f"+{added:.1f} µs (target ≤ {TARGET_US:.0f} µs)"
    )
    print(
        json.dumps(
            {
                "benchmark": "redaction",
                "bare_us": round(bare, 2),
                "redacted_us": round(redacted, 2),
                "added_us": round(added, 2),
                "target_us": TARGET_US,
                "pass": met,
            }
        )
    )
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
