"""The local stack: emulators and the four functions as separate processes on 127.0.0.1.

``agentctl stack up`` runs `main`: it checks prerequisites, refuses to start twice, starts every
process in its own process group, waits until each answers, prints the URLs and a working curl, and
on Ctrl-C (or SIGTERM) stops every process group it started, so nothing is left behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulator import devtokens
from emulator.settings import StackSettings, load_stack_settings
from shared import registry
from shared.errors import SettingsError
from shared.settings import LOCAL_HOST

ROOT = Path(__file__).resolve().parent.parent
DAY_S = 86400
MAX_RESTARTS, RESTART_WINDOW_S = 5, 60.0  # more restarts than this: give up, say which


class StackError(RuntimeError):
    """A problem the developer can fix; the message says how."""


@dataclass
class Component:
    """One process of the stack and how to tell that it is ready."""

    name: str
    argv: list[str]
    port: int
    ready_path: str | None = None  # HTTP path answering 200 when ready; None: TCP connect
    env: dict[str, str] = field(default_factory=dict)
    url: str = ""
    process: subprocess.Popen[bytes] | None = None


def check_prerequisites() -> None:
    """Fail with one line per missing tool, naming how to install it."""
    missing: list[str] = []
    if shutil.which("redis-server") is None:
        missing.append(
            "redis-server not found: install it with `sudo apt-get install -y redis-server`"
        )
    if shutil.which("java") is None:
        missing.append(
            "java not found (the Firestore emulator needs Java 17+): "
            "`sudo apt-get install -y openjdk-17-jre-headless`"
        )
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        missing.append("gcloud not found: install the Google Cloud CLI (package google-cloud-cli)")
    elif not (
        Path(gcloud).resolve().parent.parent / "platform" / "cloud-firestore-emulator"
    ).is_dir():
        missing.append(
            "Firestore emulator not installed: `sudo apt-get install -y "
            "google-cloud-cli-firestore-emulator` or `gcloud components install "
            "cloud-firestore-emulator`"
        )
    elif not (Path(gcloud).resolve().parent.parent / "platform" / "pubsub-emulator").is_dir():
        missing.append(
            "Pub/Sub emulator not installed: `sudo apt-get install -y "
            "google-cloud-cli-pubsub-emulator` or `gcloud components install pubsub-emulator`"
        )
    if missing:
        raise StackError("missing prerequisite: " + "\n".join(missing))


CORPUS_BUCKET = "ngx-local-corpus"  # the bucket whose uploads the local ingest function takes
DEMO_TOKEN = "local-demo-api-token"  # noqa: S105 - the demo API's credential, local only


def demo_tools_file(settings: StackSettings) -> Path:
    """The stack's tools file: ``emulator/tools.toml`` aimed at this stack's demo API."""
    target = settings.stack_dir / "tools.toml"
    url = f"http://{LOCAL_HOST}:{settings.stack_demo_port}"
    text = (ROOT / "emulator" / "tools.toml").read_text().replace("@DEMO_URL@", url)
    settings.stack_dir.mkdir(parents=True, exist_ok=True)
    if not target.exists() or target.read_text() != text:
        target.write_text(text)
    return target


def function_env(settings: StackSettings) -> dict[str, str]:
    """Environment shared by every function process: where the emulators are."""
    return {
        # The demo tools reach the demo API on loopback: allowed for exactly that port.
        "NGX_TOOLS_FILE": str(demo_tools_file(settings)),
        "NGX_TOOL_PRIVATE_HOSTS": json.dumps([f"{LOCAL_HOST}:{settings.stack_demo_port}"]),
        "NGX_DEMO_API_TOKEN": DEMO_TOKEN,
        "PYTHONPATH": str(ROOT),
        "NGX_AUTH_ISSUER": devtokens.issuer(settings),
        "NGX_AUTH_AUDIENCE": settings.project_id,
        "NGX_AUTH_JWKS_URL": f"{devtokens.issuer(settings)}/jwks.json",
        "NGX_PROJECT_ID": settings.project_id,
        "NGX_ENVIRONMENT": settings.environment,
        "NGX_VERTEX_ENDPOINT": f"{LOCAL_HOST}:{settings.stack_vertex_port}",
        "FIRESTORE_EMULATOR_HOST": f"{LOCAL_HOST}:{settings.stack_firestore_port}",
        "NGX_REDIS_URL": f"redis://{LOCAL_HOST}:{settings.stack_redis_port}/0",
        "NGX_RATE_LIMIT_IP_PER_MINUTE": str(settings.rate_limit_ip_per_minute),
        "NGX_RATE_LIMIT_TIERS": json.dumps(settings.rate_limit_tiers),
        # The playground page calls the functions from its own origin (either loopback name).
        "NGX_CORS_ORIGINS": json.dumps(
            [
                *settings.cors_origins,
                playground_origin(settings),
                f"http://localhost:{settings.stack_playground_port}",
            ]
        ),
        "NGX_STREAM_HEARTBEAT_S": str(settings.stream_heartbeat_s),
        "NGX_CACHE_POLICY_RELOAD_S": str(settings.cache_policy_reload_s),
        # The scheduled functions' callers: Google-style OIDC tokens from the local issuer.
        "NGX_INVOKER_ISSUER": devtokens.issuer(settings),
        "NGX_INVOKER_JWKS_URL": f"{devtokens.issuer(settings)}/jwks.json",
        "NGX_SCHEDULER_SERVICE_ACCOUNT": devtokens.scheduler_account(settings),
        "NGX_OPERATOR_SERVICE_ACCOUNTS": json.dumps([devtokens.operator_account(settings)]),
        "NGX_EVENT_SERVICE_ACCOUNT": devtokens.event_account(settings),
        "NGX_INGEST_BUCKETS": json.dumps([CORPUS_BUCKET]),
        "STORAGE_EMULATOR_HOST": f"http://{LOCAL_HOST}:{settings.stack_storage_port}",
        "NGX_BACKUP_SINK": f"file://{settings.stack_dir / 'backups'}",
        "NGX_CORPUS_INDEX_SINK": f"file://{settings.stack_dir / 'corpus-index'}",
        # The job queue: the Pub/Sub emulator; the worker is pushed to by the stand-in.
        "PUBSUB_EMULATOR_HOST": f"{LOCAL_HOST}:{settings.stack_pubsub_port}",
        "NGX_PUSH_SERVICE_ACCOUNT": devtokens.push_account(settings),
        "NGX_EXPORT_SINK": f"file://{settings.stack_dir / 'exports'}",
        "NGX_INGEST_INLINE_MAX_BYTES": str(settings.ingest_inline_max_bytes),
        "NGX_CORPUS_REFRESH_S": "0.5",  # an ingestion shows within half a second locally
        # Calibrated on the emulator's lexical embeddings (docs/retrieval.md#semantic-cache);
        # the cache itself is off unless NGX_SEMANTIC_CACHE_ENABLED=true.
        "NGX_SEMANTIC_CACHE_MIN_SIMILARITY": "0.85",
    }


def components(settings: StackSettings) -> list[Component]:
    """Every process of the stack, in start order."""
    python = sys.executable
    gcloud_config = settings.stack_dir / "gcloud"
    gcloud_config.mkdir(parents=True, exist_ok=True)
    fs_port = settings.stack_firestore_port
    items = [
        Component(
            "firestore",
            ["gcloud", "emulators", "firestore", "start", f"--host-port={LOCAL_HOST}:{fs_port}"],
            fs_port,
            ready_path="/",
            env={"CLOUDSDK_CONFIG": str(gcloud_config), "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"},
            url=f"http://{LOCAL_HOST}:{fs_port}",
        ),
        Component(
            "pubsub",
            [
                *("gcloud", "beta", "emulators", "pubsub", "start"),
                f"--host-port={LOCAL_HOST}:{settings.stack_pubsub_port}",
                f"--project={settings.project_id}",
            ],
            settings.stack_pubsub_port,
            env={"CLOUDSDK_CONFIG": str(gcloud_config), "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"},
            url=f"http://{LOCAL_HOST}:{settings.stack_pubsub_port} (Pub/Sub: the job queue)",
        ),
        Component(
            "redis",
            [
                "redis-server",
                "--port",
                str(settings.stack_redis_port),
                "--bind",
                LOCAL_HOST,
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            settings.stack_redis_port,
            url=f"redis://{LOCAL_HOST}:{settings.stack_redis_port}",
        ),
        Component(
            "vertex",
            [
                python,
                "-m",
                "emulator.vertex",
                "--host",
                LOCAL_HOST,
                "--port",
                str(settings.stack_vertex_port),
                "--admin-port",
                str(settings.stack_vertex_admin_port),
                "--ttft-ms",
                str(settings.emulator_ttft_ms),
                "--tokens-per-second",
                str(settings.emulator_tokens_per_second),
                "--answer-tokens",
                str(settings.emulator_answer_tokens),
            ],
            settings.stack_vertex_admin_port,
            ready_path="/healthz",
            env={"PYTHONPATH": str(ROOT)},
            url=f"grpc://{LOCAL_HOST}:{settings.stack_vertex_port} "
            f"(admin http://{LOCAL_HOST}:{settings.stack_vertex_admin_port}/calls)",
        ),
        Component(
            "auth",
            [
                python,
                "-m",
                "emulator.auth",
                "--host",
                LOCAL_HOST,
                "--port",
                str(settings.stack_auth_port),
                "--key-dir",
                str(devtokens.key_dir(settings)),
            ],
            settings.stack_auth_port,
            ready_path="/healthz",
            env={"PYTHONPATH": str(ROOT)},
            url=f"{devtokens.issuer(settings)}/jwks.json (tokens: agentctl token --user NAME)",
        ),
        Component(
            "demo-api",
            [
                python,
                "-m",
                "emulator.demo_api",
                "--host",
                LOCAL_HOST,
                "--port",
                str(settings.stack_demo_port),
            ],
            settings.stack_demo_port,
            ready_path="/healthz",
            env={"PYTHONPATH": str(ROOT), "NGX_DEMO_API_TOKEN": DEMO_TOKEN},
            url=f"http://{LOCAL_HOST}:{settings.stack_demo_port} (the demo tools' order API)",
        ),
        Component(
            "storage",
            [
                *(python, "-m", "gcp_storage_emulator", "start", "--in-memory", "--quiet"),
                *(f"--host={LOCAL_HOST}", f"--port={settings.stack_storage_port}"),
                f"--default-bucket={CORPUS_BUCKET}",
            ],
            settings.stack_storage_port,
            url=f"http://{LOCAL_HOST}:{settings.stack_storage_port} (Cloud Storage; uploads to "
            f"gs://{CORPUS_BUCKET} are ingested)",
        ),
    ]
    for spec in registry.FUNCTIONS:
        port = settings.function_port(spec)
        items.append(
            Component(
                spec.service,
                registry.launch_command(spec, LOCAL_HOST, port, python),
                port,
                ready_path=spec.probes.startup,
                env={
                    **function_env(settings),
                    "NGX_INVOKER_AUDIENCE": f"http://{LOCAL_HOST}:{port}",
                },
                url=f"http://{LOCAL_HOST}:{port}",
            )
        )
    items.append(eventarc(settings, python))
    items.append(pubsub_push(settings, python))
    items.append(playground(settings, python))
    return items


def playground_origin(settings: StackSettings) -> str:
    """The playground page's origin (allowed by the functions' CORS and WebSocket checks)."""
    return f"http://{LOCAL_HOST}:{settings.stack_playground_port}"


def playground(settings: StackSettings, python: str) -> Component:
    """The playground page: chat in a browser, and the emulator's calls and the cache's hits."""
    upstreams = {
        "chat_url": f"http://{LOCAL_HOST}:{settings.function_port(registry.CHAT)}",
        "stream_url": f"http://{LOCAL_HOST}:{settings.function_port(registry.STREAM)}",
        "vertex_admin": f"http://{LOCAL_HOST}:{settings.stack_vertex_admin_port}",
        "redis_url": f"redis://{LOCAL_HOST}:{settings.stack_redis_port}/0",
        "key_dir": str(devtokens.key_dir(settings)),
        "issuer": devtokens.issuer(settings),
        "audience": settings.project_id,
    }
    return Component(
        "playground",
        [
            *(python, "-m", "emulator.playground", "--host", LOCAL_HOST),
            *("--port", str(settings.stack_playground_port)),
            *("--upstreams", json.dumps(upstreams)),
        ],
        settings.stack_playground_port,
        ready_path="/healthz",
        env={"PYTHONPATH": str(ROOT)},
        url=f"{playground_origin(settings)} (chat in the browser; built by `make playground`)",
    )


def pubsub_push(settings: StackSettings, python: str) -> Component:
    """The stand-in for the jobs topic's push subscription: messages reach the worker."""
    worker = f"http://{LOCAL_HOST}:{settings.function_port(registry.WORKER)}"
    return Component(
        "pubsub-push",
        [
            *(python, "-m", "emulator.pubsub_push"),
            *("--emulator", f"http://{LOCAL_HOST}:{settings.stack_pubsub_port}"),
            *("--project", settings.project_id, "--topic", "ngx-jobs"),
            *("--announce", "ngx-handoffs"),  # hand-off events, pulled by support tools
            *("--target", worker, "--audience", worker),
            *("--issuer", devtokens.issuer(settings), "--email", devtokens.push_account(settings)),
            *("--key-dir", str(devtokens.key_dir(settings))),
            *("--ready-port", str(settings.stack_push_port)),
        ],
        settings.stack_push_port,
        ready_path="/healthz",
        env={"PYTHONPATH": str(ROOT)},
        url="pushing the jobs topic to the worker (dead letters: ngx-jobs-dead)",
    )


