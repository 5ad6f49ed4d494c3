"""A gRPC stand-in for the Cloud Run Admin API v2 (``google.cloud.run.v2`` Services, Revisions).

Cloud Run has no emulator. This fake serves what ``agentctl canary`` uses — ``GetService``,
``UpdateService`` (a long-running operation that completes after ``operation_s``, polled through
``google.longrunning.Operations/GetOperation``), ``GetRevision`` and ``ListRevisions`` — with the
SDK's own proto types, so the unmodified ``run_v2`` clients run against it. Like Cloud Run it
honours the etag (ABORTED on a mismatch), ``validate_only`` (checks, changes nothing), checks the
traffic (percents sum to 100, revisions exist, tags unique), creates a revision when the template
changes, and moves ``traffic_statuses`` when the operation completes. It records each applied
traffic change and the routing over time, which the Monitoring fake (`emulator.monitoring`) reads.
Run it with ``python -m emulator.cloudrun --port N --service NAME=REV1,REV2 ...``.
"""

from __future__ import annotations

import argparse
import re
import threading
import time
import uuid
from typing import Any

import grpc

from emulator.grpc_server import abort, serve, unary

SERVICES = "google.cloud.run.v2.Services"
REVISIONS = "google.cloud.run.v2.Revisions"
OPERATIONS = "google.longrunning.Operations"
TAG = re.compile(r"^[a-z]([-a-z0-9]{0,44}[a-z0-9])?$")


def _short(name: str) -> str:
    return name.rsplit("/", 1)[-1]


