"""Relay: a 100 MB video from the fake provider to the fake Discord, time and memory growth."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.schedule import PollPolicy
from tests.bench.common import Context, Figure, Goal, Table, fmt
from tests.bench.polls import bot_outcomes, sdk_config, sdk_outcomes
from tests.bench.proc import Child, Sampler, child, reset_peak
from tests.bench.workload import BenchJob
from tests.bench.world import World, policy_config, world
from tests.fakes.discord import MiB

VIDEO_BYTES = 100_000_000
GOAL_BYTES = 32_000_000
FAST = PollPolicy(interval=0.05, min_first=0.05, prior_low=0.0, prior_high=1.0)


async def _relay(w: World, proc: Child, index: int) -> tuple[int, int]:
    """One job end to end; (RSS before, peak RSS during) in KiB."""
    before = len(w.results())
    reset_peak(proc.pid)
    rss = proc.rss_kib()
    async with Sampler(proc.pid) as sampler:
        await w.ask(BenchJob(index, "cogvideox-3", 5.0), w.users[0])
        await w.wait_results(before + 1, timeout=300)
        await asyncio.sleep(0.2)
    return rss, max(sampler.max_kib, proc.peak_kib())


async def _run(ctx: Context, role: str) -> dict[str, Any]:
    """A warm-up relay, then the measured one."""
    workdir = ctx.dir(f"relay-{role}")
    size = 20_000_000 if ctx.quick else VIDEO_BYTES
    async with world(
        workdir, members=2, filesize_limit=100 * MiB, video_size=size, generation_seconds=0.3
    ) as w:
        if role == "bot":
            db_path = workdir / "bot.db"
            config: dict[str, Any] = {
                "settings": w.bot_settings(db_path),
                "policy": policy_config(FAST),
                "status_interval": 0.05,
            }
        else:
            config = {**sdk_config(w, ctx, 0.5), "interval": 0.05}
        async with child(role, config, workdir) as proc:
            await proc.event("started")
            await w.discord.wait_ready(timeout=60)
            await w.wait_commands()
            first = await _relay(w, proc, 0)
            second = await _relay(w, proc, 1)
            jobs = [BenchJob(0, "cogvideox-3", 5.0), BenchJob(1, "cogvideox-3", 5.0)]
            found = bot_outcomes(w, db_path, jobs) if role == "bot" else sdk_outcomes(w, proc, jobs)
    times = {o.index: o.delivery for o in found}
    return {
        "bytes": size,
        "runs": [
            {"rss_kib": rss, "peak_kib": peak, "growth_kib": peak - rss, "relay_s": times.get(i)}
            for i, (rss, peak) in enumerate((first, second))
        ],
    }


async def relay_figure(ctx: Context) -> Figure:
    """The bot (streamed through a temporary file) against the in-memory baseline."""
    bot = await _run(ctx, "bot")
    sdk = await _run(ctx, "sdkbot")
    table = Table(["client", "relay", "download+upload", "RSS before", "peak RSS", "growth"])
    for label, result in (
        ("bot (streams through a temporary file)", bot),
        ("zai-sdk bot (downloads into memory)", sdk),
    ):
        for name, run in zip(("first", "second"), result["runs"], strict=True):
            table.rows.append(
                [
                    label,
                    f"{name}, {result['bytes'] / 1e6:.0f} MB",
                    fmt(run["relay_s"] if run["relay_s"] is not None else float("nan")) + " s",
                    fmt(run["rss_kib"] / 1024, 1) + " MiB",
                    fmt(run["peak_kib"] / 1024, 1) + " MiB",
                    fmt(run["growth_kib"] * 1024 / 1e6, 1) + " MB",
                ]
            )
    growth = max(run["growth_kib"] for run in bot["runs"]) * 1024
    goal = Goal(
        f"peak memory growth under {GOAL_BYTES / 1e6:.0f} MB",
        growth < GOAL_BYTES,
        f"at most {growth / 1e6:.1f} MB for a {bot['bytes'] / 1e6:.0f} MB video",
    )
    method = (
        "Two jobs in turn whose finished video is a 100 MB mp4 (the fake streams it; the "
        "guild's upload limit is 100 MiB, so it is posted as is); the first relay also pays "
        "for loading code, the second shows the steady state. "
        "Download+upload: from the client seeing the task finished to the fake Discord "
        "storing the message with the file. Memory: the client process's RSS sampled every "
        "5 ms from /proc plus its VmHWM (reset with clear_refs before the job), minus its RSS "
        "just before. The baseline downloads with `httpx.get(url).content` and uploads a "
        "`discord.File(BytesIO(data))`, as most bots do."
    )
    return Figure(
        "relay",
        "Relay of a 100 MB video: time and memory",
        method,
        [table],
        [goal],
        raw={"bot": bot, "sdk": sdk},
    )
