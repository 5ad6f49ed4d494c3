"""Canary plans and checks: bad plans are refused with the reason; thin traffic never passes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ops.canary.checks import judge
from ops.canary.metrics import Sample
from ops.canary.plan import Gates, make_plan, parse_duration, parse_steps
from shared import errors

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("250ms", 0.25), ("60s", 60), ("30m", 1800), ("1h", 3600), ("90", 90), ("0.5s", 0.5)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text, "--bake") == seconds


def test_default_plan_bakes_30_then_60_minutes() -> None:
    plan = make_plan(parse_steps("20,50,100"), [1800, 3600], {})
    assert [plan.percent(i) for i in range(3)] == [20, 50, 100]
    assert [plan.bake(i) for i in range(3)] == [1800, 3600, 0]
    assert make_plan([10, 30, 60, 100], [60], {}).bake_s == [60, 60, 60]  # one for all


@pytest.mark.parametrize(
    ("steps", "bake", "gates", "message"),
    [
        ([50, 20, 100], [1, 1], {}, "steps must increase: 20% comes after 50%"),
        ([20, 20, 100], [1, 1], {}, "steps must increase"),
        ([20, 50], [1], {}, "steps must end at 100, not 50"),
        ([20, 120], [1], {}, "120% is not between 1 and 100"),
        ([0, 100], [1], {}, "0% is not between 1 and 100"),
        ([], [], {}, "at least one step"),
        ([20, 50, 100], [1, 2, 3], {}, "one duration for each step before 100% (2: 20%, 50%)"),
        ([20, 100], [1], {"min_requests": 0}, "min-requests"),
        ([20, 100], [1], {"interval_s": 60, "window_s": 30}, "window (30s) must be at least"),
    ],
)
def test_bad_plans_name_the_problem(
    steps: list[int], bake: list[float], gates: dict[str, object], message: str
) -> None:
    with pytest.raises(errors.ValidationFailed) as caught:
        make_plan(steps, bake, gates)
    assert message in caught.value.message


def test_bad_steps_and_durations_are_refused() -> None:
    with pytest.raises(errors.ValidationFailed, match="'half' is not a whole percent"):
        parse_steps("20,half,100")
    with pytest.raises(errors.ValidationFailed, match="'soon' is not a duration"):
        parse_duration("soon", "--bake")


def check(sample: Sample, **gates: object) -> tuple[str, str]:
    result = judge(sample, Gates.model_validate(gates), at=NOW, step=0, percent=20)
    return result.verdict, result.reason


def test_too_little_traffic_is_inconclusive_even_when_clean() -> None:
    assert check(Sample(99, 0, 10.0)) == ("inconclusive", "99 requests < 100 needed")
    assert check(Sample(100, 0, 10.0))[0] == "pass"


def test_a_failed_gate_fails_the_check_and_says_which() -> None:
    assert check(Sample(1000, 30, 100.0)) == ("fail", "error ratio 3.0% > 2.0%")
    assert check(Sample(1000, 0, 2500.0)) == ("fail", "p95 2,500 ms > 2,000 ms")
    verdict, reason = check(Sample(1000, 0, 100.0, 1000, 100, 900.0), kpis=True)
    assert (verdict, reason) == ("fail", "model error ratio 10.0% > 5.0%")


def test_kpis_need_enough_model_calls_but_a_failure_still_fails() -> None:
    assert check(Sample(1000, 0, 100.0, 10, 0, 900.0), kpis=True) == (
        "inconclusive",
        "10 model calls < 100 needed",
    )
    assert check(Sample(1000, 500, 100.0, 10, 0, 900.0), kpis=True)[0] == "fail"


def relative(candidate: Sample, stable: Sample, **gates: object) -> tuple[str, str]:
    result = judge(
        candidate, Gates.model_validate(gates), at=NOW, step=0, percent=20, stable=stable
    )
    return result.verdict, result.reason


def test_a_candidate_worse_than_stable_fails_within_the_absolute_bounds() -> None:
    # 1.5% errors passes the 2% bound, but stable answers with 0.2%: more than 1 point worse.
    verdict, reason = relative(Sample(1000, 15, 500.0), Sample(4000, 8, 500.0))
    assert verdict == "fail" and reason == "error ratio 1.5% > stable's 0.2% + 1.0%"
    # A p95 under 2,000 ms, but twice stable's.
    verdict, reason = relative(Sample(1000, 0, 1600.0), Sample(4000, 0, 800.0))
    assert verdict == "fail" and reason == "p95 1,600 ms > 1.5 × stable's 800 ms"


def test_a_candidate_as_good_as_stable_passes_and_margins_are_settings() -> None:
    assert relative(Sample(1000, 5, 900.0), Sample(4000, 20, 800.0))[0] == "pass"
    loose = relative(Sample(1000, 15, 1600.0), Sample(4000, 8, 800.0), max_p95_ratio=2.5)
    assert loose[0] == "fail" and "p95" not in loose[1]
    assert relative(
        Sample(1000, 15, 1600.0),
        Sample(4000, 8, 800.0),
        max_p95_ratio=2.5,
        max_error_ratio_margin=0.02,
    ) == ("pass", "1000 requests, error ratio 1.5%, p95 1,600 ms")


def test_a_quiet_stable_revision_is_no_baseline() -> None:
    # Too few stable requests to compare with: only the absolute bounds apply.
    assert relative(Sample(1000, 15, 1600.0), Sample(50, 0, 100.0))[0] == "pass"
    # Streams: no p95 gate, so no p95 comparison either.
    assert relative(Sample(1000, 0, 9000.0), Sample(4000, 0, 800.0), max_p95_ms=None)[0] == ("pass")
