"""The cache-maintenance function's requests (``{"action": ...}``) and their dispatch."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from shared import errors
from shared.auth.invoker import Invoker
from shared.cache_maintenance.jobs import CacheMaintenance
from shared.memorystore import StoreUnavailable

WindowHours = Annotated[
    int | None, Field(None, ge=1, le=48, description="default: since the last apply")
]


class _Call(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AnalyzeCall(_Call):
    action: Literal["analyze"]
    window_hours: WindowHours = None


class ApplyCall(_Call):
    action: Literal["apply"]
    window_hours: WindowHours = None
    dry_run: bool = False


class InvalidateCall(_Call):
    action: Literal["invalidate"]
    tag: str | None = Field(None, min_length=3, max_length=300, pattern=r"^[a-z]+:.+$")
    query_class: str | None = Field(None, min_length=1, max_length=100)
    dry_run: bool = False


class CacheCall(RootModel[AnalyzeCall | ApplyCall | InvalidateCall]):
    root: Annotated[AnalyzeCall | ApplyCall | InvalidateCall, Field(discriminator="action")]


async def perform(jobs: CacheMaintenance, call: CacheCall, invoker: Invoker) -> dict[str, Any]:
    """Run one action for ``invoker``; the JSON report."""
    try:
        return await _perform(jobs, call.root, invoker)
    except StoreUnavailable:
        raise errors.Unavailable("Memorystore did not answer; try again", retry_after=30) from None


async def _perform(
    jobs: CacheMaintenance, request: AnalyzeCall | ApplyCall | InvalidateCall, invoker: Invoker
) -> dict[str, Any]:
    if isinstance(request, AnalyzeCall):
        report, _ = await jobs.analyze(request.window_hours)
        return {"action": "analyze", **report}
    if isinstance(request, ApplyCall):
        applied = await jobs.apply(invoker.email, request.dry_run, request.window_hours)
        return {"action": "apply", **applied}
    result = await jobs.invalidate(request.tag, request.query_class, request.dry_run)
    return {"action": "invalidate", **result}
