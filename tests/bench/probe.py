"""The engine's own overhead while one poll is in flight (in-process, a held fake answer)."""

from __future__ import annotations

import asyncio
import time
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
from tests.fakes.zai import FakeZai, Fault

HELD = 1.0  # seconds the fake holds the poll's answer (a slow provider or a long round trip)


class CountingStore(JobStore):
    """The job store, counting scheduler passes (each pass asks for due polls once)."""

    passes = 0

    async def due_polls(self, now: float, limit: int) -> list[Job]:
        """Count, then answer as usual."""
        self.passes += 1
        return await super().due_polls(now, limit)


async def scheduler_probe(workdir: Path) -> dict[str, Any]:
    """CPU and scheduler passes of the engine while one poll's answer takes HELD seconds."""
    policy = PollPolicy(interval=5.0, min_first=0.2, prior_low=0.0, prior_high=100.0)
    async with FakeZai(hold_all=True) as fake, httpx.AsyncClient() as http:
        db = await Database.open(workdir / "probe.db")
        store = CountingStore(db)
        client = ZaiClient(http, fake.base_url, SecretStr(fake.api_key))
        engine = Engine(store, Credits(db, 10), client, EngineConfig(), policy)
        engine.listener = NullListener()
        await engine.start()
        await engine.submit(JobRequest(1, 2, 3, "cogvideox-3", Mode.TEXT, "a probe"))
        fake.script("poll", Fault.delay(HELD))
        await asyncio.sleep(0.3)  # the poll is now in flight, held by the fake
        passes, cpu = store.passes, time.process_time()
        await asyncio.sleep(HELD * 0.8)
        result = {
            "held_s": HELD * 0.8,
            "cpu_s": time.process_time() - cpu,
            "passes": store.passes - passes,
        }
        await engine.close()
        await db.close()
    return result
