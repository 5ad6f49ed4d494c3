"""Session fixtures: the real local stack (Firestore emulator, redis-server, the Vertex emulator and
the four functions as functions-framework processes) on free loopback ports, reset between tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from emulator import devtokens
from emulator.settings import StackSettings, free_ports, on_free_ports
from emulator.stack import (
    ROOT,
    Stack,
    StackError,
    check_prerequisites,
    function_env,
    wait_until_healthy,
)
from ops.settings import OpsSettings, load_ops_settings
from shared import registry
from shared.settings import LOCAL_HOST

# A quick but visible latency model: 50 ms to first token, 4 tokens every 10 ms.
TEST_EMULATOR = {"emulator_ttft_ms": 50.0, "emulator_tokens_per_second": 400.0}
# Every test request comes from 127.0.0.1 and most from one user: lift the per-IP and the standard
# limits so that only the "free" tier (20 a minute) bites, where a test asks for it.
TEST_LIMITS = {
    "rate_limit_ip_per_minute": 1_000_000,
    "rate_limit_tiers": {"free": 20, "standard": 1_000_000, "premium": 1_000_000},
    "stream_heartbeat_s": 0.2,
    "cache_policy_reload_s": 1.0,
    # Two cores run the emulators, Redis, several functions and hundreds of test clients: Redis
    # answers within 0.1 s in production, not always here, and the cache would be skipped.
    "redis_timeout_s": 0.5,
    # Uploads above 20 kB go through the worker as jobs (production: above 2 MiB).
    "ingest_inline_max_bytes": 20_000,
}


def stack_settings(**extra: Any) -> StackSettings:
    """Settings for a stack on fresh free ports."""
    return on_free_ports(**{"environment": "test", **TEST_EMULATOR, **TEST_LIMITS, **extra})


@dataclass
class LocalStack:
    """Where the running test stack answers."""

    settings: StackSettings
    stack: Stack

    def url(self, name: str) -> str:
        return self.stack.url(name)

    @property
    def firestore_host(self) -> str:
        return f"{LOCAL_HOST}:{self.settings.stack_firestore_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://{LOCAL_HOST}:{self.settings.stack_redis_port}/0"

    @property
    def vertex_endpoint(self) -> str:
        return f"{LOCAL_HOST}:{self.settings.stack_vertex_port}"

    @property
    def vertex_admin(self) -> str:
        return f"http://{LOCAL_HOST}:{self.settings.stack_vertex_admin_port}"

    def reset(self) -> None:
        """Empty Firestore and Redis and zero the emulator's call ledger."""
        project = self.settings.project_id
        httpx.delete(
            f"http://{self.firestore_host}/emulator/v1/projects/{project}"
            "/databases/(default)/documents",
            timeout=10,
        ).raise_for_status()
        import redis

        redis.Redis.from_url(self.redis_url).flushdb()
        shutil.rmtree(self.settings.stack_dir / "corpus-index", ignore_errors=True)
        httpx.post(f"{self.vertex_admin}/reset", timeout=5).raise_for_status()
        httpx.post(f"{self.demo_api}/reset", timeout=5).raise_for_status()

    @property
    def demo_api(self) -> str:
        return f"http://{LOCAL_HOST}:{self.settings.stack_demo_port}"

    def demo_requests(self) -> list[dict[str, Any]]:
        """What the demo order API received since the last reset."""
        found: list[dict[str, Any]] = httpx.get(f"{self.demo_api}/requests", timeout=5).json()[
            "requests"
        ]
        return found

    def model_requests(self) -> list[dict[str, Any]]:
        """The emulator's recent calls: tools declared to the model and the functions it called."""
        found: list[dict[str, Any]] = httpx.get(f"{self.vertex_admin}/requests", timeout=5).json()[
            "requests"
        ]
        return found

    def fault(self, model: str = "*", **fault: Any) -> None:
        """Inject a fault into the Vertex emulator (cleared by `reset`)."""
        response = httpx.post(
            f"{self.vertex_admin}/faults", json={"model": model, **fault}, timeout=5
        )
        response.raise_for_status()

    def clear_faults(self) -> None:
        httpx.delete(f"{self.vertex_admin}/faults", timeout=5).raise_for_status()

    def client_settings(self, **overrides: Any) -> OpsSettings:
        """Settings for an in-process client (runtime or operations) talking to this stack."""
        return load_ops_settings(
            **{
                "environment": "test",
                "vertex_endpoint": self.vertex_endpoint,
                "firestore_emulator_host": self.firestore_host,
                "redis_url": self.redis_url,
                **overrides,
            }
        )

    def token(self, user: str = "alice", **claims: Any) -> str:
        """A valid ID token for ``user`` on this stack (claims may override iss, aud, exp…)."""
        return devtokens.local_token(self.settings, user, **claims)

    def auth(self, user: str = "alice") -> dict[str, str]:
        """Request headers carrying a valid ID token for ``user``."""
        return {"Authorization": f"Bearer {self.token(user)}"}

    def agentctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``agentctl ARGS`` run as an operator would, against this stack."""
        env = {
            **os.environ,
            **function_env(self.settings),
            "NGX_STACK_DIR": str(self.settings.stack_dir),
        }
        return subprocess.run(
            [sys.executable, "-m", "ops.cli", *args],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def model_calls(self) -> dict[str, Any]:
        """The emulator's ledger: calls per model and method."""
        report: dict[str, Any] = httpx.get(f"{self.vertex_admin}/calls", timeout=5).json()
        return report


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The whole local stack, started once per test session."""
    check_prerequisites()
    settings = stack_settings(stack_dir=tmp_path_factory.mktemp("stack"))
    stack = Stack(settings)
    try:
        stack.start(timeout=90)
        running = LocalStack(settings, stack)
        # In-process clients in tests (Firestore, the Vertex client) talk to the same emulators.
        os.environ["FIRESTORE_EMULATOR_HOST"] = running.firestore_host
        yield running
    finally:
        stack.stop()


@pytest.fixture
def stack(local_stack: LocalStack) -> LocalStack:
    """The running stack with empty state."""
    local_stack.reset()
    return local_stack


@pytest.fixture
async def firestore_db(stack: LocalStack) -> AsyncIterator[Any]:
    """An async Firestore client on the test emulator."""
    from google.cloud.firestore_v1.async_client import AsyncClient

    client = AsyncClient(project=stack.settings.project_id)
    yield client
    client.close()  # type: ignore[no-untyped-call]


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout_s: float = 10) -> None:
    """Return once ``process`` accepts connections on ``port``; fail if it exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening")
        with socket.socket() as sock:
            if sock.connect_ex((LOCAL_HOST, port)) == 0:
                return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listens on {port} after {timeout_s} s")


