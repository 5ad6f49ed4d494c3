"""Results of a load run: the per-request CSV, the JSON summary with the SLO verdict, the chart."""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from ops.loadtest.generator import Record
from ops.loadtest.scenario import Scenario
from shared.llm.accounting import cost_usd


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def write_csv(records: list[Record], path: Path) -> None:
    names = [f.name for f in fields(Record)]
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=names)
        writer.writeheader()
        for record in records:
            writer.writerow(asdict(record))


def summarize(
    records: list[Record],
    scenario: Scenario,
    prices: dict[str, dict[str, float]],
    resources: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The figures operators read before a launch, and whether the scenario's SLO held."""
    ok = [r for r in records if r.ok]
    errors = Counter(r.error or f"http_{r.status}" for r in records if not r.ok)
    span = max((r.finished_s for r in records), default=0.0) or scenario.duration_s
    latencies = [r.latency_ms for r in ok]
    ttfts = [r.ttft_ms for r in ok if r.ttft_ms is not None]
    with_usage = [r for r in ok if r.cached is not None]
    lags = [(r.sent_s - r.scheduled_s) * 1000 for r in records]
    p95 = percentile(latencies, 0.95)
    error_rate = (len(records) - len(ok)) / len(records) if records else 0.0
    slo = scenario.slo
    summary: dict[str, Any] = {
        "scenario": scenario.name,
        "duration_s": scenario.duration_s,
        "requests": len(records),
        "offered_rps": round(len(records) / scenario.duration_s, 1),
        "achieved_rps": round(len(records) / span, 1) if span else 0.0,
        "succeeded_rps": round(len(ok) / span, 1) if span else 0.0,
        "latency_ms": {
            "p50": percentile(latencies, 0.5),
            "p95": p95,
            "p99": percentile(latencies, 0.99),
        },
        "ttft_ms": {
            "p50": percentile(ttfts, 0.5),
            "p95": percentile(ttfts, 0.95),
            "p99": percentile(ttfts, 0.99),
        },
        "by_kind": {
            kind: {
                "requests": sum(1 for r in records if r.kind == kind),
                "latency_p95_ms": percentile([r.latency_ms for r in ok if r.kind == kind], 0.95),
            }
            for kind in sorted({r.kind for r in records})
        },
        "error_rate": round(error_rate, 4),
        "errors_by_code": dict(errors.most_common()),
        "cache_hit_rate": round(sum(1 for r in with_usage if r.cached) / len(with_usage), 4)
        if with_usage
        else None,
        "tokens": {"input": sum(r.tokens_in for r in ok), "output": sum(r.tokens_out for r in ok)},
        "estimated_cost_usd": round(
            sum(cost_usd(prices, r.model, r.tokens_in, r.tokens_out) for r in ok), 6
        ),
        "generator": {
            "send_lag_ms_p50": percentile(lags, 0.5),
            "send_lag_ms_p99": percentile(lags, 0.99),
            "send_lag_ms_max": round(max(lags), 1) if lags else None,
        },
        "slo": {
            "p95_ms": slo.p95_ms,
            "error_rate": slo.error_rate,
            "p95_met": p95 is not None and p95 < slo.p95_ms,
            "error_rate_met": error_rate < slo.error_rate,
        },
    }
    if resources:
        summary["resources"] = resources
    summary["slo"]["met"] = summary["slo"]["p95_met"] and summary["slo"]["error_rate_met"]
    return summary


def chart(records: list[Record], scenario: Scenario, path: Path) -> None:
    """Latency (p50, p95 by send second) above, offered/achieved/error rates below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seconds = int(scenario.duration_s) + 1
    by_second: list[list[float]] = [[] for _ in range(seconds)]
    offered, achieved, failed = [0] * seconds, [0] * (seconds + 60), [0] * (seconds + 60)
    for r in records:
        start = min(seconds - 1, int(r.scheduled_s))
        offered[start] += 1
        end = min(len(achieved) - 1, int(r.finished_s))
        if r.ok:
            by_second[start].append(r.latency_ms)
            achieved[end] += 1
        else:
            failed[end] += 1
    xs = list(range(seconds))
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
    top.plot(xs, [percentile(v, 0.5) or float("nan") for v in by_second], label="p50")
    top.plot(xs, [percentile(v, 0.95) or float("nan") for v in by_second], label="p95")
    top.axhline(scenario.slo.p95_ms, color="red", linestyle="--", linewidth=1, label="SLO p95")
    top.set_ylabel("latency (ms)")
    top.set_title(f"agentctl loadtest — {scenario.name}")
    top.legend(loc="upper left")
    bottom.plot(xs, offered, label="offered")
    bottom.plot(xs, achieved[:seconds], label="succeeded")
    bottom.plot(xs, failed[:seconds], label="failed")
    bottom.set_ylabel("requests / s")
    bottom.set_xlabel("seconds since start")
    bottom.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
