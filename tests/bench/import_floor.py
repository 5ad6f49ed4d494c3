"""What a chat function must import before its first answer, library by library.

Each library is imported in a fresh process from the container image's environment, after
functions-framework (which a hello world imports too) and after the libraries listed above it,
with the collector paused as the functions pause it; medians of N processes. Their sum is the
floor of a chat cold start above a hello world's, before any work or I/O — the cold-start target
(≤ 2.0× the hello world's launch → first 200) allows the chat at most one hello world's time.

    python -m tests.bench.import_floor [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess

from emulator.stack import ROOT
from tests.bench.harness import function_python

# (what, the statements that import it), in the order a chat function loads them.
LIBRARIES = [
    ("pydantic, pydantic-settings (contracts, settings)", "import pydantic, pydantic_settings"),
    (
        "google-api-core, grpc, google-auth (with requests, cryptography)",
        "import google.api_core.retry, google.api_core.grpc_helpers_async, google.auth, grpc",
    ),
    ("PyJWT (token checks)", "import jwt"),
    ("httpx (JWKS fetch)", "import httpx, httpcore"),
    ("google-cloud-firestore, async client", "import google.cloud.firestore_v1.async_client"),
    ("redis, asyncio client", "import redis.asyncio"),
    (
        "aiplatform prediction client (narrow import)",
        "from shared.llm import sdk; sdk.load('services.prediction_service.async_client')",
    ),
    ("the product's own modules", "import shared.runtime, shared.chat, shared.web"),
]

CHILD = """
import gc, json, sys, time
import functions_framework.aio
gc.disable()
costs = []
for statement in json.loads(sys.argv[1]):
    started = time.perf_counter()
    exec(statement)
    costs.append(time.perf_counter() - started)
print(json.dumps(costs))
"""


def measure(runs: int) -> list[float]:
    python = function_python()
    statements = json.dumps([statement for _, statement in LIBRARIES])
    samples: list[list[float]] = []
    for _ in range(runs):
        out = subprocess.run(
            [python, "-c", CHILD, statements],
            cwd=ROOT,
            env={"PYTHONPATH": str(ROOT), "NGX_ENVIRONMENT": "test"},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        samples.append(json.loads(out))
    return [statistics.median(column) for column in zip(*samples, strict=True)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    costs = measure(args.runs)
    for (what, _), cost in zip(LIBRARIES, costs, strict=True):
        print(f"{cost * 1000:7.1f} ms  {what}")
    print(f"{sum(costs) * 1000:7.1f} ms  in all, before the first request's own work and I/O")
    print(json.dumps({"benchmark": "import_floor", "ms": [round(c * 1000, 1) for c in costs]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
