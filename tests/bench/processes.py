"""Scale-out: delivered jobs per minute and CPU per job with 1, 2 and 4 bot processes on
PostgreSQL, against SQLite in one process.

The bots are the crash tests' children (`python -m tests.procs`: the real bot, polls scaled
down) against the fakes of this process; the fake provider takes every task at once (its
concurrency, and ZAI_MAX_CONCURRENT_TASKS, raised past the job count). The jobs are written to
the database queued (as the front end of any process writes them), so the figure is the work
after admission: claim, submit, poll, download, upload, record.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from storage.db import Database
from storage.jobs import JobStore, NewJob
from tests.bench.common import Context, Figure, Table, fmt
from tests.bench.proc import cpu_seconds_of
from tests.fakes.discord import FakeDiscord
from tests.fakes.zai import FakeZai
from tests.procs import BotProcess, bot_env, query, start_bot, start_more
from tests.util import eventually

JOBS = 300
GENERATION = 1.0  # seconds the fake takes per task
START_SECONDS = 8.0  # allowed per process to start and connect
RUNS = (("sqlite", 1), ("postgresql", 1), ("postgresql", 2), ("postgresql", 4))
TEST_URL = os.environ.get("TEST_DATABASE_URL", "")


async def processes_figure(ctx: Context) -> Figure:
    """Run each configuration once and tabulate."""
    jobs = 60 if ctx.quick else JOBS
    table = Table(["database", "processes", "jobs", "delivered per minute", "CPU per job"])
    raw: dict[str, Any] = {}
    for backend, count in RUNS:
        if backend == "postgresql" and not TEST_URL:
            continue
        result = await _run(ctx.dir(f"procs-{backend}-{count}"), backend, count, jobs)
        raw[f"{backend}-{count}"] = result
        table.rows.append(_row(backend, count, result))
    notes = [] if TEST_URL else ["TEST_DATABASE_URL was not set: the PostgreSQL rows are missing."]
    return Figure("processes", "Scale-out: delivered jobs per minute by processes", _method(jobs),
                  [table], notes=notes, raw=raw)  # fmt: skip


def _row(backend: str, count: int, result: dict[str, Any]) -> list[str]:
    """One table row."""
    return [backend, str(count), str(result["jobs"]), fmt(result["per_minute"], 0),
            fmt(result["cpu_per_job"] * 1000, 1) + " ms"]  # fmt: skip


def _method(jobs: int) -> str:
    """How the figure is measured."""
    return (
        f"{jobs} queued text jobs are written to a fresh database, due once every process is up; "
        f"1, 2 or 4 bot processes "
        f"(the real bot, polls scaled down as in the crash tests) share them against the fakes, "
        f"whose tasks take {GENERATION:g} s and whose concurrency is above the job count. "
        "Per minute: jobs delivered divided by the time from the first submit to the last "
        "delivery. CPU per job: the bot processes' CPU seconds (user + system, all "
        "processes) over that time divided by the jobs. The fakes and PostgreSQL run beside them "
        "on the same 2 cores, so more processes share the same CPU; the figure shows what the "
        "leases, the shared count and NOTIFY cost, not a speed-up."
    )


async def _run(workdir: Path, backend: str, count: int, jobs: int) -> dict[str, Any]:
    """One configuration: start the processes, queue the jobs, wait for every delivery."""
    with _database(workdir, backend) as url:
        async with FakeDiscord() as discord, FakeZai(concurrency=jobs + 10) as zai:
            zai.generation_seconds = GENERATION
            guild = discord.add_guild(name="Bench", channels=["general"], members=[])
            channel = guild.channel("general").id
            bots: list[BotProcess] = []
            try:
                # Queued to start together once every process is up (their next_attempt_at).
                start_at = time.time() + START_SECONDS * count + 5
                await _queue(url, guild.id, channel, jobs, start_at)
                for n in range(count):
                    bots.append(await _start(discord, zai, workdir, url, n, jobs))
                assert time.time() < start_at, "the processes took too long to start"
                await eventually(lambda: zai.submits, timeout=120, what="the first submit")
                begun, cpu_before = time.monotonic(), sum(_cpu(b) for b in bots)
                await eventually(lambda: _delivered(url) >= jobs, timeout=600, what="deliveries")
                wall, cpu = time.monotonic() - begun, sum(_cpu(b) for b in bots) - cpu_before
            finally:
                for bot in bots:
                    await bot.stop()
    return {
        "jobs": jobs,
        "seconds": wall,
        "per_minute": jobs / wall * 60,
        "cpu_per_job": cpu / jobs,
    }


@contextlib.contextmanager
def _database(workdir: Path, backend: str) -> Iterator[str]:
    """A SQLite file, or a fresh schema on TEST_DATABASE_URL."""
    if backend == "sqlite":
        yield f"sqlite:///{workdir / 'data' / 'bot.db'}"
        return
    from tests.pg import pg_schema

    with pg_schema() as url:
        yield url


async def _start(
    discord: FakeDiscord, zai: FakeZai, workdir: Path, url: str, n: int, jobs: int
) -> BotProcess:
    """Process n, its own scratch folder, the limit above the job count."""
    env = bot_env(discord, zai, workdir / f"p{n}" / "bot.db", url,
                  ZAI_MAX_CONCURRENT_TASKS=str(jobs + 10), LOG_LEVEL="WARNING")  # fmt: skip
    cwd, log = workdir / f"cwd{n}", workdir / f"bot{n}.log"
    if n == 0:
        cwd.mkdir(parents=True, exist_ok=True)
        return await start_bot(discord, env, cwd, log)
    return await start_more(discord, env, cwd, log)


async def _queue(url: str, guild: int, channel: int, jobs: int, start_at: float) -> None:
    """Write the queued jobs (credit reserved), 50 members, due at `start_at`."""
    db = await Database.open(url)
    try:
        store = JobStore(db)
        for n in range(jobs):
            new = NewJob(guild_id=guild, channel_id=channel, user_id=700 + n % 50,
                         model="cogvideox-3", mode="text", prompt=f"bench video {n}",
                         options={}, origin="slash", cost=1, request_id=uuid.uuid4().hex)  # fmt: skip
            await store.create(new, (), allowance=jobs, max_inflight=jobs, now=start_at)
    finally:
        await db.close()


def _delivered(url: str) -> int:
    """Jobs delivered so far."""
    return int(query(url, "SELECT count(*) FROM jobs WHERE state = 'delivered'")[0][0])


def _cpu(bot: BotProcess) -> float:
    """A child's CPU seconds so far."""
    return cpu_seconds_of(Path(f"/proc/{bot.pid}/stat"))
