"""The jobs every contender gets: models, prompts and seeded generation times."""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from typing import Any

# Real-world seconds. Medians differ per model on purpose (and differ from the bot's priors in
# bot/models.py), so the bot has to learn them.
MEDIANS: dict[str, float] = {"cogvideox-3": 120.0, "viduq1-text": 75.0, "vidu2-image": 50.0}
SIGMA = 0.2  # log-normal spread of one model's times (CV ~20%)
STRAGGLERS = 0.02  # share of jobs that take 1.5-3x their model's median (a busy provider)
MIN_SECONDS, MAX_SECONDS = 30.0, 300.0
PROMPT_TAG = re.compile(r"bench job #(\d+)")


@dataclass(frozen=True)
class BenchJob:
    """One request: its index (carried in the prompt), model and real-world generation time."""

    index: int
    model: str
    seconds: float

    @property
    def prompt(self) -> str:
        """The prompt, which carries the index so the fake can look the job up."""
        return f"a lighthouse at dusk, waves, bench job #{self.index}"

    @property
    def subcommand(self) -> str:
        """The /video sub-command that makes this model's request."""
        return "image" if self.model == "vidu2-image" else "text"


def draw_seconds(rng: random.Random, model: str, sigma: float = SIGMA) -> float:
    """One generation time of a model (real-world seconds)."""
    median = MEDIANS[model]
    if rng.random() < STRAGGLERS:
        value = median * rng.uniform(1.5, 3.0)
    else:
        value = median * math.exp(rng.gauss(0.0, sigma))
    return min(MAX_SECONDS, max(MIN_SECONDS, value))


def make_jobs(count: int, seed: int, first_index: int = 0, sigma: float = SIGMA) -> list[BenchJob]:
    """`count` jobs, models in rotation, times drawn from a seeded generator."""
    rng = random.Random(seed)
    names = list(MEDIANS)
    return [
        BenchJob(i, names[i % len(names)], draw_seconds(rng, names[i % len(names)], sigma))
        for i in range(first_index, first_index + count)
    ]


class GenerationTimes:
    """The fake's `generation_seconds` callable: a job's time, scaled by the time factor."""

    def __init__(self, jobs: list[BenchJob], factor: float, default: float = 1.0) -> None:
        self.seconds = {job.index: job.seconds * factor for job in jobs}
        self.default = default

    def __call__(self, model: str, body: dict[str, Any]) -> float:
        """Seconds the fake holds the task as PROCESSING."""
        match = PROMPT_TAG.search(str(body.get("prompt") or ""))
        if match is None:
            return self.default
        return self.seconds.get(int(match.group(1)), self.default)
