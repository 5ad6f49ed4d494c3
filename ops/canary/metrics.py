"""Per-revision request metrics read from Cloud Monitoring (``monitoring_v3``) for the canary gates.

Cloud Run reports ``request_count`` (label ``response_code_class``) and ``request_latencies`` per
revision on the ``cloud_run_revision`` resource; the product's log-based KPIs
(``vertex_ai.client.errors`` and ``.latency``, see infra/modules/monitoring) sit on the same
resource. Each read aligns one window into one point per series and lets Monitoring compute the
percentile. Cloud Monitoring needs windows of at least 60 s.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ops.settings import OpsSettings
from shared import errors
from shared.grpc_clients import gapic_client

REQUEST_COUNT = "run.googleapis.com/request_count"
REQUEST_LATENCIES = "run.googleapis.com/request_latencies"
LLM_ERRORS = "logging.googleapis.com/user/vertex_ai.client.errors"
LLM_LATENCY = "logging.googleapis.com/user/vertex_ai.client.latency"


@dataclass(frozen=True)
class Sample:
    """What one revision did in one window (None: no data)."""

    requests: int
    errors: int  # 5xx answers
    p95_ms: float | None
    llm_calls: int | None = None
    llm_errors: int | None = None
    llm_p95_ms: float | None = None


class Monitoring:
    """Reads of Cloud Monitoring; a local endpoint (tests) is reached over plain gRPC."""

    def __init__(self, settings: OpsSettings) -> None:
        self.settings = settings
        self._client: Any = None

    def client(self) -> Any:
        if self._client is None:
            from google.cloud import monitoring_v3
            from google.cloud.monitoring_v3.services.metric_service.transports import grpc_asyncio

            self._client = gapic_client(
                monitoring_v3.MetricServiceAsyncClient,
                grpc_asyncio.MetricServiceGrpcAsyncIOTransport,
                self.settings.monitoring_endpoint,
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.transport.close()
            self._client = None

    async def sample(
        self,
        service_id: str,
        revision: str,
        window_s: float,
        kpis: bool = False,
        end: datetime | None = None,
    ) -> Sample:
        """Requests, 5xx and p95 latency of ``revision`` over the window ending at ``end``."""
        end = end or datetime.now(UTC)
        read = _Read(self, service_id, revision, end - timedelta(seconds=window_s), end)
        if not kpis:
            by_class, p95 = await asyncio.gather(
                read.by_class(REQUEST_COUNT), read.p95(REQUEST_LATENCIES)
            )
            return Sample(sum(by_class.values()), by_class.get("5xx", 0), p95)
        by_class, p95, llm_errors, llm_calls, llm_p95 = await asyncio.gather(
            read.by_class(REQUEST_COUNT),
            read.p95(REQUEST_LATENCIES),
            read.total(LLM_ERRORS),
            read.calls(LLM_LATENCY),
            read.p95(LLM_LATENCY),
        )
        requests, errors_5xx = sum(by_class.values()), by_class.get("5xx", 0)
        return Sample(requests, errors_5xx, p95, llm_calls, llm_errors, llm_p95)


@dataclass
class _Read:
    """The queries of one sample: one revision, one window."""

    monitoring: Monitoring
    service_id: str
    revision: str
    start: datetime
    end: datetime

    async def _series(self, metric: str, aligner: str, reducer: str, group_by: str) -> list[Any]:
        from google.api_core import exceptions
        from google.cloud import monitoring_v3

        settings = self.monitoring.settings
        aggregation = monitoring_v3.Aggregation(
            alignment_period=self.end - self.start,
            per_series_aligner=getattr(monitoring_v3.Aggregation.Aligner, aligner),
            cross_series_reducer=getattr(monitoring_v3.Aggregation.Reducer, reducer),
            group_by_fields=[group_by],
        )
        request = monitoring_v3.ListTimeSeriesRequest(
            name=f"projects/{settings.project_id}",
            filter=(
                f'metric.type = "{metric}" AND resource.type = "cloud_run_revision" '
                f'AND resource.labels.location = "{settings.region}" '
                f'AND resource.labels.service_name = "{self.service_id}" '
                f'AND resource.labels.revision_name = "{self.revision}"'
            ),
            interval=monitoring_v3.TimeInterval(start_time=self.start, end_time=self.end),
            aggregation=aggregation,
        )
        try:
            pager = await self.monitoring.client().list_time_series(request=request, timeout=30)
            return [series async for series in pager]
        except exceptions.InvalidArgument as exc:
            message = f"Cloud Monitoring refused the {metric} query: {exc.message}"
            raise errors.BadRequest(message) from None
        except exceptions.NotFound as exc:
            raise errors.NotFound(f"Cloud Monitoring: {exc.message}") from None
        except exceptions.PermissionDenied as exc:
            raise errors.PermissionDenied(f"Cloud Monitoring: {exc.message}") from None
        except exceptions.GoogleAPICallError as exc:
            raise errors.Unavailable(f"Cloud Monitoring cannot be read: {exc.message}") from None

    async def by_class(self, metric: str) -> dict[str, int]:
        """Requests per ``response_code_class`` (2xx, 4xx, 5xx…)."""
        counts: dict[str, int] = {}
        group = "metric.label.response_code_class"
        for series in await self._series(metric, "ALIGN_DELTA", "REDUCE_SUM", group):
            code_class = series.metric.labels.get("response_code_class", "")
            counts[code_class] = counts.get(code_class, 0) + sum(
                p.value.int64_value for p in series.points
            )
        return counts

    async def total(self, metric: str) -> int:
        group = "resource.label.revision_name"
        found = await self._series(metric, "ALIGN_DELTA", "REDUCE_SUM", group)
        return sum(p.value.int64_value for series in found for p in series.points)

    async def calls(self, metric: str) -> int:
        """How many values a distribution metric recorded (model calls, for a latency)."""
        group = "resource.label.revision_name"
        found = await self._series(metric, "ALIGN_DELTA", "REDUCE_SUM", group)
        return sum(p.value.distribution_value.count for series in found for p in series.points)

    async def p95(self, metric: str) -> float | None:
        """The 95th percentile of a distribution metric over all the revision's series."""
        group = "resource.label.revision_name"
        found = await self._series(metric, "ALIGN_DELTA", "REDUCE_PERCENTILE_95", group)
        values = [p.value.double_value for series in found for p in series.points]
        return max(values) if values else None
