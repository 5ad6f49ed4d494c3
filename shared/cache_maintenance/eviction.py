"""Memorystore's eviction policy, changed through its control plane (``memorystore_v1``).

Memorystore refuses ``CONFIG SET``; ``maxmemory-policy`` is an engine config of the instance,
changed by ``UpdateInstance`` — a long-running operation this waits on.
"""

from __future__ import annotations

import asyncio
from typing import Any

from shared import errors
from shared.grpc_clients import gapic_client
from shared.settings import Settings

KEY = "maxmemory-policy"


def _client(settings: Settings) -> Any:
    from google.cloud import memorystore_v1  # type: ignore[attr-defined]
    from google.cloud.memorystore_v1.services.memorystore.transports import grpc as transports

    return gapic_client(
        memorystore_v1.MemorystoreClient,
        transports.MemorystoreGrpcTransport,
        settings.memorystore_endpoint,
        aio=False,
    )


def _apply(settings: Settings, wanted: str, dry_run: bool, timeout_s: float) -> dict[str, Any]:
    from google.api_core import exceptions
    from google.cloud import memorystore_v1  # type: ignore[attr-defined]
    from google.protobuf import field_mask_pb2

    name = settings.memorystore_instance
    client = _client(settings)
    try:
        instance = client.get_instance(name=name, timeout=30)
    except exceptions.NotFound:
        raise errors.FailedPrecondition(f"Memorystore instance {name} not found") from None
    configs = dict(instance.engine_configs)
    before = configs.get(KEY, "")
    if before == wanted or dry_run:
        return {
            "instance": name,
            "before": before,
            "after": before,
            "changed": False,
            "would_change": before != wanted,
        }
    configs[KEY] = wanted
    operation = client.update_instance(
        instance=memorystore_v1.Instance(name=name, engine_configs=configs),
        update_mask=field_mask_pb2.FieldMask(paths=["engine_configs"]),
        timeout=30,
    )
    result = operation.result(timeout=timeout_s)
    return {
        "instance": name,
        "before": before,
        "after": dict(result.engine_configs).get(KEY, ""),
        "changed": True,
        "operation": operation.operation.name,
    }


async def ensure(
    settings: Settings, wanted: str, dry_run: bool = False, timeout_s: float = 900.0
) -> dict[str, Any]:
    """Set the instance's eviction policy to ``wanted`` when it differs (no instance: say so)."""
    if not settings.memorystore_instance:
        return {"instance": None, "changed": False, "note": "no Memorystore instance configured"}
    return await asyncio.to_thread(_apply, settings, wanted, dry_run, timeout_s)
