"""Run the bot: settings → logging → resources → discord client, opened in one place."""

from __future__ import annotations

import logging

from bot.app import open_resources
from bot.discord_app import VideoBot, configure_endpoints
from bot.logs import setup_logging
from bot.settings import Settings

log = logging.getLogger(__name__)


async def run(settings: Settings) -> None:
    """Open everything, connect to Discord, and close everything on the way out."""
    secrets = [settings.discord_token.get_secret_value(), settings.zai_api_key.get_secret_value()]
    setup_logging(settings.log_level, secrets)
    configure_endpoints(settings.discord_api_base, settings.discord_gateway_url)
    async with open_resources(settings) as resources:
        bot = VideoBot(resources)
        async with bot:
            log.info("starting; database at %s", settings.database_path)
            await bot.start(settings.discord_token.get_secret_value())
