"""The reports function's work: compute a day's business metrics, keep them, write them to Cloud
Monitoring as custom metrics (gauges at the day's end) for the dashboard."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared import business, errors
from shared.grpc_clients import gapic_client
from shared.settings import Settings

log = logging.getLogger("ngx.reports")
OLDEST_DAYS = 400  # Cloud Monitoring keeps custom metrics about this long


class ReportCall(BaseModel):
    """Body of a call to the reports function."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["business_metrics"]
    day: date | None = Field(None, description="default: yesterday (UTC)")

    @field_validator("day")
    @classmethod
    def _finished_and_recent(cls, value: date | None) -> date | None:
        today = datetime.now(UTC).date()
        if value is not None and not today - timedelta(days=OLDEST_DAYS) <= value < today:
            raise ValueError(f"must be a finished day within the last {OLDEST_DAYS} days")
        return value


def writes_metrics(settings: Settings) -> bool:
    """Cloud Monitoring is written in production and wherever a local endpoint stands in."""
    return settings.monitoring_endpoint is not None or settings.environment not in ("local", "test")


async def write_metrics(settings: Settings, metrics: business.DayMetrics) -> int:
    """CreateTimeSeries for the day's gauges; how many points were written."""
    from google.cloud import monitoring_v3
    from google.cloud.monitoring_v3.services.metric_service.transports import grpc_asyncio

    client = gapic_client(
        monitoring_v3.MetricServiceAsyncClient,
        grpc_asyncio.MetricServiceGrpcAsyncIOTransport,
        settings.monitoring_endpoint,
    )
    series = []
    for point in business.time_series(settings.project_id, metrics):
        item = monitoring_v3.TimeSeries()
        item.metric.type = point["metric"]
        item.resource.type = point["resource"]["type"]
        item.resource.labels.update(point["resource"]["labels"])
        item.points.append(
            monitoring_v3.Point(
                interval=monitoring_v3.TimeInterval(end_time=point["end"]),
                value=monitoring_v3.TypedValue(double_value=point["value"]),
            )
        )
        series.append(item)
    try:
        await client.create_time_series(name=f"projects/{settings.project_id}", time_series=series)
    finally:
        await client.transport.close()
    return len(series)


async def run(settings: Settings, db: Any, call: ReportCall) -> dict[str, Any]:
    """Compute, keep and write one day; the report of what was done."""
    day = call.day or datetime.now(UTC).date() - timedelta(days=1)
    metrics = await business.compute(db, day)
    await business.record(db, metrics)
    written: int | str = "skipped: no Cloud Monitoring in this environment"
    if writes_metrics(settings):
        try:
            written = await write_metrics(settings, metrics)
        except Exception as exc:
            log.exception("business metrics not written", extra={"day": metrics.day})
            raise errors.Unavailable(
                "Cloud Monitoring refused the metrics", retry_after=60
            ) from exc
    log.info("business day", extra={"business": metrics.as_dict()})
    return {"action": call.action, "metrics": metrics.as_dict(), "points_written": written}