def start_function(
    settings: StackSettings, name: str, capture: bool = False, **env: str
) -> tuple[str, subprocess.Popen[str]]:
    """Another process of a registered function on the stack's backing services, answering;
    ``capture`` keeps its output (text) for the test to read."""
    port = free_ports(1)[0]
    audience = {"NGX_INVOKER_AUDIENCE": f"http://{LOCAL_HOST}:{port}"}  # as the stack sets it
    process = subprocess.Popen(
        registry.launch_command(registry.function(name), LOCAL_HOST, port),
        env={**os.environ, **function_env(settings), **audience, **env},
        cwd=repo_root(),
        stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    url = f"http://{LOCAL_HOST}:{port}"
    try:
        wait_until_healthy(url, process)
    except StackError:
        process.kill()
        raise
    return url, process


class RedisServer:
    """A private redis-server that a test may stop and start again on the same port."""

    def __init__(self, directory: Path) -> None:
        self.port = free_ports(1)[0]
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{LOCAL_HOST}:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                LOCAL_HOST,
                "--save",
                "",
                "--appendonly",
                "no",
                "--enable-debug-command",
                "yes",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.process)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


GCS_BUCKETS = ("ngx-backups", "ngx-loadtests")


@pytest.fixture
def gcs_emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A Cloud Storage emulator (``gcp-storage-emulator``) with the product's buckets; the
    storage client (and every child process) reaches it through ``STORAGE_EMULATOR_HOST``."""
    port = free_ports(1)[0]
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "gcp_storage_emulator", "start"),
            *("--host=127.0.0.1", f"--port={port}", "--in-memory"),
            f"--default-bucket={GCS_BUCKETS[0]}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_port(port, process)
        for bucket in GCS_BUCKETS[1:]:
            httpx.post(f"{url}/storage/v1/b", json={"name": bucket}, timeout=10)
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", url)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
