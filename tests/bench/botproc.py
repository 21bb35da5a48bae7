"""Child roles that run the bot's own code: the whole bot, or its engine alone."""

from __future__ import annotations

import asyncio
import cProfile
import signal
import threading
from pathlib import Path
from typing import Any

from bot.app import open_resources
from bot.engine import JobEvent
from bot.logs import setup_logging
from bot.schedule import PollPolicy
from bot.settings import Settings
from cogs.app import VideoBot, configure_endpoints
from storage.jobs import Job
from tests.bench.child import Events, until_stopped
from tests.bench.proc import cpu_seconds_of


class NullListener:
    """A front end that ignores events (the 10,000-job figure measures the engine alone)."""

    async def job_event(self, event: JobEvent, job: Job) -> None:
        """Ignore."""


def load_settings(config: dict[str, Any]) -> Settings:
    """Settings from the config (no .env, no environment)."""
    return Settings(_env_file=None, **config["settings"])  # type: ignore[call-arg]


def _start_logging(settings: Settings) -> None:
    """The bot's logging set-up, secrets redacted, to the child's log file."""
    secrets = [settings.discord_token.get_secret_value(), settings.zai_api_key.get_secret_value()]
    setup_logging(settings.log_level, secrets)


def thread_cpu() -> dict[str, float]:
    """CPU seconds of this process's live threads by kind (from /proc/self/task)."""
    kinds: dict[str, float] = {}
    for thread in threading.enumerate():
        try:
            cpu = cpu_seconds_of(Path(f"/proc/self/task/{thread.native_id}/stat"))
        except OSError:
            continue
        if thread is threading.main_thread():
            kind = "main"
        elif "_connection_worker_thread" in thread.name:
            kind = "database"
        else:
            kind = "workers"
        kinds[kind] = kinds.get(kind, 0.0) + cpu
    return kinds


class Profiling:
    """cProfile of the event loop's thread from SIGUSR1 to the end, plus CPU per thread kind."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.profile: cProfile.Profile | None = None
        self.threads: dict[str, float] = {}

    def install(self, events: Events) -> None:
        """Start on SIGUSR1 (the parent sends it just before the measured batch)."""
        if self.path is None:
            return

        def start() -> None:
            self.threads = thread_cpu()
            self.profile = cProfile.Profile()
            self.profile.enable()
            events.emit("profiling")

        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, start)

    def finish(self, events: Events) -> None:
        """Write the profile and report CPU per thread kind since the start."""
        if self.profile is None or self.path is None:
            return
        self.profile.disable()
        self.profile.dump_stats(self.path)
        now = thread_cpu()
        events.emit("threads", cpu={k: v - self.threads.get(k, 0.0) for k, v in now.items()})


async def run_bot(config: dict[str, Any], events: Events) -> None:
    """The real bot (cogs, engine, database) with a given poll policy, until SIGTERM."""
    profiling = Profiling(config.get("profile"))
    profiling.install(events)
    settings = load_settings(config)
    _start_logging(settings)
    configure_endpoints(settings.discord_api_base, settings.discord_gateway_url)
    policy = PollPolicy(**config["policy"])
    async with open_resources(settings, policy) as resources:
        bot = VideoBot(
            resources, status_interval=config["status_interval"], guild_ready_timeout=0.05
        )
        async with bot:
            runner = asyncio.create_task(bot.start(settings.discord_token.get_secret_value()))
            stopper = asyncio.create_task(until_stopped())
            events.emit("started")
            await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
            profiling.finish(events)
            stopper.cancel()
            await bot.close()
            await asyncio.gather(runner, return_exceptions=True)


async def run_engine(config: dict[str, Any], events: Events) -> None:
    """The engine with its database and HTTP client, no Discord, until SIGTERM."""
    settings = load_settings(config)
    _start_logging(settings)
    policy = PollPolicy(**config["policy"])
    profile = cProfile.Profile() if config.get("profile") else None
    async with open_resources(settings, policy) as resources:
        resources.engine.listener = NullListener()
        await resources.engine.start()
        events.emit("ready")
        if profile is not None:  # a diagnosis of the engine's CPU (not used by the figures)
            profile.enable()
        await until_stopped()
        if profile is not None:
            profile.disable()
            profile.dump_stats(config["profile"])
        await resources.engine.close()
