"""Local stack settings: operations settings plus ports, state folder and the emulator's latency.

Only the local stack, its emulators and tests read these (``NGX_STACK_*``, ``NGX_EMULATOR_*``).
Each deployed function's port defaults to the one in `shared.registry`.
"""

from __future__ import annotations

import socket
from functools import lru_cache
from pathlib import Path

from pydantic import Field

from ops.settings import OpsSettings
from shared import registry
from shared.settings import LOCAL_HOST, parse_settings

ROOT = Path(__file__).resolve().parent.parent


def _port(default: int) -> int:
    return Field(default, ge=1, le=65535)  # type: ignore[no-any-return]


class StackSettings(OpsSettings):
    """Settings of `agentctl stack up`, the emulators and the test stack."""

    stack_firestore_port: int = _port(8686)
    stack_redis_port: int = _port(6390)
    stack_vertex_port: int = _port(8790)
    stack_vertex_admin_port: int = _port(8791)
    stack_auth_port: int = _port(8792)
    stack_demo_port: int = _port(8793)
    stack_storage_port: int = _port(8794)
    stack_eventarc_port: int = _port(8795)
    stack_pubsub_port: int = _port(8796)
    stack_push_port: int = _port(8797)  # the push stand-in's readiness
    stack_playground_port: int = _port(8788)  # the playground page (dev only)
    stack_chat_port: int = _port(registry.CHAT.local_port)
    stack_stream_port: int = _port(registry.STREAM.local_port)
    stack_cache_maintenance_port: int = _port(registry.CACHE_MAINTENANCE.local_port)
    stack_backup_port: int = _port(registry.BACKUP.local_port)
    stack_ingest_port: int = _port(registry.INGEST.local_port)
    stack_worker_port: int = _port(registry.WORKER.local_port)
    stack_reports_port: int = _port(registry.REPORTS.local_port)
    stack_dir: Path = Field(
        ROOT / ".stack", description="state of the local stack: logs, the development signing key"
    )

    # The Vertex emulator's behaviour in the local stack.
    emulator_ttft_ms: float = Field(150.0, ge=0)
    emulator_tokens_per_second: float = Field(200.0, ge=0)
    emulator_answer_tokens: int = Field(48, ge=1, le=8192)

    def function_port(self, spec: registry.FunctionSpec) -> int:
        """The local port of a deployed function (``NGX_STACK_<NAME>_PORT``)."""
        port: int = getattr(self, f"stack_{spec.name}_port")
        return port


# Every port setting, for tools that move a whole stack to free ports (tests, load runs).
PORT_SETTINGS = tuple(name for name in StackSettings.model_fields if name.endswith("_port"))


def load_stack_settings(**overrides: object) -> StackSettings:
    """Local stack settings with ``overrides`` (tests, tools)."""
    return parse_settings(StackSettings, overrides)


@lru_cache(maxsize=1)
def get_stack_settings() -> StackSettings:
    """The process-wide local stack settings, validated on first use."""
    return load_stack_settings()


def free_ports(count: int) -> list[int]:
    """Distinct loopback ports that were free a moment ago."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((LOCAL_HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def on_free_ports(**overrides: object) -> StackSettings:
    """Settings for a private stack (tests, load runs): every port a free one."""
    ports = dict(zip(PORT_SETTINGS, free_ports(len(PORT_SETTINGS)), strict=True))
    return load_stack_settings(**{**ports, **overrides})