class CloudRunFake:
    """Services and their revisions by full name; updates apply when their operation completes."""

    def __init__(
        self, project: str = "ngx-local", region: str = "us-central1", operation_s: float = 0.1
    ) -> None:
        from google.cloud.run_v2.types import revision, service, traffic_target

        self.service_types = service
        self.revision_types = revision
        self.traffic_types = traffic_target
        self.parent = f"projects/{project}/locations/{region}"
        self.operation_s = operation_s
        self.lock = threading.RLock()
        self.services: dict[str, Any] = {}
        self.revisions: dict[str, list[str]] = {}  # service name → revision ids, oldest first
        # Operation name → (done at, the operation, the service it returns, still to apply).
        self.operations: dict[str, tuple[float, Any, Any, bool]] = {}
        self.routing: dict[str, list[tuple[float, dict[str, int]]]] = {}  # service → (since, split)
        self.update_requests: list[dict[str, Any]] = []  # every UpdateService seen, for tests
        self.changes: list[dict[str, Any]] = []  # every traffic change applied, for tests
        self.created_revisions: list[str] = []  # revisions made by a template change
        self._before_update: list[Any] = []

    # -- test controls -------------------------------------------------------------------------

    def add_service(
        self,
        service_id: str,
        revisions: list[str],
        serving: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> str:
        """Create a service whose revisions exist; ``serving`` (default: the last) gets 100%,
        and each of ``tags`` (tag → revision) a 0% target, as ``gcloud run deploy --no-traffic
        --tag`` leaves them."""
        t = self.traffic_types
        name = f"{self.parent}/services/{service_id}"
        serving = serving or revisions[-1]
        with self.lock:
            self.revisions[name] = list(revisions)
            svc = self.service_types.Service(
                name=name,
                uid=uuid.uuid4().hex,
                generation=1,
                observed_generation=1,
                template={"containers": [{"image": f"gcr.io/fake/{service_id}:1"}]},
                traffic=[
                    t.TrafficTarget(
                        type_=t.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION,
                        revision=serving,
                        percent=100,
                    ),
                    *(
                        t.TrafficTarget(
                            type_=t.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION,
                            revision=revision,
                            tag=tag,
                        )
                        for tag, revision in (tags or {}).items()
                    ),
                ],
                latest_ready_revision=f"{name}/revisions/{revisions[-1]}",
                latest_created_revision=f"{name}/revisions/{revisions[-1]}",
                uri=f"https://{service_id}-fake.a.run.app",
                etag=uuid.uuid4().hex,
            )
            self._set_statuses(svc, time.time())
            self.services[name] = svc
        return name

    def split(self, name: str) -> dict[str, int]:
        """The traffic actually routed now (``traffic_statuses``), by revision."""
        with self.lock:
            self._settle()
            return dict(self.routing[name][-1][1])

    def tags(self, name: str) -> dict[str, str]:
        """Tag → revision, from ``traffic_statuses``."""
        with self.lock:
            self._settle()
            return {s.tag: s.revision for s in self.services[name].traffic_statuses if s.tag}

    def timeline(self, name: str) -> list[tuple[float, dict[str, int]]]:
        """When each routed split began (wall-clock seconds), oldest first."""
        with self.lock:
            self._settle()
            return list(self.routing.get(name, []))

    def before_next_update(self, change: Any) -> None:
        """Run ``change(service)`` (another writer) just before the next UpdateService."""
        self._before_update.append(change)

    def edit(self, name: str, change: Any) -> None:
        """Change a stored service the way another writer would (new etag)."""
        with self.lock:
            change(self.services[name])
            self.services[name].etag = uuid.uuid4().hex
            self._set_statuses(self.services[name], time.time())

    # -- internals -----------------------------------------------------------------------------

    def _resolve(self, svc: Any, target: Any) -> str:
        latest = (
            self.traffic_types.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST
        )
        return _short(svc.latest_ready_revision) if target.type_ == latest else target.revision

    def _set_statuses(self, svc: Any, at: float) -> None:
        t = self.traffic_types
        statuses: list[Any] = []
        split: dict[str, int] = {}
        for target in svc.traffic:
            revision = self._resolve(svc, target)
            statuses.append(
                t.TrafficTargetStatus(
                    type_=target.type_,
                    revision=target.revision,
                    percent=target.percent,
                    tag=target.tag,
                    uri=f"https://{target.tag}---{svc.uri.removeprefix('https://')}"
                    if target.tag
                    else "",
                )
            )
            split[revision] = split.get(revision, 0) + target.percent
        svc.traffic_statuses = statuses
        self.routing.setdefault(svc.name, []).append((at, {r: p for r, p in split.items() if p}))

    def _settle(self) -> None:
        """Complete the operations that are due; routing changes at their completion time."""
        due = sorted(
            (done_at, name)
            for name, (done_at, _, _, apply) in self.operations.items()
            if apply and done_at <= time.monotonic()
        )
        for done_at, name in due:
            _, operation, result, _ = self.operations[name]
            self.operations[name] = (done_at, operation, result, False)
            current = self.services[result.name]
            current.reconciling = False
            current.observed_generation = current.generation
            wall = time.time() - (time.monotonic() - done_at)
            self._set_statuses(current, wall)
            result.traffic_statuses = current.traffic_statuses
            result.reconciling = False
            self.changes.append(
                {
                    "service": current.name,
                    "traffic": [(t.revision, t.percent, t.tag) for t in current.traffic],
                    "split": self.routing[current.name][-1][1],
                }
            )

    def _check(self, svc: Any, update: Any) -> str | None:
        """What Cloud Run would refuse in this traffic, or None."""
        known = set(self.revisions[svc.name])
        total, tags = 0, set()
        revision_type = (
            self.traffic_types.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION
        )
        for target in update.traffic:
            if not 0 <= target.percent <= 100:
                return f"traffic percent {target.percent} is outside 0..100"
            if target.type_ == revision_type and target.revision not in known:
                return f"Revision named '{target.revision}' does not exist"
            if target.tag:
                if not TAG.match(target.tag):
                    return f"tag '{target.tag}' is not a valid DNS label"
                if target.tag in tags:
                    return f"tag '{target.tag}' is used more than once"
                tags.add(target.tag)
            total += target.percent
        if update.traffic and total != 100:
            return f"traffic percents must sum to 100, got {total}"
        return None

    def _operation(self, service_name: str, result: Any, apply: bool) -> Any:
        from google.longrunning import operations_pb2
        from google.protobuf import any_pb2

        name = f"{self.parent}/operations/{uuid.uuid4()}"
        operation = operations_pb2.Operation(name=name, done=False)
        metadata = any_pb2.Any()
        metadata.Pack(self.service_types.Service.pb(result))
        operation.metadata.CopyFrom(metadata)
        done_at = time.monotonic() + (self.operation_s if apply else 0.0)
        self.operations[name] = (done_at, operation, result, apply)
        if not apply:  # validate_only: the answer is immediate
            operation.done = True
            operation.response.Pack(self.service_types.Service.pb(result))
        return operation

    # -- RPCs ----------------------------------------------------------------------------------

    def get_service(self, request: Any, context: grpc.ServicerContext) -> Any:
        with self.lock:
            self._settle()
            found = self.services.get(request.name)
            if found is None:
                abort(context, grpc.StatusCode.NOT_FOUND, f"Resource '{request.name}' not found.")
            return self.service_types.Service.pb(found)

    def update_service(self, request: Any, context: grpc.ServicerContext) -> Any:
        update = self.service_types.Service.wrap(request.service)
        while self._before_update:
            change = self._before_update.pop(0)
            self.edit(update.name, change)
        with self.lock:
            self._settle()
            self.update_requests.append(
                {
                    "service": update.name,
                    "validate_only": request.validate_only,
                    "etag": update.etag,
                    "traffic": [(t.revision, t.percent, t.tag) for t in update.traffic],
                }
            )
            current = self.services.get(update.name)
            if current is None:
                abort(context, grpc.StatusCode.NOT_FOUND, f"Resource '{update.name}' not found.")
            if update.etag and update.etag != current.etag:
                abort(
                    context,
                    grpc.StatusCode.ABORTED,
                    "The etag does not match the service's current etag: read it again",
                )
            problem = self._check(current, update)
            if problem:
                abort(context, grpc.StatusCode.INVALID_ARGUMENT, problem)
            result = self.service_types.Service(current)
            result.traffic = list(update.traffic)
            new_revision = update.template != current.template
            if request.validate_only:
                return self._operation(update.name, result, apply=False)
            result.template = update.template
            result.generation = current.generation + 1
            result.etag = uuid.uuid4().hex
            result.reconciling = True
            if new_revision:
                number = len(self.revisions[update.name]) + 1
                revision = f"{_short(update.name)}-{number:05d}-new"
                self.revisions[update.name].append(revision)
                self.created_revisions.append(revision)
                result.latest_created_revision = f"{update.name}/revisions/{revision}"
                result.latest_ready_revision = result.latest_created_revision
            self.services[update.name] = result
            return self._operation(update.name, self.service_types.Service(result), apply=True)

    def get_operation(self, request: Any, context: grpc.ServicerContext) -> Any:
        from google.longrunning import operations_pb2

        with self.lock:
            self._settle()
            entry = self.operations.get(request.name)
            if entry is None:
                abort(context, grpc.StatusCode.NOT_FOUND, f"operation {request.name} not found")
            done_at, operation, result, _ = entry
            answer = operations_pb2.Operation()
            answer.CopyFrom(operation)
            if time.monotonic() >= done_at and not answer.done:
                answer.done = True
                answer.response.Pack(self.service_types.Service.pb(result))
            return answer

    def _revision(self, name: str) -> Any:
        service_name, _, revision = name.partition("/revisions/")
        if revision not in self.revisions.get(service_name, []):
            return None
        return self.revision_types.Revision(
            name=name,
            service=_short(service_name),
            generation=1,
            uid=uuid.uuid5(uuid.NAMESPACE_URL, name).hex,
        )

    def get_revision(self, request: Any, context: grpc.ServicerContext) -> Any:
        with self.lock:
            found = self._revision(request.name)
        if found is None:
            abort(context, grpc.StatusCode.NOT_FOUND, f"Resource '{request.name}' not found.")
        return self.revision_types.Revision.pb(found)

    def list_revisions(self, request: Any, context: grpc.ServicerContext) -> Any:
        with self.lock:
            if request.parent not in self.revisions:
                abort(context, grpc.StatusCode.NOT_FOUND, f"Resource '{request.parent}' not found.")
            names = [
                f"{request.parent}/revisions/{r}" for r in reversed(self.revisions[request.parent])
            ]
            found = [self._revision(name) for name in names]
        return self.revision_types.ListRevisionsResponse.pb(
            self.revision_types.ListRevisionsResponse(revisions=found)
        )

    def handlers(self) -> list[grpc.GenericRpcHandler]:
        from google.longrunning import operations_pb2

        s, r = self.service_types, self.revision_types

        return [
            grpc.method_handlers_generic_handler(
                SERVICES,
                {
                    "GetService": unary(self.get_service, s.GetServiceRequest.pb()),
                    "UpdateService": unary(self.update_service, s.UpdateServiceRequest.pb()),
                },
            ),
            grpc.method_handlers_generic_handler(
                REVISIONS,
                {
                    "GetRevision": unary(self.get_revision, r.GetRevisionRequest.pb()),
                    "ListRevisions": unary(self.list_revisions, r.ListRevisionsRequest.pb()),
                },
            ),
            grpc.method_handlers_generic_handler(
                OPERATIONS,
                {"GetOperation": unary(self.get_operation, operations_pb2.GetOperationRequest)},
            ),
        ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options shared with `emulator.monitoring`, which serves this fake too."""
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--project", default="ngx-local")
    parser.add_argument("--region", default="us-central1")
    parser.add_argument(
        "--service",
        action="append",
        required=True,
        metavar="ID=REV1,REV2",
        help="a service and its revisions, oldest first; the last one serves 100%% unless one "
        "is marked with a trailing * (ID=REV1*,REV2: REV2 is a candidate without traffic)",
    )
    parser.add_argument("--operation-s", type=float, default=0.1)


def from_arguments(args: argparse.Namespace) -> CloudRunFake:
    fake = CloudRunFake(args.project, args.region, args.operation_s)
    for spec in args.service:
        service_id, _, listed = spec.partition("=")
        names = [r for r in listed.split(",") if r]
        serving = next((r.rstrip("*") for r in names if r.endswith("*")), None)
        fake.add_service(service_id, [r.rstrip("*") for r in names], serving=serving)
    return fake


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    args = parser.parse_args()
    server = serve(from_arguments(args), args.host, args.port)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
