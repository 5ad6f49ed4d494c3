"""A gRPC stand-in for the Memorystore control plane (``google.cloud.memorystore.v1.Memorystore``).

Memorystore has no emulator. This fake serves what cache maintenance uses — ``GetInstance``,
``UpdateInstance`` (a long-running operation that completes after ``--operation-s``) and
``google.longrunning.Operations/GetOperation`` — with the SDK's own proto types, so the unmodified
``memorystore_v1.MemorystoreClient`` runs against it, polling included. Run it with
``python -m emulator.memorystore --port N --instance projects/p/locations/l/instances/i``.
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid
from typing import Any

import grpc

from emulator.grpc_server import abort, serve

SERVICE = "google.cloud.memorystore.v1.Memorystore"
OPERATIONS = "google.longrunning.Operations"


class MemorystoreFake:
    """Instances by name; updates apply when their operation completes."""

    def __init__(self, instances: list[str], operation_s: float = 0.3) -> None:
        from google.cloud.memorystore_v1.types import memorystore

        self.types = memorystore
        self.operation_s = operation_s
        self.lock = threading.Lock()
        self.instances: dict[str, Any] = {
            name: memorystore.Instance(
                name=name,
                state=memorystore.Instance.State.ACTIVE,
                engine_configs={"maxmemory-policy": "volatile-lru"},
                shard_count=1,
            )
            for name in instances
        }
        self.operations: dict[str, tuple[float, Any, Any]] = {}  # name → (done at, op, result)
        self.updates: list[dict[str, Any]] = []  # what reached the fake, for tests

    def get_instance(self, request: Any, context: grpc.ServicerContext) -> Any:
        with self.lock:
            found = self.instances.get(request.name)
        if found is None:
            abort(context, grpc.StatusCode.NOT_FOUND, f"Resource '{request.name}' was not found")
        return self.types.Instance.pb(found)

    def update_instance(self, request: Any, context: grpc.ServicerContext) -> Any:
        from google.longrunning import operations_pb2
        from google.protobuf import any_pb2

        update = self.types.Instance.wrap(request.instance)
        with self.lock:
            current = self.instances.get(update.name)
            if current is None:
                abort(context, grpc.StatusCode.NOT_FOUND, f"Resource '{update.name}' was not found")
            paths = list(request.update_mask.paths)
            if not paths or any(p != "engine_configs" for p in paths):
                abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"unsupported update mask {paths}")
            result = self.types.Instance(current)
            result.engine_configs.clear()
            result.engine_configs.update(dict(update.engine_configs))
            name = f"{update.name.rsplit('/instances/', 1)[0]}/operations/{uuid.uuid4().hex}"
            operation = operations_pb2.Operation(name=name, done=False)
            self.operations[name] = (time.monotonic() + self.operation_s, operation, result)
            self.updates.append(
                {"name": update.name, "engine_configs": dict(update.engine_configs)}
            )
        metadata = any_pb2.Any()
        metadata.Pack(self.types.OperationMetadata.pb(self.types.OperationMetadata(verb="update")))
        operation.metadata.CopyFrom(metadata)
        return operation

    def get_operation(self, request: Any, context: grpc.ServicerContext) -> Any:
        from google.longrunning import operations_pb2

        with self.lock:
            entry = self.operations.get(request.name)
            if entry is None:
                abort(context, grpc.StatusCode.NOT_FOUND, f"operation {request.name} not found")
            done_at, operation, result = entry
            answer = operations_pb2.Operation()
            answer.CopyFrom(operation)
            if time.monotonic() >= done_at:
                self.instances[result.name] = result
                answer.done = True
                answer.response.Pack(self.types.Instance.pb(result))
        return answer

    def handlers(self) -> list[grpc.GenericRpcHandler]:
        from google.longrunning import operations_pb2

        t = self.types
        service = grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "GetInstance": grpc.unary_unary_rpc_method_handler(
                    self.get_instance,
                    request_deserializer=t.GetInstanceRequest.pb().FromString,
                    response_serializer=lambda m: m.SerializeToString(),
                ),
                "UpdateInstance": grpc.unary_unary_rpc_method_handler(
                    self.update_instance,
                    request_deserializer=t.UpdateInstanceRequest.pb().FromString,
                    response_serializer=lambda m: m.SerializeToString(),
                ),
            },
        )
        operations = grpc.method_handlers_generic_handler(
            OPERATIONS,
            {
                "GetOperation": grpc.unary_unary_rpc_method_handler(
                    self.get_operation,
                    request_deserializer=operations_pb2.GetOperationRequest.FromString,
                    response_serializer=lambda m: m.SerializeToString(),
                )
            },
        )
        return [service, operations]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--instance", action="append", required=True)
    parser.add_argument("--operation-s", type=float, default=0.3)
    args = parser.parse_args()
    server = serve(MemorystoreFake(args.instance, args.operation_s), args.host, args.port)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
