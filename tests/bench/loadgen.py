"""The load generator is not the bottleneck: 500 req/s offered to a trivial local server.

The server is a bare functions-framework aio hello world (one worker), which answers far more
than 500 req/s on this machine; the generator runs the ``agentctl loadtest`` code path (open-loop
Poisson arrivals, aiohttp) for 30 s. Target: achieved rate within 2% of 500 req/s, and the send
lag (how late requests left against their schedule) reported.

    python -m tests.bench.loadgen [--rps 500] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json

from emulator.settings import load_stack_settings
from ops.loadtest.generator import Generator, Target
from ops.loadtest.report import summarize
from ops.loadtest.scenario import Scenario, Stage
from tests.bench.harness import HELLO, running

TOLERANCE = 0.02


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rps", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    scenario = Scenario(
        name="generator-check",
        duration_s=args.seconds,
        rate=[Stage(at_s=0, rps=args.rps)],
        mix={"chat": 1.0},
    )
    settings = load_stack_settings(environment="test")
    with running("hello", settings, source=HELLO) as hello:
        target = Target(hello.url, hello.url, lambda _: {})
        records = asyncio.run(Generator(scenario, target).run())
    summary = summarize(records, scenario, {})
    ratio = summary["achieved_rps"] / args.rps
    result = {
        "benchmark": "loadgen",
        "target_rps": args.rps,
        "offered_rps": summary["offered_rps"],
        "achieved_rps": summary["achieved_rps"],
        "ratio": round(ratio, 4),
        "errors": summary["errors_by_code"],
        "latency_ms": summary["latency_ms"],
        "send_lag_ms": summary["generator"],
        "pass": abs(ratio - 1) <= TOLERANCE and summary["error_rate"] == 0,
    }
    print(
        f"generator: {summary['achieved_rps']} req/s achieved for {args.rps:.0f} targeted "
        f"({ratio:.1%}; within ±{TOLERANCE:.0%}: {result['pass']}); send lag p99 "
        f"{summary['generator']['send_lag_ms_p99']} ms; server p50 "
        f"{summary['latency_ms']['p50']} ms"
    )
    print(json.dumps(result))
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
