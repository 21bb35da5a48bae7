"""The poll schedule's estimator on synthetic streams of generation times (no I/O, no clock)."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from bot.schedule import Fit, PollPolicy, PollSchedule, fit_intervals, shape_key, truncated_moments
from tests.schedsim import lognormal, mean_by_index, oracle, prior_wrong, settled_after, stream

POLICY = PollPolicy()


def test_truncated_moments_match_numerical_integration() -> None:
    """E[x] and E[x^2] on an interval, a left-censored and a far-tail interval."""
    for a, b in ((-0.5, 0.7), (-math.inf, -1.0), (1.0, math.inf)):
        lo, hi = max(a, -12.0), min(b, 12.0)
        steps = 20_000
        xs = [lo + (hi - lo) * (i + 0.5) / steps for i in range(steps)]
        dens = [math.exp(-0.5 * x * x) for x in xs]
        mass = sum(dens)
        mean = sum(x * d for x, d in zip(xs, dens, strict=True)) / mass
        second = sum(x * x * d for x, d in zip(xs, dens, strict=True)) / mass
        got = truncated_moments(a, b, 0.0, 1.0)
        assert got == pytest.approx((mean, second), abs=1e-3)
    mean, _ = truncated_moments(-math.inf, -40.0, 0.0, 1.0)  # no mass left at all: the edge
    assert -40.1 < mean < -40.0


def test_fit_recovers_the_distribution_from_intervals() -> None:
    """5-s wide intervals around log-normal times give back median and spread."""
    rng = random.Random(3)
    intervals = []
    for _ in range(400):
        t = 100.0 * math.exp(rng.gauss(0.0, 0.2))
        lower = 5.0 * math.floor(t / 5.0)
        intervals.append((lower, lower + 5.0))
    fit = fit_intervals(intervals, [1.0] * 400, Fit(math.log(300.0), 0.3), POLICY, steps=200)
    assert fit.quantile(0.5) == pytest.approx(100.0, rel=0.03)
    assert fit.sigma == pytest.approx(0.2, rel=0.15)


def test_left_censored_only_moves_earlier_than_the_observed_bound() -> None:
    """Jobs found finished at the first poll pull the fit below that poll, not just to it."""
    schedule = PollSchedule(POLICY, {"m": 400.0})
    for _ in range(3):
        schedule.observe("m", None, 0.0, 200.0)
    assert schedule.expected("m") < 200.0


@pytest.mark.parametrize("ratio", [0.25, 2.0])
def test_a_wrong_prior_is_corrected_within_ten_jobs(ratio: float) -> None:
    """True times 4x faster / 2x slower than the prior: the mean lag across independent
    streams is back within 10 % of the steady state's within 10 jobs."""
    result = prior_wrong(POLICY, ratio, runs=150, jobs=25)
    assert result["jobs_to_settle"] <= 10


def test_exploration_moves_the_first_poll_earlier_fast() -> None:
    """Jobs found finished at their first poll again and again: the first poll halves quickly."""
    schedule = PollSchedule(POLICY, {"m": 600.0})
    firsts = []
    for _ in range(4):
        first = schedule.first_delay("m")
        firsts.append(first)
        schedule.observe("m", None, 0.0, first)  # found finished at the first poll
    assert firsts[-1] < firsts[0] / 4


@pytest.mark.parametrize("sigma", [0.1, 0.2, 0.3])
def test_steady_state_close_to_an_oracle(sigma: float) -> None:
    """In steady state: polls per job within 15 % of a schedule that knows the distribution,
    and p95 lag no worse than a fixed 5-s loop's (4.75 s)."""
    draw = lognormal(120.0, sigma, 5)
    learned = stream(PollSchedule(POLICY, {"m": 120.0}), draw, 1500)[300:]
    known = stream(oracle(POLICY, Fit(math.log(120.0), sigma)), lognormal(120.0, sigma, 5), 1500)
    polls = statistics.fmean(o.polls for o in learned)
    assert polls <= 1.15 * statistics.fmean(o.polls for o in known[300:])
    assert sorted(o.lag for o in learned)[int(0.95 * len(learned))] <= 4.75


