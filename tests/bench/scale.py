"""Scale: 10,000 jobs in flight at once; memory and CPU between polls, restart and resume."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

from bot.schedule import PollPolicy
from storage.credits import day_key
from storage.db import Database
from storage.rows import NewJob, insert_params
from storage.sql import INSERT_JOB
from tests.bench.common import Context, Figure, Goal, Table, fmt
from tests.bench.probe import scheduler_probe
from tests.bench.proc import Child, start_child
from tests.bench.world import db_rows, policy_config
from tests.fakes.zai import FakeZai

JOBS = 10_000
IDLE_WINDOW = 10.0
GOAL_RSS_MB = 250.0
GOAL_CPU = 0.05
SDK_CPU_PER_REQUEST = 1 / 1_200  # the zai-sdk figure, unless the requests figure ran
SUBMIT_TIMEOUT = 300.0


async def _fill(path: Path, count: int) -> None:
    """`count` queued text jobs of 100 members, inserted in one transaction."""
    db = await Database.open(path)
    now = time.time()
    rows = []
    for i in range(count):
        new = NewJob(
            guild_id=1,
            channel_id=2,
            user_id=1000 + i % 100,
            model="cogvideox-3",
            mode="text",
            prompt=f"scale job {i}",
            options={},
            origin="slash",
            cost=1,
            request_id=uuid.uuid4().hex,
        )
        rows.append(insert_params(new, day_key(now), now))
    async with db.transaction() as conn:
        await conn.executemany(INSERT_JOB, rows)
    await db.close()


GOAL_CPU_PER_POLL = 0.001  # issue 11: at most 1 ms of CPU per poll at 10,000 jobs


def _count(path: Path, state: str) -> int:
    """Jobs in a state."""
    return db_rows(path, "SELECT count(*) FROM jobs WHERE state = ?", (state,))[0][0]


def _set_next_poll(path: Path, at: float) -> None:
    """Move every processing job's next poll (the scheduler reads it at start)."""
    conn = sqlite3.connect(path, timeout=30)
    with conn:
        conn.execute("UPDATE jobs SET next_poll_at = ? WHERE state = 'processing'", (at,))
    conn.close()


