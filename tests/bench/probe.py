"""The engine's own overhead: while a poll is in flight, and per poll in steady polling."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from bot.engine import Engine, EngineConfig, JobRequest
from bot.models import Mode
from bot.schedule import PollPolicy
from bot.zai import ZaiClient
from storage.credits import Credits
from storage.db import Database
from storage.jobs import Job, JobStore
from tests.bench.botproc import NullListener
from tests.bench.common import Context
from tests.fakes.zai import FakeZai, Fault

HELD = 1.0  # seconds the fake holds one poll's answer (a slow provider or a long round trip)
JOBS = 10  # jobs polled in the steady phase
STEADY = 2.0  # seconds of steady polling measured
SPINNING = 20  # scheduler passes during one held poll above which the loop is busy-waiting


class CountingStore(JobStore):
    """The job store, counting scheduler passes (each pass asks for due polls once)."""

    passes = 0

    async def due_polls(
        self, now: float, limit: int, exclude: Iterable[int] = (), owner: str = ""
    ) -> list[Job]:
        """Count, then answer as usual."""
        self.passes += 1
        return await super().due_polls(now, limit, exclude, owner)


async def _held(engine: Engine, store: CountingStore, fake: FakeZai) -> dict[str, float]:
    """One job whose poll answer the fake holds back; the engine's passes and CPU meanwhile."""
    await engine.submit(JobRequest(1, 2, 3, "cogvideox-3", Mode.TEXT, "a probe"))
    fake.script("poll", Fault.delay(HELD))
    await asyncio.sleep(0.3)  # the first poll (after 0.2 s) is now held by the fake
    passes, cpu = store.passes, time.process_time()
    await asyncio.sleep(HELD * 0.6)
    return {
        "held_s": HELD * 0.6,
        "held_passes": store.passes - passes,
        "held_cpu_s": time.process_time() - cpu,
    }


async def _steady(engine: Engine, store: CountingStore, fake: FakeZai) -> dict[str, float]:
    """JOBS jobs polled every 0.1 s: scheduler passes per poll."""
    for i in range(JOBS):
        await engine.submit(JobRequest(1, 2, 100 + i, "cogvideox-3", Mode.TEXT, "a probe"))
    await asyncio.sleep(0.5)
    passes, polls = store.passes, sum(fake.polls.values())
    await asyncio.sleep(STEADY)
    done = sum(fake.polls.values()) - polls
    return {"steady_polls": done, "passes_per_poll": (store.passes - passes) / max(1, done)}


async def scheduler_probe(ctx: Context) -> dict[str, Any]:
    """Both measurements, in the benchmark's process (cached: several figures quote them)."""
    if "probe" in ctx.cache:
        return ctx.cache["probe"]
    policy = PollPolicy(interval=0.1, min_first=0.2, prior_low=0.0, prior_high=100.0)
    config = EngineConfig(max_concurrent=100, max_inflight_per_user=100)
    async with FakeZai(hold_all=True, concurrency=1_000) as fake, httpx.AsyncClient() as http:
        db = await Database.open(Path(ctx.dir("probe")) / "probe.db")
        store = CountingStore(db)
        client = ZaiClient(http, fake.base_url, SecretStr(fake.api_key))
        engine = Engine(store, Credits(db, 100), client, config, policy)
        engine.listener = NullListener()
        await engine.start()
        result = {**await _held(engine, store, fake), **await _steady(engine, store, fake)}
        await engine.close()
        await db.close()
    result["spinning"] = result["held_passes"] > SPINNING
    ctx.cache["probe"] = result
    return result
