"""A rollout plan: the traffic steps, the bake time of each, and the gates every check applies.

Plans are validated before anything is sent, so a bad one is refused with the reason and the
service is never touched.
"""

from __future__ import annotations

import re
from itertools import pairwise

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared import errors

DEFAULT_STEPS = "20,50,100"
DEFAULT_BAKE = "30m,60m"
_DURATION = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)?\Z")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class Gates(BaseModel):
    """What a check measures and the limits it holds the candidate to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    interval_s: float = Field(60.0, gt=0, description="time between checks")
    window_s: float = Field(300.0, gt=0, description="how far back each check looks")
    min_requests: int = Field(100, ge=1, description="fewer: the check is inconclusive")
    max_error_ratio: float = Field(0.02, ge=0, le=1, description="5xx / all requests")
    # None: no request-latency gate (a stream's request lasts as long as the stream).
    max_p95_ms: float | None = Field(2000.0, gt=0)
    # Cloud Run's metrics reach Cloud Monitoring up to ~3 min late: windows end this long ago.
    lag_s: float = Field(180.0, ge=0, description="ingestion delay allowed for")
    max_failed_checks: int = Field(1, ge=1, description="roll back at this many failed checks")
    kpis: bool = Field(False, description="also gate on the log-based vertex_ai.client KPIs")
    max_llm_error_ratio: float = Field(0.05, ge=0, le=1, description="model errors / calls")
    max_llm_p95_ms: float = Field(15000.0, gt=0)
    # Relative to the stable revision over the same window (as Flagger and Argo analyses do): on
    # top of the absolute bounds, the candidate may not be worse than what it replaces.
    max_error_ratio_margin: float = Field(
        0.01, ge=0, le=1, description="candidate's 5xx ratio ≤ stable's + this"
    )
    max_p95_ratio: float | None = Field(
        1.5, ge=1, description="candidate's p95 ≤ this × stable's (None: not compared)"
    )
    # A window with too few requests is widened (doubled, up to this) before it is judged.
    max_window_s: float = Field(1800.0, gt=0, description="widest window a quiet check looks at")


class Plan(BaseModel):
    """Traffic percents for the candidate, ending at 100, and how long each step bakes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: list[int]
    bake_s: list[float]  # one per step before the last (100%)
    gates: Gates

    def percent(self, step: int) -> int:
        return self.steps[step]

    def bake(self, step: int) -> float:
        """Seconds the candidate stays at ``step`` before it may move on."""
        return self.bake_s[step] if step < len(self.bake_s) else 0.0


def parse_duration(text: str, what: str) -> float:
    """Seconds from ``250ms``, ``60s``, ``30m``, ``1h`` or a bare number of seconds."""
    match = _DURATION.match(text.strip().lower())
    if match is None:
        raise errors.ValidationFailed(f"{what}: {text!r} is not a duration (like 90s, 30m, 1h)")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def parse_steps(text: str) -> list[int]:
    """Whole percents from ``20,50,100``."""
    steps = []
    for part in text.split(","):
        part = part.strip().removesuffix("%")
        if not part.isdigit():
            raise errors.ValidationFailed(f"steps: {part!r} is not a whole percent")
        steps.append(int(part))
    return steps


def make_plan(steps: list[int], bake_s: list[float], gates: dict[str, object]) -> Plan:
    """A validated plan; `errors.ValidationFailed` names the first problem."""
    if not steps:
        raise errors.ValidationFailed("steps: give at least one step, ending at 100")
    for step in steps:
        if not 0 < step <= 100:
            raise errors.ValidationFailed(f"steps: {step}% is not between 1 and 100")
    for before, after in pairwise(steps):
        if after <= before:
            raise errors.ValidationFailed(
                f"steps must increase: {after}% comes after {before}% in {_text(steps)}"
            )
    if steps[-1] != 100:
        raise errors.ValidationFailed(f"steps must end at 100, not {steps[-1]} ({_text(steps)})")
    baking = len(steps) - 1
    if len(bake_s) == 1 and baking > 1:
        bake_s = bake_s * baking
    if len(bake_s) != baking:
        raise errors.ValidationFailed(
            f"bake: give one duration for each step before 100% ({baking}: "
            f"{_text(steps[:-1]) or 'none'}) or one for all; got {len(bake_s)}"
        )
    if any(b < 0 for b in bake_s):
        raise errors.ValidationFailed("bake: durations cannot be negative")
    try:
        checked = Gates.model_validate(gates)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]).replace("_", "-")
        raise errors.ValidationFailed(f"{field}: {first['msg']}") from None
    if checked.window_s < checked.interval_s:
        raise errors.ValidationFailed(
            f"window ({checked.window_s:g}s) must be at least the interval "
            f"({checked.interval_s:g}s), or some requests are never checked"
        )
    return Plan(steps=steps, bake_s=bake_s, gates=checked)


def _text(steps: list[int]) -> str:
    return ", ".join(f"{s}%" for s in steps)