def test_following_a_provider_that_gets_faster_and_slower() -> None:
    """From a learned 120 s to 30 s and back to 120 s: each settles within ten jobs."""
    runs = []
    for seed in range(60):
        schedule = PollSchedule(POLICY, {"m": 120.0})
        run = stream(schedule, lognormal(120.0, 0.2, seed), 60)
        run += stream(schedule, lognormal(30.0, 0.2, seed + 100), 30)
        run += stream(schedule, lognormal(120.0, 0.2, seed + 200), 30)
        runs.append(run)
    curve = mean_by_index(runs, "lag")
    steady = statistics.fmean(curve[30:60])
    assert settled_after(curve[60:90], steady, 0.25) <= 10
    assert settled_after(curve[90:], steady, 0.25) <= 10


def test_shapes_learn_apart_and_fall_back_to_the_model_then_the_prior() -> None:
    """Speed-quality jobs and quality jobs of one model get their own windows."""
    schedule = PollSchedule(POLICY, {"m": 100.0})
    fast, slow = {"quality": "speed"}, {"quality": "quality", "duration": 10}
    for i in range(30):
        schedule.observe("m", fast, 28.0 + i % 3, 31.0 + i % 3)
        schedule.observe("m", slow, 148.0 + i % 5, 152.0 + i % 5)
    assert schedule.expected("m", fast) == pytest.approx(30.0, rel=0.1)
    assert schedule.expected("m", slow) == pytest.approx(150.0, rel=0.1)
    assert schedule.first_delay("m", fast) < schedule.first_delay("m", slow) / 3
    # A shape never seen: the model's fit (between the two); a model never seen: the prior.
    assert 30.0 < schedule.expected("m", {"fps": 60}) < 150.0
    assert schedule.expected("other") == 60.0
    # Options that do not change generation time share the shape.
    assert shape_key("m", {**fast, "style": "anime"}) == shape_key("m", fast)


def test_deadline_is_a_high_quantile_times_a_factor_with_a_floor() -> None:
    """The task deadline: 30 min at least; 3x the learned 99th percentile for slow shapes."""
    schedule = PollSchedule(POLICY, {"m": 100.0})
    assert schedule.deadline("m") == 1800.0
    for i in range(40):
        schedule.observe("m", {"duration": 10}, 995.0 + i % 7, 1000.0 + i % 7)
    fit = schedule.fit("m", {"duration": 10})
    assert fit is not None
    expected = 3.0 * fit.quantile(0.99)
    assert schedule.deadline("m", {"duration": 10}) == pytest.approx(expected)
    assert expected > 3000.0
    assert schedule.deadline("m", {"duration": 5}) >= 1800.0


def test_recovery_in_bulk_matches_one_by_one() -> None:
    """observe_many (used at start) gives the fit observing one at a time would."""
    rows = [("m", {"quality": "speed"}, 40.0 + i % 4, 44.0 + i % 4) for i in range(30)]
    one, bulk = PollSchedule(POLICY, {"m": 100.0}), PollSchedule(POLICY, {"m": 100.0})
    for row in rows:
        one.observe(*row)
    bulk.observe_many(rows)
    assert bulk.expected("m", {"quality": "speed"}) == pytest.approx(
        one.expected("m", {"quality": "speed"}), rel=0.01
    )


def test_fixed_policy_ignores_learning() -> None:
    """The benchmark's fixed loops stay fixed whatever they observe."""
    schedule = PollSchedule(PollPolicy.fixed(5.0), {"m": 100.0})
    for _ in range(10):
        schedule.observe("m", None, 0.0, 5.0)
    assert schedule.first_delay("m") == 5.0
    assert schedule.next_delay("m", 500.0) == 5.0


def test_retry_backoff_doubles_with_jitter_and_respects_retry_after() -> None:
    s = PollSchedule(POLICY, {"m": 90.0})
    for attempt, base in ((1, 2.0), (2, 4.0), (3, 8.0), (20, POLICY.retry_max)):
        delay = s.retry_delay(attempt)
        assert 0.8 * base <= delay <= 1.2 * base
    assert s.retry_delay(1, retry_after=60.0) == 60.0


def test_scaled_policy_scales_durations_not_counts() -> None:
    half = POLICY.scaled(0.5)
    assert half.interval == POLICY.interval / 2 and half.retry_max == POLICY.retry_max / 2
    assert half.min_samples == POLICY.min_samples
