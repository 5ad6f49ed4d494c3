"""Business metrics per day (UTC): resolution rate, CSAT and deflection rate.

A day's conversations are those started that day. For them:

- **resolution rate**: the share closed without a hand-off to a person and without negative
  feedback (an answer rated thumbs down, or 1–2 stars);
- **CSAT**: the mean rating of their rated answers on a 1–5 scale (stars as given, thumbs up 5,
  thumbs down 1); none when nothing was rated;
- **deflection rate**: 1 − hand-offs / conversations.

Each conversation carries what these need (its ``ratings`` by answer, kept as feedback is given,
and its ``handoff``), so a day costs one query of its conversations. The reports function writes
each day to ``business_days/{day}`` and as custom metrics; ``agentctl report`` prints them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from shared.stores.conversations import CONVERSATIONS

DAYS = "business_days"
NEGATIVE_AT_MOST = 2  # a rating this low or lower is negative feedback
METRIC_PREFIX = "custom.googleapis.com/ngx/business/"


def score(feedback: dict[str, Any]) -> int:
    """A rating on the 1–5 scale: stars as given, thumbs up 5, thumbs down 1."""
    if feedback.get("stars") is not None:
        return int(feedback["stars"])
    return 5 if feedback.get("thumbs") == "up" else 1


@dataclass(frozen=True)
class DayMetrics:
    day: str
    conversations: int
    resolved: int
    handoffs: int
    negative: int  # conversations with negative feedback
    ratings: int
    csat: float | None
    resolution_rate: float | None
    deflection_rate: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(day: date, conversations: list[dict[str, Any]]) -> DayMetrics:
    """The day's metrics from its conversations' documents."""
    resolved = handoffs = negative = 0
    scores: list[int] = []
    for data in conversations:
        ratings = [int(v) for v in (data.get("ratings") or {}).values()]
        scores += ratings
        handed = bool(data.get("handoff"))
        unhappy = any(r <= NEGATIVE_AT_MOST for r in ratings)
        handoffs += handed
        negative += unhappy
        resolved += not handed and not unhappy
    count = len(conversations)
    return DayMetrics(
        day=day.isoformat(),
        conversations=count,
        resolved=resolved,
        handoffs=handoffs,
        negative=negative,
        ratings=len(scores),
        csat=round(sum(scores) / len(scores), 4) if scores else None,
        resolution_rate=round(resolved / count, 4) if count else None,
        deflection_rate=round(1 - handoffs / count, 4) if count else None,
    )


def bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), UTC)
    return start, start + timedelta(days=1)


async def compute(db: Any, day: date) -> DayMetrics:
    """The metrics of ``day`` from Firestore (one query of the conversations it started)."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    start, end = bounds(day)
    query = (
        db.collection(CONVERSATIONS)
        .where(filter=FieldFilter("created_at", ">=", start))
        .where(filter=FieldFilter("created_at", "<", end))
        .select(["ratings", "handoff"])
    )
    found = [snapshot.to_dict() or {} async for snapshot in query.stream()]
    return summarize(day, found)


async def record(db: Any, metrics: DayMetrics) -> None:
    """Keep a day's metrics (recomputing a day replaces them)."""
    await (
        db.collection(DAYS)
        .document(metrics.day)
        .set({**metrics.as_dict(), "computed_at": datetime.now(UTC)})
    )


def time_series(project: str, metrics: DayMetrics) -> list[dict[str, Any]]:
    """The day as Cloud Monitoring gauge points (at the day's end), one per defined rate."""
    _, end = bounds(date.fromisoformat(metrics.day))
    values = {
        "resolution_rate": metrics.resolution_rate,
        "csat": metrics.csat,
        "deflection_rate": metrics.deflection_rate,
        "conversations": float(metrics.conversations),
    }
    return [
        {
            "metric": METRIC_PREFIX + name,
            "value": value,
            "end": end,
            "resource": {"type": "global", "labels": {"project_id": project}},
        }
        for name, value in values.items()
        if value is not None
    ]
