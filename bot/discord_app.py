"""The discord.py bot: one error boundary, cogs loaded in setup_hook, commands synced once."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import discord
import yarl
from discord import app_commands
from discord.ext import commands

from bot.app import Resources
from bot.errors import BotError
from bot.logs import set_log_ids

log = logging.getLogger(__name__)

GENERIC_ERROR = (
    "Something went wrong on the bot's side. It has been logged; please try again later."
)


def configure_endpoints(api_base: str, gateway_url: str) -> None:
    """Point discord.py at the REST root and gateway (rate-limit or gateway proxies, tests)."""
    discord.http.Route.BASE = api_base.rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


async def say(interaction: discord.Interaction, text: str, **kwargs: Any) -> None:
    """Answer privately, whether or not the interaction was acknowledged already."""
    kwargs.setdefault("ephemeral", True)
    kwargs.setdefault("allowed_mentions", discord.AllowedMentions.none())
    if interaction.response.is_done():
        await interaction.followup.send(text, **kwargs)
    else:
        await interaction.response.send_message(text, **kwargs)


async def report_error(interaction: discord.Interaction, error: BaseException) -> None:
    """Map domain errors to their user message; log the rest with what the user was doing."""
    original = getattr(error, "original", error)
    if isinstance(original, BotError):
        text = original.user_message
    elif isinstance(original, app_commands.CheckFailure):
        text = str(original) or "You are not allowed to use this here."
    else:
        command = (
            interaction.command.qualified_name if interaction.command else interaction.type.name
        )
        log.error("interaction %s (%s) failed", interaction.id, command, exc_info=original)
        text = GENERIC_ERROR
    try:
        await say(interaction, text)
    except discord.HTTPException:
        log.warning("could not tell user about error of interaction %s", interaction.id)


class VideoTree(app_commands.CommandTree):
    """The one error boundary of every slash command and context menu."""

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """Tag the handler's log lines with the guild and user (JSON logs)."""
        set_log_ids(guild_id=interaction.guild_id, user_id=interaction.user.id)
        return True

    async def on_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        """Domain errors become private messages; the rest is logged."""
        await report_error(interaction, error)


class VideoBot(commands.Bot):
    """The bot: holds the shared resources; cogs are thin adapters over the engine."""

    def __init__(
        self, resources: Resources, *, status_interval: float = 3.0, **options: Any
    ) -> None:
        intents = discord.Intents.default()  # no privileged intent: mentions carry their content
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            tree_cls=VideoTree,
            allowed_mentions=discord.AllowedMentions.none(),
            help_command=None,
            **options,
        )
        self.resources = resources
        self.status_interval = status_interval

    async def setup_hook(self) -> None:
        """Load cogs, register persistent buttons, start the engine, sync commands."""
        from cogs import load_all

        await load_all(self)
        await self.resources.engine.start()
        await self.sync_commands()

    async def close(self) -> None:
        """Stop the engine before the connection."""
        await self.resources.engine.close()
        await super().close()

    async def sync_commands(self) -> None:
        """Dev guild: sync there every start. Otherwise: globally, only when the tree changed."""
        dev_guild = self.resources.settings.dev_guild_id
        if dev_guild is not None:
            guild = discord.Object(id=dev_guild)
            self.tree.copy_global_to(guild=guild)
            await self.tree.sync(guild=guild)
            log.info("commands synced to dev guild %d", dev_guild)
            return
        digest = self.tree_digest()
        if await self.resources.db.get_meta("commands_digest") == digest:
            log.info("command tree unchanged; not syncing")
            return
        await self.tree.sync()
        await self.resources.db.set_meta("commands_digest", digest)
        log.info("commands synced globally")

    def tree_digest(self) -> str:
        """A hash of the command payloads Discord would receive."""
        payload = [command.to_dict(self.tree) for command in self.tree.get_commands()]
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
