"""Load scenarios: a rate shape over time, a mix of chat and stream, repeated versus fresh prompts,
conversation depth and the SLO the run is judged by. Built in: ``normal`` (50 req/s), ``high``
(200 req/s) and ``spike`` (500 req/s for 60 s between two calm stretches); or a JSON file.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Kind = Literal["chat", "stream"]


def _default_mix() -> dict[Kind, float]:
    return {"chat": 0.7, "stream": 0.3}


class ScenarioError(ValueError):
    """A scenario that cannot run; the message names the file and the field."""


class Stage(BaseModel):
    """From ``at_s`` on, the offered rate moves linearly to the next stage's ``rps``."""

    model_config = ConfigDict(extra="forbid")
    at_s: float = Field(ge=0)
    rps: float = Field(ge=0, le=5000)


class Slo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    p95_ms: float = Field(default=2000.0, gt=0)
    error_rate: float = Field(default=0.05, ge=0, le=1)


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    duration_s: float = Field(gt=0, le=3600)
    rate: list[Stage] = Field(min_length=1, max_length=1000)
    mix: dict[Kind, float] = Field(default_factory=_default_mix)
    repeat_share: float = Field(
        default=0.3, ge=0, le=1, description="share of prompts from a common pool"
    )
    prompt_pool: int = Field(default=50, ge=1, le=100_000)
    conversation_depth: int = Field(default=1, ge=1, le=50, description="turns per conversation")
    users: int = Field(default=50, ge=1, le=100_000)
    timeout_s: float = Field(default=30.0, gt=0, le=600)
    warmup_s: float = Field(
        default=10.0, ge=0, le=600, description="unrecorded ramp from 0 to the first stage's rate"
    )
    slo: Slo = Field(default_factory=Slo)

    @field_validator("rate")
    @classmethod
    def _ordered(cls, stages: list[Stage]) -> list[Stage]:
        if stages[0].at_s != 0:
            raise ValueError("the first stage must start at_s 0")
        for before, after in itertools.pairwise(stages):
            if after.at_s <= before.at_s:
                raise ValueError("stages must have increasing at_s")
        return stages

    @field_validator("mix")
    @classmethod
    def _shares(cls, mix: dict[str, float]) -> dict[str, float]:
        if any(share < 0 for share in mix.values()) or abs(sum(mix.values()) - 1) > 1e-6:
            raise ValueError("shares must be non-negative and add up to 1")
        return mix

    @model_validator(mode="after")
    def _stages_inside(self) -> Scenario:
        if self.rate[-1].at_s >= self.duration_s and len(self.rate) > 1:
            raise ValueError("every stage must start before duration_s")
        return self

    def rate_at(self, t: float) -> float:
        """The offered rate at ``t`` seconds: linear between stages, flat after the last."""
        stages = self.rate
        for before, after in itertools.pairwise(stages):
            if before.at_s <= t < after.at_s:
                share = (t - before.at_s) / (after.at_s - before.at_s)
                return before.rps + share * (after.rps - before.rps)
        return stages[-1].rps if t >= stages[-1].at_s else stages[0].rps

    def peak_rps(self) -> float:
        return max(stage.rps for stage in self.rate)

    def warmup(self) -> Scenario | None:
        """The unrecorded ramp that brings connections, caches and pools to a steady state."""
        if not self.warmup_s or not self.rate[0].rps:
            return None
        return self.model_copy(
            update={
                "name": f"{self.name}-warmup",
                "duration_s": self.warmup_s,
                "rate": [Stage(at_s=0, rps=0), Stage(at_s=self.warmup_s, rps=self.rate[0].rps)],
            }
        )


def _steady(name: str, rps: float) -> Scenario:
    return Scenario(name=name, duration_s=60, rate=[Stage(at_s=0, rps=rps)])


BUILT_IN = {
    "normal": _steady("normal", 50),
    "high": _steady("high", 200),
    "spike": Scenario(
        name="spike",
        duration_s=80,
        rate=[
            Stage(at_s=0, rps=50),
            Stage(at_s=10, rps=50),
            Stage(at_s=10.001, rps=500),
            Stage(at_s=70, rps=500),
            Stage(at_s=70.001, rps=50),
        ],
    ),
}


def load(spec: str) -> Scenario:
    """A built-in scenario by name, or one from a JSON file; errors name the file and field."""
    if spec in BUILT_IN:
        return BUILT_IN[spec]
    path = Path(spec)
    if not path.suffix == ".json":
        raise ScenarioError(
            f"{spec!r} is neither a built-in scenario ({', '.join(BUILT_IN)}) nor a .json file"
        )
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ScenarioError(f"{spec}: cannot read it ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"{spec}: not JSON (line {exc.lineno}: {exc.msg})") from None
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "scenario"
            problems.append(f"field {where!r}: {err['msg']}")
        raise ScenarioError(f"{spec}: " + "; ".join(problems)) from None
