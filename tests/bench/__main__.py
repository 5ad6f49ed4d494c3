"""``make bench``: run every benchmark in this folder; each prints its ratio against a baseline."""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = [
    "tests.bench.cold_start",
    "tests.bench.import_floor",
    "tests.bench.client_overhead",
    "tests.bench.cache_codec",
    "tests.bench.chat_throughput",
    "tests.bench.stream_capacity",
    "tests.bench.stream_first_delta",
    "tests.bench.restore",
    "tests.bench.loadgen",
    "tests.bench.redaction",
    "tests.bench.agent_overhead",
    "tests.bench.retrieval",
    "tests.bench.sessions",
    "tests.bench.compression",
]


def main() -> int:
    failures = 0
    for module in BENCHMARKS:
        print(f"== {module}", flush=True)
        failures += subprocess.run([sys.executable, "-m", module], check=False).returncode != 0
    print(f"{len(BENCHMARKS) - failures} met target, {failures} missed")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
