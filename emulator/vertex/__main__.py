"""``python -m emulator.vertex --port N``: run the Vertex AI emulator."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from emulator.vertex.server import DEFAULT_MODELS, EmulatorState, LatencyModel, serve


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m emulator.vertex", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8790, help="gRPC port")
    parser.add_argument("--admin-port", type=int, default=8791, help="admin HTTP port")
    parser.add_argument("--ttft-ms", type=float, default=150.0, help="time to first token")
    parser.add_argument("--tokens-per-second", type=float, default=200.0)
    parser.add_argument("--chunk-tokens", type=int, default=4, help="tokens per streamed chunk")
    parser.add_argument("--answer-tokens", type=int, default=48, help="answer length in tokens")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    state = EmulatorState(
        latency=LatencyModel(args.ttft_ms, args.tokens_per_second, args.chunk_tokens),
        answer_tokens=args.answer_tokens,
        models=tuple(m.strip() for m in args.models.split(",") if m.strip()),
    )

    async def run() -> None:
        task = asyncio.ensure_future(serve(state, args.host, args.port, args.admin_port))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(run())


if __name__ == "__main__":
    main()
