"""Unit tests of the poll schedule (bot/schedule.py): pure arithmetic, no clock, no network."""

from __future__ import annotations

import pytest

from bot.schedule import PollPolicy, PollSchedule, quantile

POLICY = PollPolicy()


def schedule(durations: list[float] | None = None) -> PollSchedule:
    """A schedule with a 90 s prior for `m`, having learned `durations`."""
    s = PollSchedule(POLICY, {"m": 90.0})
    if durations:
        s.learn("m", durations)
    return s


def test_quantile_is_nearest_rank() -> None:
    values = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert quantile(values, 0.0) == 1.0
    assert quantile(values, 0.5) == 3.0
    assert quantile(values, 1.0) == 5.0
    assert quantile([7.0], 0.95) == 7.0


def test_without_history_the_prior_gives_the_window() -> None:
    s = schedule()
    assert s.window("m") == (45.0, 180.0)
    assert s.expected("m") == 90.0
    assert s.window("unknown") == (30.0, 120.0)  # a 60 s prior for a model without one


def test_learned_times_replace_the_prior_after_enough_samples() -> None:
    s = schedule([40.0] * (POLICY.min_samples - 1))
    assert s.window("m") == (45.0, 180.0)  # one short of min_samples: still the prior
    s.learn("m", [40.0])
    assert s.window("m") == (40.0, 40.0) and s.expected("m") == 40.0


def test_negative_durations_are_ignored_and_the_sample_is_bounded() -> None:
    s = PollSchedule(POLICY, {"m": 90.0}, sample=10)
    s.learn("m", [-1.0] * 20 + [float(n) for n in range(30)])
    low, high = s.window("m")
    assert low >= 20.0 and high == 29.0  # only the 10 latest non-negative ones remain


def test_first_poll_is_just_before_the_window_but_never_too_soon() -> None:
    s = schedule([100.0] * 10)
    assert s.first_delay("m") == pytest.approx(100.0 - 0.25 * POLICY.interval)
    fast = schedule([1.0] * 10)
    assert fast.first_delay("m") == POLICY.min_first


def test_polls_slow_down_gradually_past_the_window() -> None:
    s = schedule([100.0] * 10)
    assert s.next_delay("m", 50.0) == POLICY.interval
    assert s.next_delay("m", 100.0) == POLICY.interval
    late = s.next_delay("m", 200.0)
    assert late == pytest.approx(POLICY.interval + POLICY.late_growth * 100.0)
    assert s.next_delay("m", 10_000.0) == POLICY.max_interval


def test_retry_backoff_doubles_with_jitter_and_respects_retry_after() -> None:
    s = schedule()
    for attempt, base in ((1, 2.0), (2, 4.0), (3, 8.0), (20, POLICY.retry_max)):
        delay = s.retry_delay(attempt)
        assert 0.8 * base <= delay <= 1.2 * base
    assert s.retry_delay(1, retry_after=60.0) == 60.0


def test_fixed_and_scaled_policies() -> None:
    fixed = PollSchedule(PollPolicy.fixed(5.0), {"m": 90.0})
    fixed.learn("m", [100.0] * 100)  # never enough samples to learn
    assert fixed.first_delay("m") == 5.0 and fixed.next_delay("m", 1e6) == 5.0
    half = POLICY.scaled(0.5)
    assert half.interval == POLICY.interval / 2 and half.retry_max == POLICY.retry_max / 2
    assert half.min_samples == POLICY.min_samples  # counts are not durations
