"""A gRPC stand-in for Cloud Monitoring reads (``google.monitoring.v3.MetricService``).

Cloud Monitoring has no emulator. This fake answers ``ListTimeSeries`` for Cloud Run's per-revision
metrics (``run.googleapis.com/request_count`` by ``response_code_class``,
``run.googleapis.com/request_latencies``) and the product's log-based KPIs
(``logging.googleapis.com/user/vertex_ai.client.errors`` and ``.latency``) on the
``cloud_run_revision`` resource, with the SDK's own proto types, so the unmodified ``monitoring_v3``
client runs against it. It parses the filter (``field = "value"`` terms joined by ``AND``) and
answers INVALID_ARGUMENT for anything else, honours the interval, the alignment period (at least
``min_alignment_s``; Cloud Monitoring's floor is 60 s), the per-series aligner (``ALIGN_DELTA``,
``ALIGN_SUM``, ``ALIGN_RATE``, ``ALIGN_PERCENTILE_*``), the cross-series reducer and its
``group_by_fields``.

The data come from real requests when there are any: the canary rehearsal's router
(`emulator.rehearsal`) records each request it routes (`emulator.observed`), and a service with
observations is answered from them alone. Otherwise they come from a traffic model the caller
sets (deterministic, so the canary's gate tests can dial in an exact error ratio or p95): a
request rate per service, and an error ratio and a p95 latency per revision. Requests are split
by the routing the Cloud Run fake (`emulator.cloudrun`) actually applied, over time, so a
revision at 0% gets no requests and a quiet service yields few. Everything is arithmetic on the
model: the same times give the same answer. Run it with ``python -m emulator.monitoring --port N
--run-port M --service ID=REV,... --rate ID=REQ_PER_S --revision REV:error_ratio=0.08,p95_ms=300``:
it serves both fakes.
"""

from __future__ import annotations

import argparse
import math
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import grpc

from emulator.cloudrun import CloudRunFake
from emulator.cloudrun import add_arguments as add_run_arguments
from emulator.cloudrun import from_arguments as run_from_arguments
from emulator.grpc_server import abort, serve
from emulator.observed import Observations, code_class

SERVICE = "google.monitoring.v3.MetricService"
RESOURCE = "cloud_run_revision"
REQUEST_COUNT = "run.googleapis.com/request_count"
REQUEST_LATENCIES = "run.googleapis.com/request_latencies"
LLM_ERRORS = "logging.googleapis.com/user/vertex_ai.client.errors"
LLM_LATENCY = "logging.googleapis.com/user/vertex_ai.client.latency"
METRIC_LABELS = {
    REQUEST_COUNT: {"response_code_class", "response_code", "route"},
    REQUEST_LATENCIES: {"response_code_class", "response_code", "route"},
    LLM_ERRORS: set(),
    LLM_LATENCY: set(),
}
DISTRIBUTIONS = {REQUEST_LATENCIES, LLM_LATENCY}
RESOURCE_LABELS = {"project_id", "location", "service_name", "revision_name", "configuration_name"}
# Latency histograms: exponential buckets, 25% wide, from 1 ms (Cloud Run's are similar).
BUCKETS, GROWTH, SCALE = 64, 1.25, 1.0
PERCENTILES = {"99": 0.99, "95": 0.95, "50": 0.50, "05": 0.05}
_TERM = re.compile(r'\s*(?:(?<=\s)AND\s+)?([A-Za-z_][\w.]*)\s*=\s*"([^"\\]*)"\s*')


class Invalid(Exception):
    """A request Cloud Monitoring would refuse (INVALID_ARGUMENT); the message says why."""


@dataclass
class Behaviour:
    """How one revision answers: share of 5xx, p95 latency, and the same for its model calls."""

    error_ratio: float = 0.0
    p95_ms: float = 200.0
    llm_error_ratio: float = 0.0
    llm_p95_ms: float = 800.0


def bucket_bounds(index: int) -> tuple[float, float]:
    """Lower and upper bound of a bucket (0: underflow from 0, BUCKETS + 1: overflow)."""
    if index == 0:
        return 0.0, SCALE
    low = SCALE * GROWTH ** (index - 1)
    return low, low * GROWTH


def bucket_index(ms: float) -> int:
    """The bucket a latency falls in (the inverse of `bucket_bounds`)."""
    if ms < SCALE:
        return 0
    return min(BUCKETS + 1, 1 + int(math.log(ms / SCALE, GROWTH)))


def observed_histogram(latencies: list[float]) -> list[int]:
    """Bucket counts of real latencies."""
    counts = [0] * (BUCKETS + 2)
    for ms in latencies:
        counts[bucket_index(ms)] += 1
    return counts


