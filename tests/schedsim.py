"""Replays of the poll schedule over synthetic generation times (no I/O, real seconds).

Shared by tests/test_schedule.py and the benchmark's schedule figures: each job is polled as the
engine polls it (first poll, then `next_delay` until it is found finished), and the schedule
learns the interval the engine would record.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.schedule import Fit, PollPolicy, PollSchedule


@dataclass(frozen=True)
class Outcome:
    """One job's polls and delay between finishing and being found finished."""

    polls: int
    lag: float


def poll_job(schedule: PollSchedule, model: str, seconds: float, learn: bool = True) -> Outcome:
    """Poll one job that takes `seconds` as the engine would, learning what it learns."""
    at, polls, running = schedule.first_delay(model), 1, 0.0
    while at < seconds:
        running = at
        at += schedule.next_delay(model, at)
        polls += 1
    if learn:
        schedule.observe(model, None, running, at)
    return Outcome(polls, at - seconds)


def oracle(policy: PollPolicy, fit: Fit) -> PollSchedule:
    """A schedule that knows the true distribution (and learns nothing)."""
    schedule = PollSchedule(policy, {})
    schedule.fit = lambda model, options=None: fit  # type: ignore[method-assign]
    return schedule


def lognormal(median: float, sigma: float, seed: int) -> Callable[[], float]:
    """A seeded source of log-normal generation times."""
    rng = random.Random(seed)
    return lambda: median * math.exp(rng.gauss(0.0, sigma))


def stream(
    schedule: PollSchedule, draw: Callable[[], float], count: int, model: str = "m"
) -> list[Outcome]:
    """`count` jobs one after another through one schedule."""
    return [poll_job(schedule, model, draw()) for _ in range(count)]


def mean_by_index(runs: Sequence[Sequence[Outcome]], field: str) -> list[float]:
    """The mean of a field at each job index across independent runs."""
    return [statistics.fmean(getattr(run[i], field) for run in runs) for i in range(len(runs[0]))]


def settled_after(
    curve: Sequence[float], steady: float, tolerance: float = 0.1, window: int = 5
) -> int:
    """Jobs before a mean-lag curve is back, and stays, within `tolerance` of `steady`; each
    point is averaged with the next `window - 1` (the lag of one job is noisy: ~uniform over
    a poll interval, with a long tail past the window)."""
    smooth = [statistics.fmean(curve[k : k + window]) for k in range(len(curve) - window + 1)]
    for k in range(len(smooth)):
        if all(value <= steady * (1 + tolerance) for value in smooth[k:]):
            return k
    return len(curve)


def prior_wrong(
    policy: PollPolicy,
    ratio: float,
    *,
    prior: float = 120.0,
    sigma: float = 0.2,
    runs: int = 100,
    jobs: int = 30,
) -> dict[str, float]:
    """True times `ratio` x the prior's: jobs until the mean lag (across `runs` independent
    streams) is within 10 % of the steady state's, and polls per job and p95 lag until then."""
    median = prior * ratio
    wrong = [
        stream(PollSchedule(policy, {"m": prior}), lognormal(median, sigma, seed), jobs)
        for seed in range(runs)
    ]
    steady_runs = [
        stream(PollSchedule(policy, {"m": median}), lognormal(median, sigma, 1000 + seed), 200)
        for seed in range(max(5, runs // 10))
    ]
    steady = statistics.fmean(o.lag for run in steady_runs for o in run[50:])
    settled = settled_after(mean_by_index(wrong, "lag"), steady)
    meanwhile = [o for run in wrong for o in run[: max(1, settled)]]
    first_ten = [o for run in wrong for o in run[:10]]
    lags = sorted(o.lag for o in meanwhile)
    return {
        "ratio": ratio,
        "prior": prior,
        "jobs_to_settle": settled,
        "polls_first_ten": statistics.fmean(o.polls for o in first_ten),
        "p95_lag_first_ten": sorted(o.lag for o in first_ten)[int(0.95 * len(first_ten))],
        "steady_lag": steady,
        "polls_meanwhile": statistics.fmean(o.polls for o in meanwhile),
        "p95_lag_meanwhile": lags[min(len(lags) - 1, int(0.95 * len(lags)))],
        "steady_polls": statistics.fmean(o.polls for run in steady_runs for o in run[50:]),
    }
