"""One check of the candidate against the gates: pass, fail, or inconclusive (too little traffic).

Too little data is never a pass: a quiet candidate waits at its step instead of being promoted
on no evidence.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from ops.canary.metrics import Sample
from ops.canary.plan import Gates

Verdict = Literal["pass", "fail", "inconclusive"]


class Check(BaseModel):
    """The outcome of one check, as kept in the rollout's state."""

    at: datetime
    step: int
    percent: int
    verdict: Verdict
    requests: int
    error_ratio: float | None = None
    p95_ms: float | None = None
    llm_error_ratio: float | None = None
    llm_p95_ms: float | None = None
    stable_error_ratio: float | None = None
    stable_p95_ms: float | None = None
    window_s: float | None = None
    reason: str


def judge(
    sample: Sample,
    gates: Gates,
    *,
    at: datetime,
    step: int,
    percent: int,
    stable: Sample | None = None,
    window_s: float | None = None,
) -> Check:
    """Hold one sample of the candidate to the gates: the absolute bounds, and, when ``stable``
    (the stable revision over the same window) has enough requests, the bounds relative to it."""
    measured: dict[str, float | None] = {"window_s": window_s}

    def outcome(verdict: Verdict, reason: str) -> Check:
        return Check.model_validate(
            {
                "at": at,
                "step": step,
                "percent": percent,
                "requests": sample.requests,
                "verdict": verdict,
                "reason": reason,
                **measured,
            }
        )

    if sample.requests < gates.min_requests:
        return outcome("inconclusive", f"{sample.requests} requests < {gates.min_requests} needed")
    ratio = sample.errors / sample.requests
    measured |= {"error_ratio": ratio, "p95_ms": sample.p95_ms}
    problems, passed, missing = [], [], []
    if ratio > gates.max_error_ratio:
        problems.append(f"error ratio {ratio:.1%} > {gates.max_error_ratio:.1%}")
    else:
        passed.append(f"error ratio {ratio:.1%}")
    if gates.max_p95_ms is None:
        pass  # not gated: a stream's request latency is the length of the stream
    elif sample.p95_ms is None:
        missing.append("no latency data")
    elif sample.p95_ms > gates.max_p95_ms:
        problems.append(f"p95 {sample.p95_ms:,.0f} ms > {gates.max_p95_ms:,.0f} ms")
    else:
        passed.append(f"p95 {sample.p95_ms:,.0f} ms")
    if stable is not None and stable.requests >= gates.min_requests:
        problems += _relative(sample, stable, gates, measured)
    if gates.kpis:
        calls = sample.llm_calls or 0
        if calls < gates.min_requests:
            missing.append(f"{calls} model calls < {gates.min_requests} needed")
        else:
            llm_ratio = (sample.llm_errors or 0) / calls
            measured |= {"llm_error_ratio": llm_ratio, "llm_p95_ms": sample.llm_p95_ms}
            if llm_ratio > gates.max_llm_error_ratio:
                problems.append(
                    f"model error ratio {llm_ratio:.1%} > {gates.max_llm_error_ratio:.1%}"
                )
            else:
                passed.append(f"model error ratio {llm_ratio:.1%}")
            if sample.llm_p95_ms is not None and sample.llm_p95_ms > gates.max_llm_p95_ms:
                problems.append(
                    f"model p95 {sample.llm_p95_ms:,.0f} ms > {gates.max_llm_p95_ms:,.0f} ms"
                )
            elif sample.llm_p95_ms is not None:
                passed.append(f"model p95 {sample.llm_p95_ms:,.0f} ms")
    if problems:
        return outcome("fail", "; ".join(problems))
    if missing:
        return outcome("inconclusive", "; ".join(missing))
    return outcome("pass", f"{sample.requests} requests, " + ", ".join(passed))


def _relative(
    sample: Sample, stable: Sample, gates: Gates, measured: dict[str, float | None]
) -> list[str]:
    """What makes the candidate worse than the stable revision beyond the allowed margins."""
    problems = []
    ratio, base = sample.errors / sample.requests, stable.errors / stable.requests
    measured |= {"stable_error_ratio": base, "stable_p95_ms": stable.p95_ms}
    if ratio > base + gates.max_error_ratio_margin:
        problems.append(
            f"error ratio {ratio:.1%} > stable's {base:.1%} + {gates.max_error_ratio_margin:.1%}"
        )
    factor = gates.max_p95_ratio
    compare_p95 = gates.max_p95_ms is not None and factor is not None
    if compare_p95 and sample.p95_ms is not None and stable.p95_ms:
        assert factor is not None
        if sample.p95_ms > factor * stable.p95_ms:
            problems.append(
                f"p95 {sample.p95_ms:,.0f} ms > {factor:g} × stable's {stable.p95_ms:,.0f} ms"
            )
    return problems
