"""The discord.py bot: one error boundary, cogs loaded as extensions and wired, commands synced once."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import discord
import yarl
from discord import app_commands
from discord.ext import commands

from bot.app import Resources
from bot.errors import ShardsRefused
from bot.i18n import locale_of, po_digest
from bot.logs import set_log_ids
from cogs.replies import report_error
from cogs.translator import CatalogTranslator

if TYPE_CHECKING:  # the extensions are loaded by name; these names are for the wiring's types
    from cogs.admin import Admin
    from cogs.delivery import Delivery
    from cogs.stills import Stills
    from cogs.video import Video
    from cogs.voice import Voice

log = logging.getLogger(__name__)

# The cogs, loaded as discord.py extensions by name (each module's `setup` adds its cog).
EXTENSIONS = ("cogs.admin", "cogs.delivery", "cogs.video", "cogs.stills", "cogs.voice")


def configure_endpoints(api_base: str, gateway_url: str) -> None:
    """Point discord.py at the REST root and gateway (rate-limit or gateway proxies, tests)."""
    discord.http.Route.BASE = api_base.rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


LOCALE_MEMORY = 10_000  # members and servers whose language is remembered (then forgotten)


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
        # Languages seen in interactions: a member's client (DMs, replies to their messages)
        # and a server's (channel posts made later, without an interaction).
        self.member_locales: dict[int, str] = {}
        self.guild_locales: dict[int, str] = {}

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """Remember the member's and the server's language for posts made without one."""
        for memory in (self.member_locales, self.guild_locales):
            if len(memory) > LOCALE_MEMORY:
                memory.clear()
        self.member_locales[interaction.user.id] = locale_of(interaction.locale)
        if interaction.guild_id is not None and interaction.guild_locale is not None:
            self.guild_locales[interaction.guild_id] = locale_of(interaction.guild_locale)

    async def setup_hook(self) -> None:
        """Load the extensions, wire them, start the engine, sync commands (localized)."""
        await self.tree.set_translator(CatalogTranslator())
        for name in EXTENSIONS:
            await self.load_extension(name)
        self.wire()
        await self.resources.engine.start()
        await self.sync_commands()

    def wire(self) -> None:
        """The one place the front end is connected: engine events, moderation, buttons."""
        delivery = cast("Delivery", self.loaded("Delivery"))
        admin = cast("Admin", self.loaded("Admin"))
        video = cast("Video", self.loaded("Video"))
        stills = cast("Stills", self.loaded("Stills"))
        voice = cast("Voice", self.loaded("Voice"))
        stills.video = voice.video = video  # /image, Animate and spoken prompts: one pipeline
        video.voice = voice  # /video text's recording option
        delivery.moderators = admin  # approval requests and provider alerts
        self.resources.engine.rules.alert = admin.on_policy_alert  # a blocklist entry too slow
        video.delivery = delivery  # status messages of new jobs
        self.resources.engine.listener = delivery  # engine events

    def loaded(self, name: str) -> commands.Cog:
        """A cog an extension added; a missing one is a wiring bug, found at start."""
        cog = self.get_cog(name)
        if cog is None:
            raise LookupError(f"cog {name} is not loaded (EXTENSIONS: {', '.join(EXTENSIONS)})")
        return cog

    async def connect(self, *, reconnect: bool = True) -> None:
        """Stay connected; shards Discord refuses end the process saying what to change."""
        try:
            await super().connect(reconnect=reconnect)
        except discord.ConnectionClosed as exc:
            settings = self.resources.settings
            refusal = shard_refusal(exc.code, settings.shard_count, settings.shards)
            if refusal is None:
                raise
            raise ShardsRefused(refusal) from None

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
        payload.append({"catalogs": po_digest()})  # the localized names come from these
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class ShardedVideoBot(VideoBot, commands.AutoShardedBot):
    """The same bot on discord.py's sharded client: SHARD_IDS of SHARD_COUNT in this process.

    Interactions and messages of a server arrive only at the process holding its shard; what
    the bot sends later (status edits, results) goes through REST and needs no shard.
    """


def shard_refusal(code: int, count: int | None, ids: Sequence[int] | None) -> str | None:
    """What to change when Discord closes the gateway over the shards (4010, 4011); else None."""
    if code == 4010:
        listed = ", ".join(map(str, ids or ()))
        return (
            f"Discord refused shard {listed} of {count} as invalid (close code 4010); "
            "set SHARD_IDS to ids from 0 to SHARD_COUNT - 1"
        )
    if code == 4011:
        now = f"SHARD_COUNT={count}" if count else "SHARD_COUNT is unset"
        return (
            f"Discord requires more shards for this bot's servers ({now}; close code 4011); "
            "raise SHARD_COUNT (GET /gateway/bot recommends a count) and run every shard"
        )
    return None


def make_bot(resources: Resources, **options: Any) -> VideoBot:
    """The unsharded bot, or the sharded one when SHARD_COUNT is set."""
    shards = resources.settings.shards
    if shards is None:
        return VideoBot(resources, **options)
    count = resources.settings.shard_count
    return ShardedVideoBot(resources, shard_count=count, shard_ids=list(shards), **options)
