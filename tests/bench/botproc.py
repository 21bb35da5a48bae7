"""Child roles that run the bot's own code: the whole bot, or its engine alone."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.app import open_resources
from bot.engine import JobEvent
from bot.logs import setup_logging
from bot.schedule import PollPolicy
from bot.settings import Settings
from cogs.app import VideoBot, configure_endpoints
from storage.jobs import Job
from tests.bench.child import Events, until_stopped


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


async def run_bot(config: dict[str, Any], events: Events) -> None:
    """The real bot (cogs, engine, database) with a given poll policy, until SIGTERM."""
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
            stopper.cancel()
            await bot.close()
            await asyncio.gather(runner, return_exceptions=True)


async def run_engine(config: dict[str, Any], events: Events) -> None:
    """The engine with its database and HTTP client, no Discord, until SIGTERM."""
    settings = load_settings(config)
    _start_logging(settings)
    policy = PollPolicy(**config["policy"])
    async with open_resources(settings, policy) as resources:
        resources.engine.listener = NullListener()
        await resources.engine.start()
        events.emit("ready")
        await until_stopped()
        await resources.engine.close()
