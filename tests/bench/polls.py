"""Runs of whole jobs through a client under test: the bot (any poll policy) or the SDK baseline.

Every run gets its own fakes and the same seeded jobs. A job's lag is split in two: how long
after the provider finished the client noticed (bench seconds, scaled back to real seconds by
the time factor), plus how long its download and upload took (real seconds, not scaled).
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.schedule import PollPolicy
from tests.bench.common import Context
from tests.bench.proc import Child, child
from tests.bench.workload import PROMPT_TAG, BenchJob, GenerationTimes, make_jobs
from tests.bench.world import World, db_rows, policy_config, world

SEED_WARMUP, SEED_MEASURED = 1, 2
SDK_THREADS = 16
BATCH_SLACK = 120.0  # seconds a batch may take beyond its longest job
ARRIVALS = 0.5  # requests per real-world second (Poisson): ~40 jobs in flight at once
FRONT_SETTLE = 1.0  # seconds after the last submit for status edits and follow-ups
NEVER = 36_000.0  # a poll interval no front-end-only run reaches


@dataclass(frozen=True)
class Outcome:
    """One delivered job."""

    index: int
    model: str
    seconds: float  # real-world generation time
    polls: int
    detect_lag: float  # bench seconds from provider SUCCESS to the client seeing it
    delivery: float  # real seconds from seeing it to the message being in the channel

    def lag(self, factor: float) -> float:
        """Real-world delivery lag after the provider finished."""
        return self.detect_lag / factor + self.delivery


@dataclass
class Batch:
    """A batch of jobs sent at once and everything the client used for it."""

    label: str
    jobs: list[BenchJob]
    cpu: float = 0.0
    wall: float = 0.0
    rss_kib: int = 0
    outcomes: list[Outcome] = field(default_factory=list)


def workload(ctx: Context) -> tuple[list[BenchJob], list[BenchJob]]:
    """(warm-up jobs, measured jobs): different seeds, same spread."""
    warm, measured = (30, 45) if ctx.quick else (150, 150)
    return make_jobs(warm, SEED_WARMUP, 10_000), make_jobs(measured, SEED_MEASURED)


async def send_batch(
    w: World, client: Child, batch: Batch, factor: float, *, front_only: bool = False
) -> None:
    """Send the jobs as Poisson arrivals, wait for every result; note the client's CPU and wall.

    With `front_only`, wait only until every job was submitted (and a second for the status
    edits that follow): the client's cost of taking requests, without polls or deliveries.
    """
    before, submitted = len(w.results()), len(w.zai.submits)
    cpu, start = client.cpu(), time.monotonic()
    rng = random.Random(batch.jobs[0].index)
    asks = []
    for i, job in enumerate(batch.jobs):
        asks.append(asyncio.create_task(w.ask(job, w.users[i % len(w.users)])))
        await asyncio.sleep(rng.expovariate(ARRIVALS / factor))
    await asyncio.gather(*asks)
    if front_only:
        await _until_submitted(w, submitted + len(batch.jobs))
        await asyncio.sleep(FRONT_SETTLE)
    else:
        longest = max(job.seconds for job in batch.jobs) * factor
        await w.wait_results(before + len(batch.jobs), longest + BATCH_SLACK)
    batch.cpu, batch.wall = client.cpu() - cpu, time.monotonic() - start
    batch.rss_kib = client.rss_kib()


async def _until_submitted(w: World, count: int) -> None:
    """Wait until the fake accepted `count` submits in all."""
    deadline = time.monotonic() + BATCH_SLACK
    while len(w.zai.submits) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(w.zai.submits)} of {count} jobs were submitted")
        await asyncio.sleep(0.05)


async def run_bot(
    ctx: Context,
    label: str,
    policy: PollPolicy,
    batches: list[Batch],
    front_only: bool = False,
    profile: Path | None = None,
) -> dict[str, float]:
    """The real bot with `policy` (scaled) through each batch in turn; with `profile`, the
    last batch is profiled (cProfile to that file) and CPU per thread kind is returned."""
    times = GenerationTimes([j for b in batches for j in b.jobs], ctx.factor)
    workdir = ctx.dir(label)
    threads: dict[str, float] = {}
    async with world(workdir, generation_seconds=times) as w:
        db_path = workdir / "bot.db"
        config = {
            "settings": w.bot_settings(db_path),
            "policy": policy_config(policy.scaled(ctx.factor)),
            "status_interval": 3.0 * ctx.factor,
            "profile": None if profile is None else str(profile),
        }
        async with child("bot", config, workdir) as bot:
            await bot.event("started")
            await w.discord.wait_ready(timeout=60)
            await w.wait_commands()
            for i, batch in enumerate(batches):
                if profile is not None and i == len(batches) - 1:
                    bot.proc.send_signal(signal.SIGUSR1)
                    await bot.event("profiling")
                await send_batch(w, bot, batch, ctx.factor, front_only=front_only)
        if profile is not None:
            threads = (await bot.event("threads"))["cpu"]
        for batch in batches:
            batch.outcomes = bot_outcomes(w, db_path, batch.jobs)
    return threads


def bot_outcomes(w: World, db_path: Path, jobs: list[BenchJob]) -> list[Outcome]:
    """Outcomes of the bot's jobs, from its database and the fakes' records."""
    by_index = {job.index: job for job in jobs}
    outcomes = []
    query = "SELECT prompt, task_id, finished_at, result_message_id FROM jobs WHERE state = ?"
    for row in db_rows(db_path, query, ("delivered",)):
        match = PROMPT_TAG.search(row["prompt"] or "")
        job = by_index.get(int(match.group(1))) if match else None
        if job is None:
            continue
        message = w.discord.message_by_id(row["result_message_id"])
        outcomes.append(_outcome(w, job, row["task_id"], row["finished_at"], message.created_at))
    return outcomes


def _outcome(w: World, job: BenchJob, task_id: str, seen: float, posted: float) -> Outcome:
    """Combine a job's times: provider finished, client saw it, message posted."""
    task = w.zai.tasks[task_id]
    finished = w.to_wall(task.finished_at or task.created_at)
    polls = w.zai.polls.get(task_id, 0)
    return Outcome(job.index, job.model, job.seconds, polls, seen - finished, posted - seen)


