"""Cold start: launch → first successful chat, against launch → first 200 of a bare aio hello world.

Both start as the image starts them (chat through ``python -m functions``, the registry's launcher;
the hello world through ``python -m functions_framework --asgi``; one uvicorn worker each, as on
Cloud Run) in the same run, alternating, by the interpreter of the container image's environment
(a venv of ``requirements.txt`` alone, bytecode compiled: dev tools installed next to the SDKs
change what their optional imports load). The emulator answers with zero latency so the figure is
start-up cost only. Prints the medians of N runs and their ratio; the target is ≤ 2.0×.

With ``--baseline REV`` the chat and stream functions of that revision (a temporary worktree) are
launched too, alternating with this checkout's in the same run, and the ratios of this checkout's
medians to the baseline's are printed: a change must not make the cold start worse.

    python -m tests.bench.cold_start [--runs 5] [--baseline REV]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from emulator import devtokens
from emulator.settings import StackSettings, free_ports
from emulator.stack import ROOT, Stack
from shared.settings import LOCAL_HOST
from tests.bench.harness import baseline_worktree, command, function_env_of
from tests.conftest import stack_settings

HELLO = Path(__file__).resolve().parent / "hello" / "main.py"
TARGET_RATIO = 2.0


def launch_until_ok(
    target: str, source: Path, env: dict[str, str], request: dict[str, Any], root: Path = ROOT
) -> float:
    """Seconds from process launch to the first 200 answer to ``request``."""
    port = free_ports(1)[0]
    argv = command(target, source, port)
    started = time.perf_counter()
    process = subprocess.Popen(
        argv,
        env={**env, "PYTHONPATH": str(root)},
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        with httpx.Client(base_url=f"http://{LOCAL_HOST}:{port}", timeout=30) as client:
            while time.perf_counter() - started < 60:
                try:
                    response = client.request(**request)  # type: ignore[arg-type]
                except httpx.TransportError:
                    time.sleep(0.005)
                    continue
                if response.status_code == 200:
                    return time.perf_counter() - started
                raise RuntimeError(f"{target}: {response.status_code} {response.text[:200]}")
        raise TimeoutError(f"{target} did not answer within 60 s")
    finally:
        process.terminate()
        process.wait(10)


def measure(settings: StackSettings, runs: int) -> dict[str, object]:
    env = function_env_of(settings)
    token = devtokens.local_token(settings, "bench")
    chat_request: dict[str, Any] = {
        "method": "POST",
        "url": "/v1/chat",
        "json": {"message": "cold start"},
        "headers": {"Authorization": f"Bearer {token}"},
    }
    hello_request: dict[str, Any] = {"method": "GET", "url": "/"}
    chat_main = ROOT / "functions" / "chat" / "main.py"
    # One warm-up of each fills the OS page cache, as on a machine that has run the image before.
    launch_until_ok("hello", HELLO, env, hello_request)
    launch_until_ok("chat", chat_main, env, chat_request)
    hello, chat = [], []
    for _ in range(runs):
        hello.append(launch_until_ok("hello", HELLO, env, hello_request))
        chat.append(launch_until_ok("chat", chat_main, env, chat_request))
    ratio = statistics.median(chat) / statistics.median(hello)
    return {
        "benchmark": "cold_start",
        "runs": runs,
        "hello_median_s": round(statistics.median(hello), 3),
        "chat_median_s": round(statistics.median(chat), 3),
        "hello_s": [round(x, 3) for x in hello],
        "chat_s": [round(x, 3) for x in chat],
        "ratio": round(ratio, 2),
        "target": TARGET_RATIO,
        "pass": ratio <= TARGET_RATIO,
    }


def against_baseline(settings: StackSettings, runs: int, baseline: Path) -> dict[str, object]:
    """Chat and stream launches of this checkout and of ``baseline``, alternating."""
    env = function_env_of(settings)
    token = devtokens.local_token(settings, "bench")
    headers = {"Authorization": f"Bearer {token}"}
    requests: dict[str, dict[str, Any]] = {
        "chat": {
            "method": "POST",
            "url": "/v1/chat",
            "json": {"message": "cold"},
            "headers": headers,
        },
        "stream": {
            "method": "POST",
            "url": "/v1/chat:stream",
            "json": {"message": "cold"},
            "headers": headers,
        },
    }
    found: dict[str, list[float]] = {}
    for round_ in range(runs + 1):  # the first round only warms the page cache
        for name, request in requests.items():
            for label, root in (("current", ROOT), ("baseline", baseline)):
                main_py = root / "functions" / name / "main.py"
                seconds = launch_until_ok(name, main_py, env, request, root)
                if round_:
                    found.setdefault(f"{name}_{label}", []).append(seconds)
    result: dict[str, object] = {"benchmark": "cold_start_vs_baseline", "runs": runs}
    for name in requests:
        now = statistics.median(found[f"{name}_current"])
        before = statistics.median(found[f"{name}_baseline"])
        result[f"{name}_current_median_s"] = round(now, 3)
        result[f"{name}_baseline_median_s"] = round(before, 3)
        result[f"{name}_ratio"] = round(now / before, 3)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--baseline", help="a revision to compare chat and stream with")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as state:
        settings = stack_settings(
            emulator_ttft_ms=0.0, emulator_tokens_per_second=0.0, stack_dir=Path(state)
        )
        backing = Stack(settings, only=("firestore", "redis", "vertex", "auth"))
        try:
            backing.start(timeout=90)
            result = measure(settings, args.runs)
            if args.baseline:
                with baseline_worktree(args.baseline, Path(state)) as worktree:
                    compared = against_baseline(settings, args.runs, worktree)
                print(json.dumps(compared))
        finally:
            backing.stop()
    print(
        f"cold start: chat {result['chat_median_s']} s vs hello world {result['hello_median_s']} s"
        f" → {result['ratio']}× (target ≤ {TARGET_RATIO}×)"
    )
    print(json.dumps(result))
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