async def _until(check: Any, timeout: float, every: float = 0.5) -> bool:
    """Re-check `check()` until true; False after `timeout`."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(every)
    return True


async def _engine(ctx: Context, fake: FakeZai, db_path: Path, name: str) -> tuple[Child, float]:
    """Start the engine child; (child, seconds from spawn to the engine started)."""
    config = {
        "settings": {
            "discord_token": "unused-discord-token",
            "zai_api_key": fake.api_key,
            "zai_base_url": fake.base_url,
            "database_url": f"sqlite:///{db_path}",
            "zai_max_concurrent_tasks": JOBS,
            "max_inflight_per_user": JOBS,
            "log_level": "INFO",
        },
        "policy": policy_config(PollPolicy()),
    }
    spawned = time.monotonic()
    proc = await start_child("engine", config, ctx.dir(name))
    await proc.event("ready", timeout=120)
    return proc, time.monotonic() - spawned


async def _submit_phase(ctx: Context, fake: FakeZai, db_path: Path, count: int) -> dict[str, Any]:
    """Start on `count` queued jobs; wait until all are processing at the provider."""
    proc, ready = await _engine(ctx, fake, db_path, "scale-submit")
    start, cpu = time.monotonic(), proc.cpu()
    done = await _until(lambda: _count(db_path, "processing") >= count, SUBMIT_TIMEOUT)
    result = {
        "all_submitted": done,
        "processing": _count(db_path, "processing"),
        "submit_s": time.monotonic() - start,
        "submit_cpu_s": proc.cpu() - cpu,
        "peak_kib": proc.peak_kib(),
        "ready_s": ready,
    }
    await proc.stop()
    return result


async def _idle_phase(ctx: Context, fake: FakeZai, db_path: Path) -> dict[str, Any]:
    """Restart with every next poll two minutes away; CPU and memory over an idle window."""
    _set_next_poll(db_path, time.time() + 120)
    proc, ready = await _engine(ctx, fake, db_path, "scale-idle")
    await asyncio.sleep(2.0)
    polls, cpu, start = sum(fake.polls.values()), proc.cpu(), time.monotonic()
    await asyncio.sleep(IDLE_WINDOW)
    used, wall = proc.cpu() - cpu, time.monotonic() - start
    result = {
        "restart_ready_s": ready,
        "idle_cpu_share": used / wall,
        "idle_rss_kib": proc.rss_kib(),
        "polls_in_window": sum(fake.polls.values()) - polls,
    }
    await proc.stop()
    return result


async def _resume_phase(ctx: Context, fake: FakeZai, db_path: Path, count: int) -> dict[str, Any]:
    """Restart with every poll overdue; time until each job was polled again."""
    _set_next_poll(db_path, 0.0)
    before = dict(fake.polls)
    spawned = time.monotonic()
    proc, ready = await _engine(ctx, fake, db_path, "scale-resume")
    cpu = proc.cpu()

    def resumed() -> int:
        return sum(1 for task, n in fake.polls.items() if n > before.get(task, 0))

    done = await _until(lambda: resumed() >= count, SUBMIT_TIMEOUT, every=0.2)
    result = {
        "restart_ready_s": ready,
        "resumed_all": done,
        "resumed": resumed(),
        "resume_s": time.monotonic() - spawned,
        "resume_cpu_s": proc.cpu() - cpu,
        "peak_kib": proc.peak_kib(),
        "rss_kib": proc.rss_kib(),
    }
    await proc.stop()
    return result


async def scale_figure(ctx: Context) -> Figure:
    """10,000 jobs held as processing by the fake; the engine alone in its own process."""
    count = 2_000 if ctx.quick else JOBS
    db_path = ctx.dir("scale") / "bot.db"
    await _fill(db_path, count)
    async with FakeZai(hold_all=True, concurrency=10 * count) as fake:
        submit = await _submit_phase(ctx, fake, db_path, count)
        idle = await _idle_phase(ctx, fake, db_path)
        resume = await _resume_phase(ctx, fake, db_path, count)
    probe = await scheduler_probe(ctx)
    return _figure(ctx, count, submit, idle, resume, probe)


def _figure(
    ctx: Context,
    count: int,
    submit: dict[str, Any],
    idle: dict[str, Any],
    resume: dict[str, Any],
    probe: dict[str, Any],
) -> Figure:
    """Tables, goals and notes of the scale figure."""
    policy = PollPolicy()
    per_poll = resume["resume_cpu_s"] / max(1, resume["resumed"])
    sdk_per_request = ctx.cache.get("sdk_cpu_per_request", SDK_CPU_PER_REQUEST)
    window_share = per_poll * count / policy.interval
    late_share = per_poll * count / policy.max_interval
    loop_share = sdk_per_request * count / 5.0
    rss_mb = idle["idle_rss_kib"] * 1024 / 1e6
    table = Table(["measure", "bot", "usual way (task per job, 5-s loop)"])
    table.rows.extend(
        [
            ["jobs in flight", f"{count:,}", f"{count:,}"],
            [
                f"submitting all (from {count:,} queued)",
                f"{fmt(submit['submit_s'], 1)} s, peak RSS {fmt(submit['peak_kib'] / 1024, 0)} MiB",
                "n/a",
            ],
            ["RSS between polls", f"{fmt(rss_mb, 0)} MB", "not measured"],
            [
                f"CPU between polls ({IDLE_WINDOW:.0f} s window, no poll due)",
                f"{fmt(100 * idle['idle_cpu_share'], 1)} % of a core",
                "~0 (sleeping tasks)",
            ],
            [
                "restart: process start → scheduler running",
                f"{fmt(idle['restart_ready_s'], 2)} s",
                "jobs lost (held in memory)",
            ],
            [
                f"restart with every poll overdue → all {count:,} polled again",
                f"{fmt(resume['resume_s'], 1)} s ({resume['resumed']:,} resumed)",
                "jobs lost",
            ],
            [
                "CPU per poll at this scale",
                f"{fmt(per_poll * 1000, 2)} ms",
                f"{fmt(sdk_per_request * 1000, 2)} ms",
            ],
            [
                "CPU while polling, implied",
                f"{fmt(100 * window_share, 0)} % of a core inside the window (every "
                f"{policy.interval:g} s), {fmt(100 * late_share, 0)} % past it (every "
                f"{policy.max_interval:g} s)",
                f"{fmt(100 * loop_share, 0)} % of a core (every 5 s)",
            ],
        ]
    )
    goals = [
        Goal(f"RSS under {GOAL_RSS_MB:.0f} MB", rss_mb < GOAL_RSS_MB, f"{rss_mb:.0f} MB"),
        Goal(
            f"CPU between polls under {GOAL_CPU:.0%} of one core",
            idle["idle_cpu_share"] < GOAL_CPU,
            f"{100 * idle['idle_cpu_share']:.1f} %",
        ),
        Goal(
            f"CPU per poll at most {GOAL_CPU_PER_POLL * 1000:.0f} ms",
            per_poll <= GOAL_CPU_PER_POLL,
            f"{per_poll * 1000:.2f} ms (2.23 ms before issue 11)",
        ),
    ]
    method = (
        f"{count:,} queued text jobs are written to a fresh database, then the bot's engine "
        "(database, HTTP client, scheduler; no Discord) starts in its own process with "
        f"ZAI_MAX_CONCURRENT_TASKS={count} and the real, unscaled poll policy, and submits "
        "them all to the fake, which holds every task as processing. Then it is stopped and "
        "restarted twice on the same database: once with every job's next poll two minutes "
        "away (CPU and RSS over an idle window: the cost of carrying the jobs), once with "
        "every poll overdue (time until each job was polled again, and CPU per poll). The "
        "usual way keeps one task (or thread) per job in memory, so a restart loses them; "
        "its CPU per request is zai-sdk's from the requests figure."
    )
    note = (
        f"Carrying {count:,} jobs costs nothing between polls (the schedule lives in the "
        "database; no task or timer per job), but polling them does: at "
        f"{per_poll * 1000:.1f} ms of CPU per poll, {count:,} jobs inside their window would "
        f"need {window_share:.1f} cores, and even past it ({policy.max_interval:g} s apart) "
        f"{100 * late_share:.0f} % of one. A poll's answer no longer wakes a scheduler pass "
        f"({probe['passes_per_poll']:.1f} passes per poll in the cost figure's probe; with "
        "polls left due, one pass starts a batch of them), and the answers that say "
        "'processing' are written in one transaction per batch, so a poll costs about its "
        "HTTP request: a profile of the engine polling alone (the engine child's `profile` "
        "option) puts ~90 % of a poll's CPU in `httpx.AsyncClient.get`, where httpcore's "
        "pool checks every idle connection's socket through anyio on each request (the "
        "requests figure has httpx at 1.1-1.2 ms per request on a quiet machine, more while "
        "other processes compete for the two cores). Why the 1 ms goal is missed, and what "
        "would close it: the scheduler's own share is a few per cent, so only a cheaper HTTP "
        "client for the provider calls (aiohttp, which discord.py already brings, parses in "
        "C; `bot/zai.py`) would, or a longer `max_interval` for jobs far past their window "
        "(Z.AI has no batch status endpoint)."
    )
    return Figure(
        "scale",
        f"Scale: {count:,} jobs in flight",
        method,
        [table],
        goals,
        notes=[note],
        raw={
            "jobs": count,
            "submit": submit,
            "idle": idle,
            "resume": resume,
            "cpu_per_poll": per_poll,
        },
    )
