"""A canary rehearsal on real requests: two revisions of chat behind a router that splits traffic
as the Cloud Run fake says, and Monitoring figures taken from those very requests.

`Rehearsal` starts, beside a running local stack:

- the stable and the candidate revision of chat, each its own functions-framework process, the
  candidate with settings of its own (e.g. a model that fails);
- the Cloud Run Admin fake, holding service ``ngx-chat`` with both revisions (stable at 100%),
  and the Monitoring fake answering from observed requests (`emulator.observed`);
- a router (`Router`) that sends each request to a revision drawn by the fake's current traffic
  split, as Cloud Run's front end does, and records its status and latency for Monitoring.

`agentctl canary start` then judges the candidate from what real requests met. Run it by hand with
``python -m emulator.rehearsal --candidate-env NGX_MODEL_TIERS='{"fast": ["gemini-2.5-pro"]}'``
next to ``make dev``; it prints the router's URL and the environment agentctl needs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from emulator import devtokens
from emulator.cloudrun import CloudRunFake
from emulator.grpc_server import serve
from emulator.monitoring import MonitoringFake
from emulator.settings import StackSettings, free_ports, get_stack_settings
from emulator.stack import ROOT, function_env, wait_until_healthy
from shared import registry
from shared.settings import LOCAL_HOST

SERVICE = "ngx-chat"
STABLE, CANDIDATE = "ngx-chat-00001-stable", "ngx-chat-00002-candidate"
WARMUP_CHATS = 10
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class Router:
    """An ASGI app: each request to a revision drawn by the traffic split, then recorded."""

    def __init__(
        self, run: CloudRunFake, monitoring: MonitoringFake, backends: dict[str, str]
    ) -> None:
        self.run = run
        self.monitoring = monitoring
        self.backends = backends  # revision → base URL
        self.name = f"{run.parent}/services/{SERVICE}"
        self.rng = random.Random(2026)
        self._client: httpx.AsyncClient | None = None

    def pick(self) -> str:
        """A revision drawn with the weights of the split Cloud Run routes now."""
        split = {rev: pct for rev, pct in self.run.split(self.name).items() if pct > 0}
        revisions = sorted(split)
        return self.rng.choices(revisions, weights=[split[r] for r in revisions])[0]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=60)
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        revision = self.pick()
        headers = [(k.decode(), v.decode()) for k, v in scope["headers"]]
        url = self.backends[revision] + scope["path"]
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode()
        started = time.perf_counter()
        try:
            answer = await self._client.request(
                scope["method"],
                url,
                content=body,
                headers=[(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP],
            )
            status, content = answer.status_code, answer.content
            out: list[tuple[str, str]] = list(answer.headers.items())
        except httpx.TransportError:  # the revision is down: Cloud Run answers 503
            status, content, out = 503, b'{"error": "revision unavailable"}', []
        self.monitoring.observed.add(
            SERVICE, revision, status, (time.perf_counter() - started) * 1000
        )
        headers_out = [(k.encode(), v.encode()) for k, v in out if k.lower() not in HOP_BY_HOP] + [
            (b"x-served-by", revision.encode())
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers_out})
        await send({"type": "http.response.body", "body": content})


@dataclass
class Rehearsal:
    """The rehearsal's processes and fakes; `agentctl_env` is what `agentctl canary` needs."""

    settings: StackSettings
    candidate_env: dict[str, str] = field(default_factory=dict)
    run: CloudRunFake = field(init=False)
    monitoring: MonitoringFake = field(init=False)
    router_url: str = field(init=False, default="")
    agentctl_env: dict[str, str] = field(init=False, default_factory=dict)
    _stops: list[Any] = field(init=False, default_factory=list)

    @contextlib.contextmanager
    def running(self) -> Iterator[Rehearsal]:
        try:
            self._start()
            yield self
        finally:
            for stop in reversed(self._stops):
                with contextlib.suppress(Exception):
                    stop()

    def _start(self) -> None:
        backends = {
            STABLE: self._revision({}),
            CANDIDATE: self._revision(self.candidate_env),
        }
        self.run = CloudRunFake(self.settings.project_id, self.settings.region, operation_s=0.05)
        self.run.add_service(SERVICE, [STABLE, CANDIDATE], serving=STABLE)
        self.monitoring = MonitoringFake(self.run, self.settings.project_id, min_alignment_s=0)
        run_port, monitoring_port, router_port = free_ports(3)
        for fake, port in ((self.run, run_port), (self.monitoring, monitoring_port)):
            server = serve(fake, LOCAL_HOST, port)
            self._stops.append(lambda server=server: server.stop(0.2))
        self.router_url = self._serve_router(
            Router(self.run, self.monitoring, backends), router_port
        )
        self.agentctl_env = {
            **function_env(self.settings),
            "NGX_RUN_ENDPOINT": f"{LOCAL_HOST}:{run_port}",
            "NGX_MONITORING_ENDPOINT": f"{LOCAL_HOST}:{monitoring_port}",
        }

    def _revision(self, env: dict[str, str]) -> str:
        """One revision of chat: its own process, with the stack's settings and ``env``."""
        port = free_ports(1)[0]
        process = subprocess.Popen(
            registry.launch_command(registry.CHAT, LOCAL_HOST, port),
            env={**os.environ, **function_env(self.settings), **env},
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

        def stop() -> None:
            process.terminate()
            process.wait(10)

        self._stops.append(stop)
        url = f"http://{LOCAL_HOST}:{port}"
        wait_until_healthy(url, process, 60)
        self._warm(url)
        return url

    def _warm(self, url: str) -> None:
        """A few chats before traffic arrives, as Cloud Run's minimum instances are warm: the
        first request of a process loads the SDKs, and a cold revision would be judged by it."""
        token = devtokens.local_token(self.settings, "rehearsal-warmup")
        for i in range(WARMUP_CHATS):
            httpx.post(
                f"{url}/v1/chat",
                json={"message": f"warm up {i}"},
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )

    def _serve_router(self, router: Router, port: int) -> str:
        import uvicorn

        server = uvicorn.Server(
            uvicorn.Config(router, host=LOCAL_HOST, port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()

        def stop() -> None:
            server.should_exit = True
            thread.join(10)

        self._stops.append(stop)
        url = f"http://{LOCAL_HOST}:{port}"
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the rehearsal router did not start")
            time.sleep(0.02)
        return url

    def served(self, revision: str) -> int:
        """Requests the router sent to ``revision`` so far."""
        return self.monitoring.observed.count(SERVICE, revision)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--candidate-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of the candidate revision only (repeatable)",
    )
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.candidate_env)
    with Rehearsal(get_stack_settings(), env).running() as rehearsal:
        print(f"router: {rehearsal.router_url}  (stable {STABLE}, candidate {CANDIDATE})")
        print("agentctl environment:")
        for key in ("NGX_RUN_ENDPOINT", "NGX_MONITORING_ENDPOINT"):
            print(f"  export {key}={rehearsal.agentctl_env[key]}")
        print("Stop: Ctrl-C")
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(asyncio.Event().wait())


if __name__ == "__main__":
    main()
