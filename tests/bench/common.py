"""Shared pieces of the benchmark: the time factor, statistics, the machine, result shapes."""

from __future__ import annotations

import datetime as dt
import math
import os
import platform
import resource
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
# Real-world seconds x TIME_FACTOR = seconds in the benchmark: generation times, the bot's poll
# policy and the baselines' loop intervals are all scaled by it, so every ratio is preserved.
TIME_FACTOR = 0.1


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) with linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(values: Sequence[float]) -> dict[str, float]:
    """Count, mean, median, p95, p99 and max of some values."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "mean": statistics.fmean(values),
        "p50": percentile(values, 0.5),
        "p95": percentile(values, 0.95),
        "p99": percentile(values, 0.99),
        "max": max(values),
    }


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory_kib = int(line.split()[1])
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def machine_busy_seconds() -> float:
    """CPU seconds every process on the machine has used since boot (from /proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_seconds() -> float:
    """CPU seconds of the benchmark: this process and its ended children."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


@dataclass(frozen=True)
class Goal:
    """One target of the issue and whether this run met it."""

    text: str
    met: bool
    note: str = ""


@dataclass
class Table:
    """A table of the report: a header and rows of already formatted cells."""

    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    title: str = ""


@dataclass
class Figure:
    """One figure: how it was measured, its tables, its goals and the raw numbers."""

    key: str
    title: str
    method: str
    tables: list[Table] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    other_load: float = 0.0  # cores used by processes outside the benchmark meanwhile
    measured_at: str = ""


def fmt(value: float, digits: int = 2) -> str:
    """A number for a table cell ('n/a' for NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def ms(seconds: float) -> str:
    """Seconds as a millisecond cell."""
    return fmt(seconds * 1000, 0) + " ms"


def mib(kib: float) -> str:
    """KiB as a MiB cell."""
    return fmt(kib / 1024, 1) + " MiB"


@dataclass
class Context:
    """What every figure gets: a scratch directory, the time factor, shared runs."""

    workdir: Path
    factor: float = TIME_FACTOR
    quick: bool = False  # smaller sizes, for trying the bench out
    cache: dict[str, Any] = field(default_factory=dict)

    def dir(self, name: str) -> Path:
        """A fresh scratch directory for one run."""
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path