def latency_histogram(count: int, p95_ms: float) -> list[int]:
    """Bucket counts of ``count`` latencies spread evenly over [0, p95 / 0.95): their p95 is p95."""
    top = p95_ms / 0.95
    shares = []
    for i in range(BUCKETS + 2):
        low, high = bucket_bounds(i)
        shares.append(max(0.0, min(high, top) - low) / top * count)
    counts = [int(s) for s in shares]
    # Largest remainders get the requests that flooring lost, so the counts add up.
    order = sorted(range(len(shares)), key=lambda i: shares[i] - counts[i], reverse=True)
    for i in order[: count - sum(counts)]:
        counts[i] += 1
    return counts


def percentile(counts: list[int], q: float) -> float:
    """The q-quantile of a histogram, interpolated linearly inside its bucket."""
    total = sum(counts)
    target, seen = q * total, 0
    for i, c in enumerate(counts):
        if c and seen + c >= target:
            low, high = bucket_bounds(i)
            return low + (high - low) * (target - seen) / c
        seen += c
    return bucket_bounds(len(counts) - 1)[1]


class MonitoringFake:
    """Time series computed from a traffic model and the Cloud Run fake's routing."""

    def __init__(
        self, run: CloudRunFake, project: str = "ngx-local", min_alignment_s: float = 60.0
    ) -> None:
        self.run = run
        self.project = project
        self.min_alignment_s = min_alignment_s
        self.lock = threading.Lock()
        self.rates: dict[str, float] = {}  # service id → requests per second
        self.behaviour: dict[str, Behaviour] = {}  # revision → behaviour
        self.queries: list[dict[str, Any]] = []  # every accepted query, for tests
        self.written: list[dict[str, Any]] = []  # points of CreateTimeSeries, as tests read them
        # Real requests (the rehearsal router's): a service with any is answered from them.
        self.observed = Observations()

    def set_rate(self, service_id: str, requests_per_s: float) -> None:
        """Total requests per second the service receives, split by its routing."""
        with self.lock:
            self.rates[service_id] = requests_per_s

    def set_revision(self, revision: str, **behaviour: float) -> None:
        """How a revision answers (see `Behaviour`); unset fields keep their defaults."""
        with self.lock:
            self.behaviour[revision] = Behaviour(**behaviour)

    def requests(self, service_name: str, revision: str, start: float, end: float) -> int:
        """Whole requests the revision served in [start, end), from the routing over time."""
        rate = self.rates.get(service_name.rsplit("/", 1)[-1], 0.0)
        end = min(end, time.time())
        timeline = self.run.timeline(service_name)
        total = 0.0
        for i, (since, split) in enumerate(timeline):
            until = timeline[i + 1][0] if i + 1 < len(timeline) else math.inf
            overlap = min(end, until) - max(start, since)
            if overlap > 0:
                total += rate * split.get(revision, 0) / 100 * overlap
        return int(total + 1e-9)

    def _raw(self, metric: str, service_name: str, start: float, end: float) -> list[Any]:
        """(metric labels, resource labels, value) of every series with data in [start, end)."""
        series = []
        _, _, _, location, _, service_id = service_name.split("/")
        if self.observed.has(service_id):
            return self._observed(metric, location, service_id, start, end)
        for revision in sorted({r for _, split in self.run.timeline(service_name) for r in split}):
            n = self.requests(service_name, revision, start, end)
            if n == 0:
                continue
            how = self.behaviour.get(revision, Behaviour())
            resource = self._resource(location, service_id, revision)
            if metric in (REQUEST_COUNT, REQUEST_LATENCIES):
                errors = round(n * how.error_ratio)
                for code_class, code, count in (("2xx", "200", n - errors), ("5xx", "500", errors)):
                    if count:
                        labels = {"response_code_class": code_class, "response_code": code}
                        labels["route"] = ""
                        value: Any = count
                        if metric == REQUEST_LATENCIES:
                            value = latency_histogram(count, how.p95_ms)
                        series.append((labels, resource, value))
            elif metric == LLM_ERRORS:
                errors = round(n * how.llm_error_ratio)
                if errors:
                    series.append(({}, resource, errors))
            else:
                series.append(({}, resource, latency_histogram(n, how.llm_p95_ms)))
        return series

    def _resource(self, location: str, service_id: str, revision: str) -> dict[str, str]:
        """The labels of a ``cloud_run_revision`` monitored resource."""
        return {
            "project_id": self.project,
            "location": location,
            "service_name": service_id,
            "revision_name": revision,
            "configuration_name": service_id,
        }

    def _observed(
        self, metric: str, location: str, service_id: str, start: float, end: float
    ) -> list[Any]:
        """Cloud Run's request metrics from the requests actually served (no model KPIs)."""
        if metric not in (REQUEST_COUNT, REQUEST_LATENCIES):
            return []
        groups: dict[tuple[str, int], list[float]] = {}
        for seen in self.observed.window(service_id, start, end):
            groups.setdefault((seen.revision, seen.status), []).append(seen.latency_ms)
        series = []
        for (revision, status), latencies in sorted(groups.items()):
            resource = self._resource(location, service_id, revision)
            labels = {
                "response_code_class": code_class(status),
                "response_code": str(status),
                "route": "",
            }
            value: Any = len(latencies)
            if metric == REQUEST_LATENCIES:
                value = observed_histogram(latencies)
            series.append((labels, resource, value))
        return series

    def _select(self, request: Any) -> tuple[str, dict[str, str], dict[str, str]]:
        """The metric type and label conditions of the filter; INVALID_ARGUMENT otherwise."""
        text, pos = request.filter, 0
        terms: dict[str, str] = {}
        while pos < len(text):
            match = _TERM.match(text, pos)
            if match is None or match.end() == pos:
                raise Invalid(f"unsupported filter syntax at {text[pos : pos + 40]!r}")
            terms[match.group(1)] = match.group(2)
            pos = match.end()
        metric = terms.pop("metric.type", None)
        if metric is None:
            raise Invalid("the filter must name exactly one metric.type")
        if metric not in METRIC_LABELS:
            raise Invalid(f"no metric descriptor matches metric.type = {metric!r}")
        resource_type = terms.pop("resource.type", RESOURCE)
        resource: dict[str, str] = {"type": resource_type}
        labels: dict[str, str] = {}
        for field, value in terms.items():
            scope, _, key = field.replace(".labels.", ".label.").partition(".label.")
            if scope == "resource" and key in RESOURCE_LABELS:
                resource[key] = value
            elif scope == "metric" and key in METRIC_LABELS[metric]:
                labels[key] = value
            else:
                raise Invalid(f"unknown filter field {field!r}")
        return metric, resource, labels

    def _services(self, wanted: dict[str, str]) -> list[str]:
        """Names of the Cloud Run fake's services the resource conditions allow."""
        if wanted["type"] != RESOURCE:
            return []
        found = []
        for name in list(self.run.services):
            _, _, _, location, _, service_id = name.split("/")
            if wanted.get("location", location) == location and (
                wanted.get("service_name", service_id) == service_id
            ):
                found.append(name)
        return found

    def _answer(self, request: Any) -> Any:
        from google.cloud.monitoring_v3.types import common

        if request.name != f"projects/{self.project}":
            raise LookupError(f"project {request.name!r} not found")
        metric, wanted_resource, wanted_labels = self._select(request)
        if not request.interval.end_time:
            raise Invalid("interval.end_time is required")
        end = request.interval.end_time.timestamp()
        start = request.interval.start_time.timestamp() if request.interval.start_time else end
        if start >= end:
            raise Invalid("interval.start_time must be before interval.end_time")
        aggregation = request.aggregation
        aligner = common.Aggregation.Aligner(aggregation.per_series_aligner)
        reducer = common.Aggregation.Reducer(aggregation.cross_series_reducer)
        if aligner == common.Aggregation.Aligner.ALIGN_NONE:
            raise Invalid("this fake answers aligned queries only: set per_series_aligner")
        period = aggregation.alignment_period.total_seconds()
        if period < self.min_alignment_s or period <= 0:
            raise Invalid(f"The alignment period must be at least {self.min_alignment_s:g} seconds")
        group_by = [_group_field(f) for f in aggregation.group_by_fields]
        points: dict[tuple[Any, ...], list[tuple[float, float, Any]]] = {}
        for service_name in self._services(wanted_resource):
            k = 0
            while end - k * period > start and k < 1000:
                high = end - k * period
                low = high - period
                for labels, resource, raw in self._raw(metric, service_name, max(low, start), high):
                    if any(resource.get(f) != v for f, v in wanted_resource.items() if f != "type"):
                        continue
                    if any(labels.get(f) != v for f, v in wanted_labels.items()):
                        continue
                    value = _align(aligner, metric, raw, period)
                    key = (tuple(sorted(labels.items())), tuple(sorted(resource.items())))
                    points.setdefault(key, []).append((low, high, value))
                k += 1
        if reducer != common.Aggregation.Reducer.REDUCE_NONE:
            points = _reduce(reducer, group_by, points)
        with self.lock:
            self.queries.append(
                {
                    "filter": request.filter,
                    "metric": metric,
                    "start": start,
                    "end": end,
                    "aligner": aligner.name,
                    "reducer": reducer.name,
                    "group_by": list(aggregation.group_by_fields),
                }
            )
        return _response(metric, aligner, points)

    def list_time_series(self, request: Any, context: grpc.ServicerContext) -> Any:
        from google.cloud.monitoring_v3.types import metric_service

        wrapped = metric_service.ListTimeSeriesRequest.wrap(request)
        try:
            answer = self._answer(wrapped)
        except Invalid as exc:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except LookupError as exc:
            abort(context, grpc.StatusCode.NOT_FOUND, str(exc))
        return metric_service.ListTimeSeriesResponse.pb(answer)

    def create_time_series(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Custom metrics written (checked as Cloud Monitoring checks them: the project, custom
        metric types, one point per series with an end time)."""
        from google.cloud.monitoring_v3.types import metric_service
        from google.protobuf import empty_pb2

        wrapped = metric_service.CreateTimeSeriesRequest.wrap(request)
        if wrapped.name != f"projects/{self.project}":
            abort(context, grpc.StatusCode.NOT_FOUND, f"unknown project {wrapped.name!r}")
        points = []
        for series in wrapped.time_series:
            if not series.metric.type.startswith("custom.googleapis.com/"):
                abort(context, grpc.StatusCode.INVALID_ARGUMENT, "only custom metrics here")
            if len(series.points) != 1 or not series.points[0].interval.end_time:
                abort(context, grpc.StatusCode.INVALID_ARGUMENT, "one point with an end time")
            point = series.points[0]
            points.append(
                {
                    "metric": series.metric.type,
                    "resource": series.resource.type,
                    "labels": dict(series.resource.labels),
                    "end": point.interval.end_time.isoformat(),
                    "value": point.value.double_value,
                }
            )
        with self.lock:
            self.written.extend(points)
        return empty_pb2.Empty()

    def handlers(self) -> list[grpc.GenericRpcHandler]:
        from google.cloud.monitoring_v3.types import metric_service

        return [
            grpc.method_handlers_generic_handler(
                SERVICE,
                {
                    "CreateTimeSeries": grpc.unary_unary_rpc_method_handler(
                        self.create_time_series,
                        request_deserializer=metric_service.CreateTimeSeriesRequest.pb().FromString,
                        response_serializer=lambda m: m.SerializeToString(),
                    ),
                    "ListTimeSeries": grpc.unary_unary_rpc_method_handler(
                        self.list_time_series,
                        request_deserializer=metric_service.ListTimeSeriesRequest.pb().FromString,
                        response_serializer=lambda m: m.SerializeToString(),
                    ),
                },
            )
        ]


def _group_field(field: str) -> tuple[str, str]:
    scope, _, key = field.replace(".labels.", ".label.").partition(".label.")
    if scope not in ("metric", "resource") or not key:
        raise Invalid(f"unsupported group_by_fields entry {field!r}")
    return scope, key


def _align(aligner: Any, metric: str, raw: Any, period: float) -> Any:
    """One aligned value for one period of one series."""
    name = aligner.name
    distribution = metric in DISTRIBUTIONS
    if name in ("ALIGN_DELTA", "ALIGN_SUM"):
        return raw
    if name == "ALIGN_RATE" and not distribution:
        return raw / period
    if name.startswith("ALIGN_PERCENTILE_") and distribution:
        return percentile(raw, PERCENTILES[name.rsplit("_", 1)[1]])
    raise Invalid(f"{name} cannot be applied to {metric}")


def _reduce(
    reducer: Any, group_by: list[tuple[str, str]], points: dict[tuple[Any, ...], list[Any]]
) -> dict[tuple[Any, ...], list[Any]]:
    """Combine series that agree on ``group_by``, period by period."""
    groups: dict[tuple[Any, ...], dict[tuple[float, float], list[Any]]] = {}
    for (labels, resource), series in points.items():
        kept_labels = tuple((k, v) for k, v in labels if ("metric", k) in group_by)
        kept_resource = tuple((k, v) for k, v in resource if ("resource", k) in group_by)
        periods = groups.setdefault((kept_labels, kept_resource), {})
        for low, high, point in series:
            periods.setdefault((low, high), []).append(point)
    name = reducer.name
    out: dict[tuple[Any, ...], list[Any]] = {}
    for key, periods in groups.items():
        for (low, high), values in periods.items():
            histograms = isinstance(values[0], list)
            if name == "REDUCE_SUM":
                value: Any = (
                    [sum(c) for c in zip(*values, strict=True)] if histograms else sum(values)
                )
            elif name == "REDUCE_COUNT":
                value = len(values)
            elif name.startswith("REDUCE_PERCENTILE_"):
                q = PERCENTILES[name.rsplit("_", 1)[1]]
                if histograms:
                    value = percentile([sum(c) for c in zip(*values, strict=True)], q)
                else:
                    ordered = sorted(values)
                    value = float(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)])
            elif name in ("REDUCE_MEAN", "REDUCE_MIN", "REDUCE_MAX") and not histograms:
                pick = {"REDUCE_MIN": min, "REDUCE_MAX": max}.get(name)
                value = pick(values) if pick else sum(values) / len(values)
            else:
                raise Invalid(f"{name} is not supported here")
            out.setdefault(key, []).append((low, high, value))
    return out


def _response(metric: str, aligner: Any, points: dict[tuple[Any, ...], list[Any]]) -> Any:
    from google.api import distribution_pb2, metric_pb2, monitored_resource_pb2
    from google.cloud.monitoring_v3.types import common, metric_service
    from google.cloud.monitoring_v3.types import metric as metric_types
    from google.protobuf import timestamp_pb2

    def stamp(seconds: float) -> timestamp_pb2.Timestamp:
        out = timestamp_pb2.Timestamp()
        out.FromNanoseconds(int(seconds * 1e9))
        return out

    def typed(value: Any) -> tuple[Any, int]:
        kind = metric_pb2.MetricDescriptor.ValueType
        if isinstance(value, list):
            bounds = distribution_pb2.Distribution.BucketOptions.Exponential(
                num_finite_buckets=BUCKETS, growth_factor=GROWTH, scale=SCALE
            )
            count = sum(value)
            mean = sum(c * sum(bucket_bounds(i)) / 2 for i, c in enumerate(value)) / count
            dist = distribution_pb2.Distribution(
                count=count,
                mean=mean,
                bucket_options=distribution_pb2.Distribution.BucketOptions(
                    exponential_buckets=bounds
                ),
                bucket_counts=value,
            )
            return common.TypedValue(distribution_value=dist), kind.DISTRIBUTION
        if isinstance(value, int):
            return common.TypedValue(int64_value=value), kind.INT64
        return common.TypedValue(double_value=value), kind.DOUBLE

    answer = []
    delta = aligner.name in ("ALIGN_DELTA", "ALIGN_SUM")
    for (labels, resource), series in points.items():
        series = sorted(series, key=lambda p: p[1], reverse=True)  # newest first, as the API
        values = [typed(value) for _, _, value in series]
        answer.append(
            metric_types.TimeSeries(
                metric=metric_pb2.Metric(type=metric, labels=dict(labels)),
                resource=monitored_resource_pb2.MonitoredResource(
                    type=RESOURCE, labels=dict(resource)
                ),
                metric_kind=metric_pb2.MetricDescriptor.MetricKind.DELTA
                if delta
                else metric_pb2.MetricDescriptor.MetricKind.GAUGE,
                value_type=values[0][1],
                points=[
                    metric_types.Point(
                        interval=common.TimeInterval(
                            start_time=stamp(low) if delta else stamp(high), end_time=stamp(high)
                        ),
                        value=typed_value,
                    )
                    for (low, high, _), (typed_value, _) in zip(series, values, strict=True)
                ],
            )
        )
    return metric_service.ListTimeSeriesResponse(time_series=answer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_run_arguments(parser)
    parser.add_argument("--run-port", type=int, required=True, help="where the Cloud Run fake is")
    parser.add_argument("--rate", action="append", default=[], metavar="ID=REQ_PER_S")
    parser.add_argument(
        "--revision", action="append", default=[], metavar="REV:error_ratio=0.01,p95_ms=300"
    )
    parser.add_argument("--min-alignment-s", type=float, default=60.0)
    args = parser.parse_args()
    run = run_from_arguments(args)
    fake = MonitoringFake(run, args.project, args.min_alignment_s)
    for spec in args.rate:
        service_id, _, rate = spec.partition("=")
        fake.set_rate(service_id, float(rate))
    for spec in args.revision:
        revision, _, fields = spec.partition(":")
        values = dict(item.split("=", 1) for item in fields.split(",") if item)
        fake.set_revision(revision, **{k: float(v) for k, v in values.items()})
    servers = [serve(run, args.host, args.run_port), serve(fake, args.host, args.port)]
    servers[1].wait_for_termination()


if __name__ == "__main__":
    main()