def eventarc(settings: StackSettings, python: str) -> Component:
    """The stand-in for the Eventarc trigger: uploads to the corpus bucket reach ingest."""
    ingest = f"http://{LOCAL_HOST}:{settings.function_port(registry.INGEST)}"
    return Component(
        "eventarc",
        [
            *(python, "-m", "emulator.eventarc", "--bucket", CORPUS_BUCKET),
            *("--storage", f"http://{LOCAL_HOST}:{settings.stack_storage_port}"),
            *("--target", ingest, "--audience", ingest),
            *("--issuer", devtokens.issuer(settings), "--email", devtokens.event_account(settings)),
            *("--key-dir", str(devtokens.key_dir(settings))),
            *("--ready-port", str(settings.stack_eventarc_port)),
            "--versioned",  # as the corpus bucket is in production
        ],
        settings.stack_eventarc_port,
        ready_path="/healthz",
        env={"PYTHONPATH": str(ROOT)},
        url=f"watching gs://{CORPUS_BUCKET} for the ingest function",
    )


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((LOCAL_HOST, port)) == 0


def answers(url: str, timeout_s: float = 0.5) -> bool:
    """Whether a local ``http://`` URL answers 200 now."""
    if not url.startswith("http://"):
        raise ValueError(f"not a local http URL: {url!r}")
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - http only
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def is_ready(component: Component) -> bool:
    if component.ready_path is None:
        return port_in_use(component.port)
    return answers(f"http://{LOCAL_HOST}:{component.port}{component.ready_path}")


