"""``agentctl loadtest --scenario normal|high|spike|FILE.json [--url URL]``.

Without ``--url`` the run starts its own local stack (realistic model latency, limits lifted) and
reports the CPU each component used, which names the bottleneck. Results go to ``--out``:
``requests.csv``, ``summary.json`` and ``chart.png``. The exit status is 0 when the scenario's SLO
held, 1 when it was missed, 2 when the run could not start (nothing is sent then).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ops import development
from ops.loadtest.generator import Live
from ops.loadtest.scenario import Scenario, ScenarioError, load
from ops.settings import get_ops_settings
from shared import errors
from shared.backup.sinks import open_sink


def add_commands(commands: Any) -> None:
    parser = commands.add_parser("loadtest", help="open-loop load against chat and stream")
    parser.add_argument("--scenario", required=True, help="normal, high, spike or a .json file")
    parser.add_argument("--url", help="the chat function's base URL (default: a private stack)")
    parser.add_argument("--stream-url", help="the stream function's base URL (default: --url)")
    auth = parser.add_mutually_exclusive_group()
    auth.add_argument("--token", help="bearer token for --url")
    auth.add_argument("--api-key", help="API key for --url")
    parser.add_argument("--out", type=Path, help="results folder (default: loadtest-results/…)")
    parser.add_argument(
        "--upload",
        help="also copy the results to gs://BUCKET/PREFIX (or file:///DIR), in a folder per run",
    )
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--ttft-ms", type=float, default=350.0, help="private stack's model")
    parser.add_argument("--tokens-per-second", type=float, default=200.0)
    parser.add_argument("--answer-tokens", type=int, default=120)
    parser.set_defaults(run=main)


def _progress(live: Live, elapsed: float) -> None:
    window = [latency for finished, latency in live.recent if finished >= elapsed - 5]
    del live.recent[: max(0, len(live.recent) - 5000)]
    p95 = sorted(window)[int(0.95 * len(window))] if window else 0.0
    line = (
        f"{elapsed:5.0f}s  sent {live.sent:>7}  done {live.done:>7}  in flight {live.in_flight:>5}"
        f"  p95(5s) {p95:>7.0f} ms  errors {live.errors}"
    )
    if sys.stderr.isatty():
        print("\r" + line, end="", file=sys.stderr, flush=True)
    elif int(elapsed) % 5 == 0:
        print(line, file=sys.stderr, flush=True)


def main(args: argparse.Namespace) -> int:
    try:
        scenario = load(args.scenario)
        _check_imports()
    except ScenarioError as exc:
        print(f"agentctl loadtest: {exc}; nothing was sent", file=sys.stderr)
        return 2
    except ImportError as exc:
        print(f"agentctl loadtest: {exc}", file=sys.stderr)
        return 2
    if not args.url:
        try:
            development.load("loadstack")
        except development.DevelopmentMissing as exc:
            print(f"agentctl loadtest: without --url, {exc}", file=sys.stderr)
            return 2
    try:
        destination = open_sink(args.upload) if args.upload else None
    except errors.AppError as exc:
        print(f"agentctl loadtest: --upload: {exc.message}; nothing was sent", file=sys.stderr)
        return 2
    name = f"{scenario.name}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    out = args.out or Path("loadtest-results") / name
    out.mkdir(parents=True, exist_ok=True)
    summary = run(scenario, args, out)
    print(file=sys.stderr)
    print(json.dumps(summary, indent=1))
    where = f"{out}/"
    if destination is not None:
        asyncio.run(_upload(destination, name, out))
        where = f"{destination.url.rstrip('/')}/{name}/"
    # One structured line for Cloud Logging: the log-based metric and its alert read it.
    verdict = {
        "severity": "INFO" if summary["slo"]["met"] else "ERROR",
        "message": "loadtest verdict",
        "scenario": scenario.name,
        "slo_met": summary["slo"]["met"],
        "results": where,
    }
    print(json.dumps(verdict), file=sys.stderr)
    return 0 if summary["slo"]["met"] else 1


RESULT_FILES = ("summary.json", "requests.csv", "chart.png")


async def _upload(destination: Any, name: str, out: Path) -> None:
    """The run's files under ``name/`` at the destination (a Cloud Storage prefix or a folder)."""
    for file in RESULT_FILES:
        await destination.put(f"{name}/{file}", (out / file).read_bytes())


def _check_imports() -> None:
    try:
        import aiohttp  # noqa: F401
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"{exc.name} is missing: pip install 'ngx-agent-functions[ops]'"
        ) from None


def run(scenario: Scenario, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    from ops.loadtest import report
    from ops.loadtest.generator import Generator, Target

    settings = get_ops_settings()
    if args.url:
        headers: dict[str, str] = {}
        if args.token:
            headers["Authorization"] = f"Bearer {args.token}"
        api_key = args.api_key or (
            settings.loadtest_api_key.get_secret_value() if settings.loadtest_api_key else None
        )
        if api_key and not args.token:
            headers["X-API-Key"] = api_key
        target = Target(
            args.url.rstrip("/"), (args.stream_url or args.url).rstrip("/"), lambda _: headers
        )
        records = asyncio.run(Generator(scenario, target, args.seed).run(_progress))
        resources = None
    else:
        local = development.load("loadstack")
        latency = local.ModelLatency(args.ttft_ms, args.tokens_per_second, args.answer_tokens)
        with local.private_stack(latency, scenario.users) as (target, root):
            before, started = local.cpu_by_component(root), time.monotonic()
            generator_before = time.process_time()
            with local.CpuSampler(root) as sampler:
                records = asyncio.run(Generator(scenario, target, args.seed).run(_progress))
            elapsed = time.monotonic() - started
            cores = local.utilisation(before, local.cpu_by_component(root), elapsed)
            cores["load generator"] = round((time.process_time() - generator_before) / elapsed, 3)
        peak = sampler.busiest_window()
        busiest = max(peak or cores, key=lambda name: (peak or cores)[name])
        resources = {
            "model_latency": {
                "ttft_ms": latency.ttft_ms,
                "tokens_per_second": latency.tokens_per_second,
                "answer_tokens": latency.answer_tokens,
            },
            "cpu_cores_used": cores,
            "cpu_cores_busiest_10s": peak,
            "busiest": busiest,
            "machine_cores": os.cpu_count(),
        }
    summary = report.summarize(records, scenario, settings.model_prices, resources)
    summary["finished_at"] = datetime.now(UTC).isoformat()  # preflight wants a recent pass
    report.write_csv(records, out / "requests.csv")
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    report.chart(records, scenario, out / "chart.png")
    return summary
