"""Resources opened in one place and passed in: database, HTTP client, provider, engine."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

from bot.engine import Engine, EngineConfig
from bot.providers.routing import Router, build_providers
from bot.schedule import PollPolicy
from bot.settings import Settings
from bot.zai import DEFAULT_TIMEOUT
from bot.zai_media import ZaiMediaClient
from storage.credits import Credits
from storage.db import Database, ProcessLock
from storage.jobs import JobStore

SCRATCH_DIR = "scratch"  # emptied at every start: what is there was left by a killed process


@dataclass
class Resources:
    """Everything the bot shares across cogs and the engine."""

    settings: Settings
    db: Database
    http: httpx.AsyncClient
    engine: Engine

    @property
    def scratch(self) -> Path:
        """The bot's scratch folder, next to the database: every temporary file goes here."""
        return self.settings.scratch_parent / SCRATCH_DIR


def engine_config(settings: Settings) -> EngineConfig:
    """Engine limits from the operator's settings."""
    return EngineConfig(
        max_concurrent=settings.zai_max_concurrent_tasks,
        max_inflight_per_user=settings.max_inflight_per_user,
        retention=settings.retention,
    )


@contextlib.asynccontextmanager
async def open_resources(
    settings: Settings, policy: PollPolicy | None = None
) -> AsyncIterator[Resources]:
    """Take the database's process lock, open it and the one HTTP client, build the engine.

    The lock is SQLite's (one process per file); on PostgreSQL processes share the database
    and register themselves instead (bot/registration.py, wired in bot/runner.py).
    """
    lock = ProcessLock(settings.database_path)
    if not settings.postgres:
        lock.acquire()
    try:
        db = await Database.open(settings.database)
    except BaseException:
        lock.release()
        raise
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=16)
    http = httpx.AsyncClient(timeout=DEFAULT_TIMEOUT, limits=limits, follow_redirects=False)
    try:
        provider = ZaiMediaClient(http, settings.zai_base_url, settings.zai_api_key)
        router = Router(build_providers(settings, http, provider), fallback=settings.fallback)
        credits = Credits(db, settings.quota_daily_credits)
        store = JobStore(db)
        config = engine_config(settings)
        deadline = settings.task_deadline_minutes * 60  # the floor of every task
        policy = replace(policy or PollPolicy(), deadline_floor=deadline)
        engine = Engine(store, credits, provider, config, policy, media=provider, router=router)
        yield Resources(settings, db, http, engine)
    finally:
        await http.aclose()
        await db.close()
        lock.release()
