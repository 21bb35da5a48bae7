"""When to poll a task: learned from how long the model's recent jobs took."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, replace


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
    min_samples: int = 5  # durations needed before the learned window replaces the prior
    low_quantile: float = 0.05  # the window starts where the fastest 5% of recent jobs finished
    high_quantile: float = 0.95  # the window ends here; past it polls slow down
    first_offset: float = -0.25  # first poll this many intervals after the window starts
    late_growth: float = 0.05  # past the window, spacing grows by this share of the overrun
    prior_low: float = 0.5  # without history: first poll at half the model's typical time
    prior_high: float = 2.0  # ... and the window ends at twice it
    retry_base: float = 2.0  # backoff after a failed submit or poll
    retry_max: float = 120.0
    deadline_floor: float = 1800.0  # TASK_DEADLINE_MINUTES: least time a task gets
    deadline_factor: float = 3.0  # ... or this many times the model's usual slowest time

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


class PollSchedule:
    """Per-model windows of recent generation times, and the delays they imply."""

    def __init__(self, policy: PollPolicy, typical: dict[str, float], sample: int = 50) -> None:
        self.policy = policy
        self._typical = typical
        self._seen: dict[str, deque[float]] = {}
        self._sample = sample

    def learn(self, model: str, durations: Iterable[float]) -> None:
        """Add observed generation times (seconds) of a model."""
        seen = self._seen.setdefault(model, deque(maxlen=self._sample))
        seen.extend(d for d in durations if d >= 0)

    def window(self, model: str) -> tuple[float, float]:
        """(earliest, latest) time after submit that this model's jobs usually finish."""
        seen = list(self._seen.get(model, ()))
        if len(seen) >= self.policy.min_samples:
            return quantile(seen, self.policy.low_quantile), quantile(
                seen, self.policy.high_quantile
            )
        typical = self._typical.get(model, 60.0)
        return typical * self.policy.prior_low, typical * self.policy.prior_high

    def expected(self, model: str) -> float:
        """The model's median generation time (or its prior)."""
        seen = list(self._seen.get(model, ()))
        if len(seen) >= self.policy.min_samples:
            return quantile(seen, 0.5)
        return self._typical.get(model, 60.0)

    def first_delay(self, model: str) -> float:
        """Seconds from submit to the first poll."""
        low, _ = self.window(model)
        return max(self.policy.min_first, low + self.policy.first_offset * self.policy.interval)

    def next_delay(self, model: str, elapsed: float) -> float:
        """Seconds to the next poll of a task that has run `elapsed` seconds."""
        _, high = self.window(model)
        if elapsed <= high:
            return self.policy.interval
        # Past the usual window the task is an outlier: slow down gradually.
        late = self.policy.interval + self.policy.late_growth * (elapsed - high)
        return min(self.policy.max_interval, late)

    def deadline(self, model: str) -> float:
        """Seconds after submit past which a task is given up: the floor, or k × the learned
        high quantile (the prior's, before enough jobs were seen) if that is longer."""
        _, high = self.window(model)
        return max(self.policy.deadline_floor, self.policy.deadline_factor * high)

    def retry_delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Backoff with jitter after a failure, never sooner than Retry-After."""
        base = min(self.policy.retry_max, self.policy.retry_base * 2 ** max(0, attempt - 1))
        delay = base * random.uniform(0.8, 1.2)  # noqa: S311 (jitter, not crypto)
        return max(delay, retry_after or 0.0)