async def run_sdk(
    ctx: Context, label: str, batch: Batch, interval: float = 5.0, front_only: bool = False
) -> None:
    """The SDK baseline through one batch."""
    times = GenerationTimes(batch.jobs, ctx.factor)
    workdir = ctx.dir(label)
    async with world(workdir, generation_seconds=times) as w:
        async with child("sdkbot", sdk_config(w, ctx, interval), workdir) as bot:
            await bot.event("started")
            await w.discord.wait_ready(timeout=60)
            await w.wait_commands()
            await send_batch(w, bot, batch, ctx.factor, front_only=front_only)
            await asyncio.sleep(0.2)  # the last "delivered" event is written after the post
            batch.outcomes = sdk_outcomes(w, bot, batch.jobs)


def sdk_config(w: World, ctx: Context, interval: float) -> dict[str, Any]:
    """The baseline bot's config."""
    return {
        "discord_token": w.discord.token,
        "discord_api_base": w.discord.api_base,
        "discord_gateway_url": w.discord.gateway_url,
        "zai_api_key": w.zai.api_key,
        "zai_base_url": w.zai.base_url,
        "guild_id": w.guild.id,
        "threads": SDK_THREADS,
        "interval": interval * ctx.factor,
    }


def sdk_outcomes(w: World, bot: Child, jobs: list[BenchJob]) -> list[Outcome]:
    """Outcomes of the baseline's jobs, from its events and the fakes' records."""
    by_index = {job.index: job for job in jobs}
    outcomes = []
    for event in bot.events():
        if event.get("event") != "delivered":
            continue
        index = w.task_index(event["task_id"])
        job = by_index.get(index) if index is not None else None
        message = w.discord.message_by_id(event["message_id"])
        if job is not None and message is not None:
            outcomes.append(_outcome(w, job, event["task_id"], event["seen"], message.created_at))
    return outcomes


async def bot_runs(ctx: Context) -> dict[str, list[Batch]]:
    """Every poll-schedule run (cached: the poll and cost figures share them)."""
    if "poll_runs" in ctx.cache:
        return ctx.cache["poll_runs"]
    warm_jobs, jobs = workload(ctx)
    runs: dict[str, list[Batch]] = {}
    learned = [Batch("bot, warm-up", warm_jobs), Batch("bot (learned schedule)", jobs)]
    await run_bot(ctx, "bot", PollPolicy(), learned)
    runs["bot"] = learned
    for seconds in (5, 10):
        batch = Batch(f"fixed {seconds}-s loop", jobs)
        await run_bot(ctx, f"fixed{seconds}", PollPolicy.fixed(seconds), [batch])
        runs[f"fixed{seconds}"] = [batch]
    ctx.cache["poll_runs"] = runs
    return runs


async def sdk_run(ctx: Context) -> Batch:
    """The SDK baseline's run (cached)."""
    if "sdk_run" not in ctx.cache:
        batch = Batch(f"zai-sdk, {SDK_THREADS} threads, 5-s loop", workload(ctx)[1])
        await run_sdk(ctx, "sdk", batch)
        ctx.cache["sdk_run"] = batch
    return ctx.cache["sdk_run"]


async def front_runs(ctx: Context) -> dict[str, Batch]:
    """The same measured jobs taken and submitted but never polled (cached): the front end."""
    if "front_runs" not in ctx.cache:
        jobs = workload(ctx)[1]
        bot = Batch("bot, front end only", jobs)
        await run_bot(ctx, "bot-front", PollPolicy.fixed(NEVER), [bot], front_only=True)
        sdk = Batch("zai-sdk, front end only", jobs)
        await run_sdk(ctx, "sdk-front", sdk, NEVER, front_only=True)
        ctx.cache["front_runs"] = {"bot": bot, "sdk": sdk}
    return ctx.cache["front_runs"]