def wait_until_healthy(url: str, process: subprocess.Popen[Any], timeout_s: float = 30) -> None:
    """Return once a function process at ``url`` answers its health check; fail if it exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(f"{url} exited with {process.returncode} before answering")
        if answers(f"{url}/healthz", timeout_s=1):
            return
        time.sleep(0.05)
    raise StackError(f"{url} did not answer within {timeout_s:g} s")


@contextlib.contextmanager
def single_instance(state_dir: Path) -> Iterator[None]:
    """Hold a lock for the stack's lifetime; a second `stack up` says one is already running."""
    state_dir.mkdir(parents=True, exist_ok=True)
    lock_path = state_dir / "stack.lock"
    handle = lock_path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "?"
        handle.close()
        raise StackError(
            f"a local stack is already running (pid {owner}); stop it with Ctrl-C in its "
            "terminal, or `agentctl stack down`"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    try:
        yield
    finally:
        handle.close()
        lock_path.unlink(missing_ok=True)


class Stack:
    """Starts, watches and stops the stack's processes."""

    def __init__(self, settings: StackSettings, only: tuple[str, ...] | None = None) -> None:
        self.settings = settings
        self.state_dir = settings.stack_dir
        self.components = [c for c in components(settings) if only is None or c.name in only]

    def url(self, name: str) -> str:
        """Base URL of a started component, by name."""
        return next(c.url for c in self.components if c.name == name)

    def start(self, timeout: float = 60.0) -> None:
        busy = [c for c in self.components if port_in_use(c.port)]
        if busy:
            names = ", ".join(f"{c.port} ({c.name})" for c in busy)
            raise StackError(
                f"ports already in use: {names}; stop what holds them or change the "
                "NGX_STACK_*_PORT settings"
            )
        (self.state_dir / "logs").mkdir(parents=True, exist_ok=True)
        for component in self.components:
            self._launch(component)
        self.wait_ready(timeout)

    def _launch(self, component: Component) -> None:
        log = (self.state_dir / "logs" / f"{component.name}.log").open("ab")
        component.process = subprocess.Popen(
            component.argv,
            env={**os.environ, **component.env},
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stop() reaches its children too
        )

    def restart(self, component: Component, timeout: float = 60.0) -> None:
        """Start a component that stopped again, on the same port, and wait until it answers;
        the others keep running (a developer can kill redis-server to rehearse an outage)."""
        if component.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(component.process.pid, signal.SIGKILL)  # what it left behind
            component.process.wait()
        self._launch(component)
        deadline = time.monotonic() + timeout
        while not is_ready(component):
            assert component.process is not None
            if component.process.poll() is not None or time.monotonic() > deadline:
                raise StackError(f"{component.name} did not come back; see its log")
            time.sleep(0.1)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = list(self.components)
        while pending:
            for component in list(pending):
                assert component.process is not None
                if component.process.poll() is not None:
                    raise StackError(
                        f"{component.name} exited with code {component.process.returncode}; "
                        f"see {self.state_dir / 'logs' / (component.name + '.log')}"
                    )
                if is_ready(component):
                    pending.remove(component)
            if pending and time.monotonic() > deadline:
                names = ", ".join(c.name for c in pending)
                raise StackError(f"not ready after {timeout:.0f}s: {names}")
            time.sleep(0.1)

    def first_exit(self) -> Component | None:
        """A component that has stopped on its own, if any."""
        for component in self.components:
            if component.process is not None and component.process.poll() is not None:
                return component
        return None

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM every process group, then SIGKILL what is left after the grace period."""
        started = [c.process for c in self.components if c.process is not None]
        for process in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.0, deadline - time.monotonic()))
        for process in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(1)


EXAMPLE_MESSAGE = "What is the status of order A-1234?"  # the demo order tool answers it


def curl_example(settings: StackSettings, token: str) -> str:
    port = settings.stack_chat_port
    return (
        f"curl -s -X POST http://{LOCAL_HOST}:{port}/v1/chat "
        f"-H 'Authorization: Bearer {token}' "
        f"-H 'Content-Type: application/json' -d '{{\"message\": \"{EXAMPLE_MESSAGE}\"}}'"
    )


def banner(stack: Stack) -> str:
    width = max(len(c.name) for c in stack.components)
    lines = ["NGX Agent Functions: local stack is up", ""]
    lines += [f"  {c.name.ljust(width)}  {c.url}" for c in stack.components]
    lines += [
        "",
        "Try it (as user alice; the token is valid for 24 h, mint more with "
        "`agentctl token --user NAME`):",
        f"  {curl_example(stack.settings, devtokens.local_token(stack.settings, 'alice', DAY_S))}",
        "A WebSocket session (the same answer, streamed; no message: one per line of stdin):",
        f"  .venv/bin/python -m emulator.session '{EXAMPLE_MESSAGE}'",
        f"Or in a browser, the playground: {playground_origin(stack.settings)}",
        "",
        f"Logs: {stack.state_dir / 'logs'}/    Stop: Ctrl-C",
    ]
    return "\n".join(lines)


def up(settings: StackSettings) -> int:
    """Run the stack in the foreground until Ctrl-C or SIGTERM."""
    check_prerequisites()
    with single_instance(settings.stack_dir):
        stack = Stack(settings)
        stopping = False

        def request_stop(signum: int, _frame: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        try:
            print("Starting the local stack…", flush=True)
            stack.start()
            print(banner(stack), flush=True)
            restarts: list[float] = []
            while not stopping:
                exited = stack.first_exit()
                if exited is not None:
                    assert exited.process is not None
                    now = time.monotonic()
                    restarts = [t for t in restarts if now - t < RESTART_WINDOW_S] + [now]
                    if len(restarts) > MAX_RESTARTS:
                        raise StackError(
                            f"{exited.name} keeps stopping ({MAX_RESTARTS} restarts within "
                            f"{RESTART_WINDOW_S:.0f} s); see its log"
                        )
                    code = exited.process.returncode
                    print(f"{exited.name} stopped (exit {code}); restarting it", flush=True)
                    stack.restart(exited)
                    print(f"{exited.name} is back", flush=True)
                time.sleep(0.2)
            print("\nStopping…", flush=True)
        finally:
            stack.stop()
    print("Stopped.", flush=True)
    return 0


def down(settings: StackSettings) -> int:
    """Ask a running stack (by the pid in its lock file) to stop."""
    lock_path = settings.stack_dir / "stack.lock"
    pid = lock_path.read_text().strip() if lock_path.exists() else ""
    if not pid.isdigit():
        print("no local stack is running")
        return 0
    with contextlib.suppress(ProcessLookupError):
        os.kill(int(pid), signal.SIGTERM)
    print(f"asked the local stack (pid {pid}) to stop")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        settings = load_stack_settings()
        if args[:1] == ["up"]:
            return up(settings)
        if args[:1] == ["down"]:
            return down(settings)
        print("usage: python -m emulator.stack up|down", file=sys.stderr)
        return 2
    except (StackError, SettingsError) as exc:
        print(f"agentctl stack: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
