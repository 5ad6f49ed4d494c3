"""Cloud Run traffic splits through the Admin API v2 (``run_v2``): read, edit ``.traffic``, write.

The service read is sent back with only its traffic edited, carrying its etag: Cloud Run refuses
the write (ABORTED) when someone changed the service in between, and the edit is then redone on
a fresh read. A freshly built ``Service`` is never sent, since it would replace the template and
create a revision. ``validate_only`` checks a split without applying it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from ops.settings import OpsSettings
from shared import errors, registry
from shared.grpc_clients import gapic_client

log = logging.getLogger("ngx.canary")
ATTEMPTS = 5


def service_id(name: str) -> str:
    """The Cloud Run service id of a function (``chat`` → ``ngx-chat``), or ``name`` itself."""
    try:
        return f"ngx-{registry.function(name).service}"
    except KeyError:
        return name


@dataclass(frozen=True)
class Split:
    """Percent and tags per revision as the service's traffic states them (LATEST resolved)."""

    percents: dict[str, int]
    tags: dict[str, str] = field(default_factory=dict)  # revision → its first tag
    etag: str = ""

    def serving_all(self) -> str | None:
        """The revision at 100%, if one is."""
        return next((r for r, p in self.percents.items() if p == 100), None)

    def text(self) -> str:
        parts = [f"{r} {p}%" for r, p in sorted(self.percents.items(), key=lambda i: -i[1])]
        return ", ".join(parts) or "no traffic"


class CloudRun:
    """The Services and Revisions clients; a local endpoint (tests) is reached over plain gRPC."""

    def __init__(self, settings: OpsSettings) -> None:
        self.settings = settings
        self._services: Any = None
        self._revisions: Any = None

    def path(self, service: str) -> str:
        settings = self.settings
        return f"projects/{settings.project_id}/locations/{settings.region}/services/{service}"

    def services(self) -> Any:
        if self._services is None:
            from google.cloud import run_v2
            from google.cloud.run_v2.services.services.transports import grpc_asyncio

            self._services = gapic_client(
                run_v2.ServicesAsyncClient,
                grpc_asyncio.ServicesGrpcAsyncIOTransport,
                self.settings.run_endpoint,
            )
        return self._services

    def revisions(self) -> Any:
        if self._revisions is None:
            from google.cloud import run_v2
            from google.cloud.run_v2.services.revisions.transports import grpc_asyncio

            self._revisions = gapic_client(
                run_v2.RevisionsAsyncClient,
                grpc_asyncio.RevisionsGrpcAsyncIOTransport,
                self.settings.run_endpoint,
            )
        return self._revisions

    async def close(self) -> None:
        for client in (self._services, self._revisions):
            if client is not None:
                await client.transport.close()
        self._services = self._revisions = None

    async def read(self, service: str) -> Split:
        """The service's current split; `errors.NotFound` when there is no such service."""
        return split_of(await self._get(service))

    async def require_revision(self, service: str, revision: str) -> None:
        """`errors.NotFound` unless ``revision`` is a revision of ``service``."""
        from google.api_core import exceptions

        try:
            await self.revisions().get_revision(
                name=f"{self.path(service)}/revisions/{revision}", timeout=30
            )
        except exceptions.NotFound:
            raise errors.NotFound(f"revision {revision} not found in service {service}") from None
        except exceptions.GoogleAPICallError as exc:
            raise _mapped(exc, service) from None

    async def apply(
        self,
        service: str,
        percents: dict[str, int],
        candidate: str,
        tag: str,
        validate_only: bool = False,
    ) -> tuple[Split, bool]:
        """Give each revision its percent (the candidate its tag); the split after, and whether it
        changed. Unchanged traffic is not written."""
        from google.api_core import exceptions
        from google.cloud import run_v2

        for _ in range(ATTEMPTS):
            current = await self._get(service)
            wanted = edited(current, percents, candidate, tag)
            if _rows(wanted) == _rows(current.traffic) and not validate_only:
                return split_of(current), False
            current.traffic = wanted
            request = run_v2.UpdateServiceRequest(service=current, validate_only=validate_only)
            try:
                operation = await self.services().update_service(request=request, timeout=30)
                result = await _wait(operation)
            except exceptions.Aborted:
                continue  # the service changed since it was read: edit a fresh copy
            except exceptions.GoogleAPICallError as exc:
                raise _mapped(exc, service) from None
            return split_of(result), not validate_only
        raise errors.Conflict(f"service {service} kept changing while its traffic was edited")

    async def _get(self, service: str) -> Any:
        from google.api_core import exceptions

        try:
            return await self.services().get_service(name=self.path(service), timeout=30)
        except exceptions.GoogleAPICallError as exc:
            raise _mapped(exc, service) from None


