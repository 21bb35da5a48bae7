"""When to poll a task: learned from when the recent jobs of the same shape finished.

What a poll tells us is an interval, not a time. A task found finished finished *after* the last
poll that still said "processing" (or after the submit, if no poll did) and *before* the poll
that found it finished. Learning the finishing poll's time as the generation time (what this
module did before) is biased late by the poll spacing, and a task already finished at its first
poll says only "before this", so such a schedule moves later at once but earlier only by creeping.

The estimator here is the interval-censored maximum likelihood fit of a log-normal, solved by EM
with a recency weight and a weak prior (a MAP estimate):

- Generation times of one kind of request are close to log-normal (a product of many factors:
  queueing, frames, load), so x = ln t is normal N(mu, sigma). Each job gives an interval
  [ln lower, ln upper] that contains its x (lower = 0 means -inf: "before upper").
- EM: the E-step replaces each x by its conditional mean and second moment given its interval
  under the current (mu, sigma) (moments of a truncated normal); the M-step is the weighted mean
  and variance of those. Each step cannot lower the likelihood; warm-started from the last fit a
  few steps per new job suffice.
- Recency: job i (0 = newest) weighs 0.5 ** (i / half_life), so the fit follows a provider that
  gets faster or slower within about a half-life of jobs, while ~2 * half_life jobs still
  average out the noise in steady state.
- Prior: `prior_weight` pseudo-jobs at the prior's median pull mu, and `sigma_weight` pseudo-jobs
  of the prior spread keep sigma sane while only one or two intervals are known. The prior of a
  request shape is its model's fit; the model's prior is the model table's typical time. So a
  shape never seen starts from its model, and a model never seen from the table.
- Stragglers: jobs whose interval lies wholly past `clip` sigmas are left out of a step while
  they are at most `max_outliers` of the weight (sigma clipping): 2 % of jobs at 1.5-3x the
  median would otherwise widen sigma by half at a spread of 0.1 and cost every job polls. When
  more jobs are that late the provider got slower, and they count.
- Exploration: a job found finished at its first poll is left-censored, and a run of them means
  the window sits too late by an unknown amount: only the likelihood's tail pulls it earlier.
  After `explore_after` such jobs in a row (for the shape), the first poll moves earlier by
  `explore_factor` per job in the run, so it reaches the true window in a few jobs, where
  interval observations pin the fit down again. The run resets at the first job that was still
  processing at its first poll.

From the fit: the first poll just before the `low_quantile` of the fitted distribution, then
every `interval` up to its `high_quantile`, then slower; the task deadline is a high quantile
times a factor (never under `deadline_floor`).
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from statistics import NormalDist
from typing import Any

# The options that change how long a video takes; the rest (style, prompt...) do not.
SHAPE_OPTIONS = ("quality", "duration", "fps", "size", "audio", "resolution")
_STD = NormalDist()
_SQRT2 = math.sqrt(2.0)
_INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)


@dataclass(frozen=True)
class PollPolicy:
    """Tuning of the poll schedule (tests shrink it; the defaults suit real generation times).

    The defaults come from `make bench` (docs/benchmarks.md): a poll every 4.5 s inside the
    window keeps the p95 delivery lag under a fixed 5-second loop's (4.75 s), and starting the
    window at the 5% quantile spends the whole 5% lag budget on the jobs that finish earliest,
    which saves a poll on every other job. The fastest 5% wait a little longer; nobody else does.
    """

    interval: float = 4.5  # spacing while the task is inside its usual finishing window
    min_first: float = 5.0  # never poll sooner than this after submitting
    max_interval: float = 30.0  # spacing long past the usual finishing time
    min_samples: int = 1  # observations needed before the learned fit replaces the prior
    low_quantile: float = 0.05  # the window starts where the fastest 5% of recent jobs finish
    high_quantile: float = 0.95  # the window ends here; past it polls slow down
    first_offset: float = -0.25  # first poll this many intervals after the window starts
    late_growth: float = 0.05  # past the window, spacing grows by this share of the overrun
    prior_low: float = 0.5  # without history: first poll at half the model's typical time
    prior_high: float = 2.0  # ... and the window ends at twice it
    retry_base: float = 2.0  # backoff after a failed submit or poll
    retry_max: float = 120.0
    half_life: float = 16.0  # jobs: the weight of an observation halves every this many jobs
    sample: int = 48  # observations kept per model and per shape
    prior_weight: float = 0.5  # pseudo-jobs of the prior's median in the fit
    prior_sigma: float = 0.3  # the prior's spread of ln(time)
    sigma_weight: float = 0.5  # pseudo-jobs of the prior spread in the fit
    min_sigma: float = 0.03  # never trust a narrower spread than this
    clip: float = 3.5  # jobs surely slower than this many sigmas are stragglers...
    max_outliers: float = 0.1  # ... while they are at most this share of the recent weight
    explore_after: int = 2  # jobs in a row found finished at their first poll before exploring
    explore_factor: float = 0.6  # ... then the first poll moves this much earlier per such job
    deadline_quantile: float = 0.99  # the task deadline: this quantile of the learned times...
    deadline_factor: float = 3.0  # ... times this
    deadline_floor: float = 1800.0  # ... never under 30 minutes

    @classmethod
    def fixed(cls, seconds: float) -> PollPolicy:
        """A plain loop: first poll after `seconds`, then every `seconds` (benchmark baseline)."""
        return cls(
            interval=seconds,
            min_first=seconds,
            max_interval=seconds,
            min_samples=2**31,
            prior_low=0.0,
            prior_high=float("inf"),
            explore_after=2**31,
        )

    def scaled(self, factor: float) -> PollPolicy:
        """The same policy with every duration (priors included) multiplied by `factor`."""
        return replace(
            self,
            interval=self.interval * factor,
            prior_low=self.prior_low * factor,
            prior_high=self.prior_high * factor,
            min_first=self.min_first * factor,
            max_interval=self.max_interval * factor,
            retry_base=self.retry_base * factor,
            retry_max=self.retry_max * factor,
            deadline_floor=self.deadline_floor * factor,
        )


def quantile(values: list[float], q: float) -> float:
    """The q-quantile of a non-empty list (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def shape_key(model: str, options: Mapping[str, Any] | None = None) -> tuple[Any, ...]:
    """The model and the options that change generation time, as a hashable key."""
    given = options or {}
    return (model, *((name, given[name]) for name in SHAPE_OPTIONS if given.get(name) is not None))


@dataclass(frozen=True)
class Fit:
    """A log-normal of generation times: ln t ~ N(mu, sigma)."""

    mu: float
    sigma: float

    def quantile(self, q: float) -> float:
        """Seconds below which a share q of jobs finish."""
        return math.exp(self.mu + self.sigma * _STD.inv_cdf(q))


def _tail(z: float) -> float:
    """P(Z > z) for a standard normal, accurate far into either tail."""
    return 0.5 * math.erfc(z / _SQRT2)


def _pdf(z: float) -> float:
    """Standard normal density (0 at infinities)."""
    return 0.0 if math.isinf(z) else _INV_SQRT2PI * math.exp(-0.5 * z * z)


def truncated_moments(a: float, b: float, mu: float, sigma: float) -> tuple[float, float]:
    """E[x] and E[x^2] of x ~ N(mu, sigma) given a <= x <= b (a may be -inf, b +inf)."""
    alpha, beta = (a - mu) / sigma, (b - mu) / sigma
    # Mass of the interval, computed in the tail that keeps its precision.
    mass = _tail(alpha) - _tail(beta) if alpha > 0 else _tail(-beta) - _tail(-alpha)
    if mass < 1e-12:  # the interval lies far in a tail: use its edge nearest to mu
        if math.isinf(a) or math.isinf(b):
            edge, z = (b, beta) if math.isinf(a) else (a, alpha)
            mean = edge + sigma / z  # inside the edge by the Mills ratio's first term
            return mean, mean * mean + (sigma / z) ** 2
        mean = 0.5 * (a + b)
        return mean, mean * mean + (b - a) ** 2 / 12.0
    pa, pb = _pdf(alpha), _pdf(beta)
    ratio = (pa - pb) / mass
    terms = (0.0 if math.isinf(alpha) else alpha * pa) - (0.0 if math.isinf(beta) else beta * pb)
    mean = mu + sigma * ratio
    var = sigma * sigma * max(1e-9, 1.0 + terms / mass - ratio * ratio)
    return mean, var + mean * mean


def fit_intervals(
    intervals: list[tuple[float, float]],
    weights: list[float],
    prior: Fit,
    policy: PollPolicy,
    start: Fit | None = None,
    steps: int = 30,
) -> Fit:
    """MAP log-normal fit of weighted (lower, upper) seconds intervals by EM (module docstring)."""
    logs = [
        (math.log(lo) if lo > 0 else -math.inf, math.log(max(hi, 1e-6))) for lo, hi in intervals
    ]
    total = sum(weights)
    pw, sw = policy.prior_weight, policy.sigma_weight
    mu, sigma = (start or prior).mu, (start or prior).sigma
    for _ in range(steps):
        first = second = kept = 0.0
        late = policy.clip * sigma + mu
        # Stragglers (a busy provider) would widen the whole window: a few jobs that finished
        # surely past `clip` sigmas are left out; many are a slower provider and stay in.
        outliers = sum(w for (a, _), w in zip(logs, weights, strict=True) if a > late)
        clipping = outliers <= policy.max_outliers * total
        for (a, b), w in zip(logs, weights, strict=True):
            if clipping and a > late:
                continue
            m1, m2 = truncated_moments(a, b, mu, sigma)
            first += w * m1
            second += w * m2
            kept += w
        new_mu = (pw * prior.mu + first) / (pw + kept)
        # The prior's median does not widen the spread: a wrong prior must not look like noise.
        spread = second - 2 * new_mu * first + kept * new_mu * new_mu
        new_sigma = math.sqrt(max(0.0, (sw * prior.sigma**2 + spread) / (sw + kept)))
        new_sigma = max(policy.min_sigma, new_sigma)
        done = abs(new_mu - mu) < 1e-4 and abs(new_sigma - sigma) < 1e-4
        mu, sigma = new_mu, new_sigma
        if done:
            break
    return Fit(mu, sigma)


class _Learned:
    """The recent intervals of one model or shape, and their fit."""

    def __init__(self, size: int) -> None:
        self.intervals: deque[tuple[float, float]] = deque(maxlen=size)
        self.fit: Fit | None = None
        self.prior: Fit | None = None  # the prior the fit was made with
        self.streak = 0  # jobs in a row found finished at their first poll


class PollSchedule:
    """Per-model and per-shape fits of recent generation times, and the delays they imply."""

    def __init__(self, policy: PollPolicy, typical: dict[str, float], sample: int = 0) -> None:
        self.policy = policy
        self._typical = typical
        self._sample = sample or policy.sample
        self._learned: dict[tuple[Any, ...], _Learned] = {}

    # --- learning ---------------------------------------------------------------------------

    def observe(
        self,
        model: str,
        options: Mapping[str, Any] | None,
        lower: float,
        upper: float,
    ) -> None:
        """A job finished after `lower` and before `upper` seconds from submit (lower 0: at its
        first poll)."""
        shape = self._record(model, options, lower, upper)
        if shape is not None:
            self._refit((model,))
            if shape != (model,):
                self._refit(shape)

    def observe_many(self, rows: Iterable[tuple[str, Mapping[str, Any], float, float]]) -> None:
        """Many (model, options, lower, upper) observations, oldest first, fitted once."""
        shapes = {self._record(*row) for row in rows} - {None}
        for key in sorted(shapes, key=len):  # models before the shapes they are the prior of
            self._refit(key[:1])
            self._refit(key)

    def _record(
        self, model: str, options: Mapping[str, Any] | None, lower: float, upper: float
    ) -> tuple[Any, ...] | None:
        """Keep an observation under its model and its shape; the shape key, or None if bad."""
        if upper <= 0 or lower > upper:
            return None
        shape = shape_key(model, options)
        for key in {(model,), shape}:
            learned = self._learned.setdefault(key, _Learned(self._sample))
            learned.intervals.append((max(0.0, lower), upper))
            learned.streak = learned.streak + 1 if lower <= 0 else 0
        return shape

    def learn(self, model: str, durations: Iterable[float]) -> None:
        """Add exactly known generation times (seconds) of a model."""
        for seconds in durations:
            if seconds > 0:
                self.observe(model, None, seconds, seconds)

    def _prior(self, key: tuple[Any, ...]) -> Fit:
        """The model's fit for a shape; the model table's typical time for a model."""
        if len(key) > 1:
            model_fit = self._fit((key[0],))
            if model_fit is not None:
                return model_fit
        typical = self._typical.get(key[0], 60.0)
        return Fit(math.log(typical), self.policy.prior_sigma)

    def _refit(self, key: tuple[Any, ...]) -> Fit | None:
        """Fit the key's recent intervals again (warm-started from its last fit)."""
        learned = self._learned.get(key)
        if learned is None or len(learned.intervals) < self.policy.min_samples:
            return None
        prior = self._prior(key)
        n = len(learned.intervals)
        decay = 0.5 ** (1.0 / self.policy.half_life)
        weights = [decay ** (n - 1 - i) for i in range(n)]
        warm = learned.fit if learned.prior == prior else None
        learned.fit = fit_intervals(list(learned.intervals), weights, prior, self.policy, warm)
        learned.prior = prior
        return learned.fit

    def _fit(self, key: tuple[Any, ...]) -> Fit | None:
        """The current fit of a key (refit if its prior moved), or None without data."""
        learned = self._learned.get(key)
        if learned is None or len(learned.intervals) < self.policy.min_samples:
            return None
        if learned.fit is None or (len(key) > 1 and learned.prior != self._prior(key)):
            return self._refit(key)
        return learned.fit

    def fit(self, model: str, options: Mapping[str, Any] | None = None) -> Fit | None:
        """The learned distribution for a request: its shape's, else its model's, else None."""
        shape = shape_key(model, options)
        return self._fit(shape) or self._fit((model,))

    # --- the schedule -----------------------------------------------------------------------

    def window(self, model: str, options: Mapping[str, Any] | None = None) -> tuple[float, float]:
        """(earliest, latest) time after submit that such jobs usually finish."""
        fit = self.fit(model, options)
        if fit is None:
            typical = self._typical.get(model, 60.0)
            return typical * self.policy.prior_low, typical * self.policy.prior_high
        return fit.quantile(self.policy.low_quantile), fit.quantile(self.policy.high_quantile)

    def expected(self, model: str, options: Mapping[str, Any] | None = None) -> float:
        """The median generation time (or the model's prior)."""
        fit = self.fit(model, options)
        return self._typical.get(model, 60.0) if fit is None else fit.quantile(0.5)

    def first_delay(self, model: str, options: Mapping[str, Any] | None = None) -> float:
        """Seconds from submit to the first poll."""
        low, _ = self.window(model, options)
        first = low + self.policy.first_offset * self.policy.interval
        learned = self._learned.get(shape_key(model, options)) or self._learned.get((model,))
        if learned is not None and learned.streak >= self.policy.explore_after:
            # Jobs keep finishing before their first poll: look earlier until one does not.
            explored = learned.streak - self.policy.explore_after + 1
            first = min(first, low * self.policy.explore_factor**explored)
        return max(self.policy.min_first, first)

    def next_delay(
        self, model: str, elapsed: float, options: Mapping[str, Any] | None = None
    ) -> float:
        """Seconds to the next poll of a task that has run `elapsed` seconds."""
        _, high = self.window(model, options)
        if elapsed <= high:
            return self.policy.interval
        # Past the usual window the task is an outlier: slow down gradually.
        late = self.policy.interval + self.policy.late_growth * (elapsed - high)
        return min(self.policy.max_interval, late)

    def deadline(self, model: str, options: Mapping[str, Any] | None = None) -> float:
        """Seconds after submit past which a task is presumed lost (the task-deadline feature)."""
        fit = self.fit(model, options)
        if fit is None:
            high = self._typical.get(model, 60.0) * self.policy.prior_high
        else:
            high = fit.quantile(self.policy.deadline_quantile)
        return max(self.policy.deadline_floor, high * self.policy.deadline_factor)

    def retry_delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Backoff with jitter after a failure, never sooner than Retry-After."""
        base = min(self.policy.retry_max, self.policy.retry_base * 2 ** max(0, attempt - 1))
        delay = base * random.uniform(0.8, 1.2)  # noqa: S311 (jitter, not crypto)
        return max(delay, retry_after or 0.0)


def queue_start_delay(position: int, busy: Iterable[float], slots: int, per_job: float) -> float:
    """Seconds until the job at 1-based `position` in the queue starts.

    `busy` holds the seconds left for each job holding a provider slot; a slot is free when it
    is not busy. Each job ahead takes a free slot as it frees and holds it `per_job` seconds
    (the learned time of the waiting job's kind: the best guess for its neighbours too).
    """
    held = sorted(max(0.0, b) for b in busy)[: max(1, slots)]
    frees = [0.0] * (max(1, slots) - len(held)) + held
    heapq.heapify(frees)
    for _ in range(max(0, position - 1)):
        heapq.heappush(frees, heapq.heappop(frees) + per_job)
    return frees[0]
