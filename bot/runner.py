"""Run the bot: settings → logging → resources → discord client, opened in one place."""

from __future__ import annotations

import asyncio
import logging
import signal

from bot.app import open_resources
from bot.logs import setup_logging
from bot.metrics import serve_metrics
from bot.registration import registered
from bot.schedule import PollPolicy
from bot.settings import Settings
from cogs.app import configure_endpoints, make_bot

log = logging.getLogger(__name__)


class _Terminate:
    """SIGTERM (systemd, docker stop) shuts down like Ctrl-C: submits in flight may land first.

    Every SIGTERM cancels the main task again: on Python 3.11 `asyncio.wait_for` can swallow a
    cancellation that arrives just as it finishes (discord.py connects through it), and a
    second signal must still work.
    """

    def __init__(self) -> None:
        self.requested = False

    def install(self, task: asyncio.Task[None]) -> None:
        """Cancel `task` on each SIGTERM."""
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, self._cancel, task)

    def _cancel(self, task: asyncio.Task[None]) -> None:
        """The signal handler."""
        self.requested = True
        task.cancel()

    @staticmethod
    def remove() -> None:
        """Give SIGTERM back to its default."""
        asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)


async def run(settings: Settings, policy: PollPolicy | None = None) -> None:
    """Open everything, connect to Discord, and close everything on the way out.

    `policy` replaces the poll schedule's tuning (the crash tests run the real process with
    its times scaled down); production always uses the default.
    """
    setup_logging(settings.log_level, settings.secrets(), settings.log_format)
    configure_endpoints(settings.discord_api_base, settings.discord_gateway_url)
    terminate = _Terminate()
    task = asyncio.current_task()
    if task is not None:
        terminate.install(task)
    try:
        await _serve(settings, policy)
    except asyncio.CancelledError:
        if not terminate.requested:
            raise
        log.info("stopped by SIGTERM")
    finally:
        terminate.remove()


async def _serve(settings: Settings, policy: PollPolicy | None) -> None:
    """The bot's whole life: resources, login, gateway, then an orderly close."""
    async with (
        open_resources(settings, policy) as resources,
        registered(resources.db, settings.shards or (), settings.shard_count),
    ):
        bot = make_bot(resources)
        async with bot, serve_metrics(settings, bot, resources):
            log.info("starting; database at %s%s", settings.database_label, _shards_note(settings))
            await bot.start(settings.discord_token.get_secret_value())


def _shards_note(settings: Settings) -> str:
    """'; shards 0, 1 of 4' for a sharded process, nothing otherwise."""
    if settings.shards is None:
        return ""
    return f"; shards {', '.join(map(str, settings.shards))} of {settings.shard_count}"
