"""CPU per delivered job by phase: a profiled run of the bot, its profile cut by entry point.

The bot runs the measured batch once more with cProfile on its event-loop thread (started by
SIGUSR1 just before the batch) and reports each thread's CPU from /proc. The profile's
cumulative time of each phase's entry points, as a share of the loop thread's busy time
(everything but waiting in epoll), is applied to the loop thread's CPU in the unprofiled run
(its whole-process CPU per job minus the other threads'), so the profiler's own overhead
cancels out; the database thread (aiosqlite) and worker threads (`asyncio.to_thread`) are
reported from /proc directly.
"""

from __future__ import annotations

import pstats
from pathlib import Path
from typing import Any

from bot.schedule import PollPolicy
from tests.bench.common import Context, Table, ms
from tests.bench.polls import Batch, run_bot, workload

# phase -> entry points: (path suffix, function name); their cumulative times do not nest.
PHASES: dict[str, list[tuple[str, str]]] = {
    "front end (commands, checks, reservation, follow-up)": [
        ("discord/app_commands/tree.py", "_call"),
        ("cogs/video.py", "on_message"),
    ],
    "submits": [("bot/engine.py", "_submit")],
    "polls (scheduler, requests, writes)": [
        ("bot/engine.py", "_run"),
        ("bot/engine.py", "_poll"),
        ("bot/engine.py", "_flush_running"),
    ],
    "download": [("cogs/delivery.py", "_download"), ("cogs/delivery.py", "_cover")],
    "upload": [("cogs/delivery.py", "_send_anywhere")],
    "status edits": [("cogs/delivery.py", "_edit_status")],
    "queue-position refresh": [("cogs/delivery.py", "_refresh_queue")],
}
IDLE = "<method 'poll' of 'select.epoll' objects>"


def cumulative(stats: dict[Any, Any], entries: list[tuple[str, str]]) -> float:
    """Cumulative seconds of the functions named by (path suffix, name)."""
    total = 0.0
    for (path, _line, name), (_cc, _nc, _tt, ct, _callers) in stats.items():
        if any(path.endswith(suffix) and name == fn for suffix, fn in entries):
            total += ct
    return total


def split(profile: Path, threads: dict[str, float], jobs: int, whole: float) -> dict[str, float]:
    """CPU seconds per job by phase; `whole` is the unprofiled run's CPU per job."""
    stats = pstats.Stats(str(profile)).stats  # type: ignore[attr-defined]
    busy = sum(tt for key, (_cc, _nc, tt, _ct, _c) in stats.items() if key[2] != IDLE)
    others = threads.get("database", 0.0) + threads.get("workers", 0.0)
    loop_cpu = max(0.0, whole * jobs - others)
    out = {}
    for phase, entries in PHASES.items():
        out[phase] = cumulative(stats, entries) / busy * loop_cpu / jobs
    # deliver() holds the download and the upload; the rest of it is the delivery's own work.
    whole = cumulative(stats, [("cogs/delivery.py", "deliver")]) / busy * loop_cpu / jobs
    out["delivery bookkeeping (rows, temp files)"] = max(
        0.0, whole - out["download"] - out["upload"]
    )
    rest = loop_cpu / jobs - sum(out.values())
    out["other on the event loop (discord.py gateway, HTTP, events)"] = rest
    out["database thread (aiosqlite)"] = threads.get("database", 0.0) / jobs
    out["worker threads (image checks, file system)"] = threads.get("workers", 0.0) / jobs
    return out


async def phase_split(ctx: Context, whole: float) -> tuple[Table, dict[str, float]]:
    """Profile the learned schedule over a warm-up and the measured batch; the table by phase
    (`whole`: the unprofiled run's CPU per delivered job)."""
    warm_jobs, jobs = workload(ctx)
    batches = [Batch("profiled warm-up", warm_jobs), Batch("profiled", jobs)]
    profile = ctx.dir("phases") / "bot.prof"
    threads = await run_bot(ctx, "phases", PollPolicy(), batches, profile=profile)
    per_job = split(profile, threads, len(batches[-1].outcomes), whole)
    table = Table(
        ["phase", "CPU per delivered job"],
        title="The bot's CPU per delivered job by phase (profiled repeat, scaled to the run above)",
    )
    table.rows.extend([phase, ms(seconds)] for phase, seconds in per_job.items())
    table.rows.append(["whole process", ms(sum(per_job.values()))])
    return table, per_job