def edited(current: Any, percents: dict[str, int], candidate: str, tag: str) -> list[Any]:
    """The service's traffic with ``percents`` set; other tagged targets stay, at 0%.

    The candidate gets ``tag`` (moved from any other target); other revisions keep their tags.
    """
    from google.cloud import run_v2

    by_revision = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION
    latest = _short(current.latest_ready_revision)
    kept_tags: dict[str, str] = {}
    others = []
    for target in current.traffic:
        revision = _resolved(target, latest)
        if not target.tag or target.tag == tag:
            continue
        if revision in percents and revision not in kept_tags and revision != candidate:
            kept_tags[revision] = target.tag
        else:
            kept = run_v2.TrafficTarget(target)
            kept.percent = 0
            others.append(kept)
    wanted = [
        run_v2.TrafficTarget(
            type_=by_revision,
            revision=revision,
            percent=percent,
            tag=tag if revision == candidate else kept_tags.get(revision, ""),
        )
        for revision, percent in percents.items()
        if percent or revision == candidate or revision in kept_tags
    ]
    return wanted + others


def split_of(service: Any) -> Split:
    latest = _short(service.latest_ready_revision)
    percents: dict[str, int] = {}
    tags: dict[str, str] = {}
    for target in service.traffic:
        revision = _resolved(target, latest)
        percents[revision] = percents.get(revision, 0) + target.percent
        if target.tag:
            tags.setdefault(revision, target.tag)
    return Split(percents, tags, service.etag)


def _resolved(target: Any, latest: str) -> str:
    from google.cloud import run_v2

    kind = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST
    return latest if target.type_ == kind else str(target.revision)


def _rows(traffic: Any) -> list[tuple[int, str, int, str]]:
    return sorted((int(t.type_), t.revision, t.percent, t.tag) for t in traffic)


def _short(name: str) -> str:
    return name.rsplit("/", 1)[-1]


async def _wait(operation: Any, timeout_s: float = 600.0) -> Any:
    """The operation's result, polled quickly at first (the SDK's own polling starts at 1 s)."""
    delay, waited = 0.05, 0.0
    while not await operation.done():
        if waited > timeout_s:
            raise errors.Unavailable(f"Cloud Run did not finish {operation.operation.name}")
        await asyncio.sleep(delay)
        waited += delay
        delay = min(delay * 2, 2.0)
    return await operation.result()


def _mapped(exc: Any, service: str) -> errors.AppError:
    """One of our errors for a Cloud Run API error, with its message."""
    from google.api_core import exceptions

    if isinstance(exc, exceptions.NotFound):
        return errors.NotFound(f"service {service} not found: {exc.message}")
    if isinstance(exc, exceptions.InvalidArgument):
        return errors.BadRequest(f"Cloud Run refused the traffic of {service}: {exc.message}")
    if isinstance(exc, exceptions.PermissionDenied):
        return errors.PermissionDenied(f"Cloud Run: {exc.message}")
    if isinstance(exc, exceptions.FailedPrecondition):
        return errors.FailedPrecondition(f"Cloud Run: {exc.message}")
    return errors.Unavailable(f"Cloud Run cannot be reached: {exc.message}")
