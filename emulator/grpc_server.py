"""One way to serve the control-plane fakes (Memorystore, Cloud Run, Monitoring) over plain gRPC."""

from __future__ import annotations

from concurrent import futures
from typing import Any, NoReturn

import grpc


def serve(fake: Any, host: str, port: int, workers: int = 8) -> grpc.Server:
    """Start ``fake.handlers()`` on ``host:port``; stop it with ``server.stop(grace)``."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
    for handler in fake.handlers():
        server.add_generic_rpc_handlers((handler,))
    if server.add_insecure_port(f"{host}:{port}") == 0:
        raise OSError(f"cannot bind {host}:{port}")
    server.start()
    return server


def unary(method: Any, request_type: Any) -> grpc.RpcMethodHandler:
    """A unary handler taking raw protobuf ``request_type`` messages and answering raw ones."""
    return grpc.unary_unary_rpc_method_handler(
        method,
        request_deserializer=request_type.FromString,
        response_serializer=lambda m: m.SerializeToString(),
    )


def abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    """End the RPC with ``code``; typed as not returning (``context.abort`` raises)."""
    context.abort(code, message)
    raise AssertionError("unreachable: ServicerContext.abort raises")
