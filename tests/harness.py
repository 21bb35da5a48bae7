"""The real bot (setup_hook, cogs, engine, database) against the loopback fakes of Discord and Z.AI."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.app import Resources, open_resources
from bot.settings import Settings
from cogs.app import VideoBot, make_bot
from tests.conftest import FAST_POLLS
from tests.fakes.discord import FakeDiscord, FakeGuild, FakeMessage, FakeUser, Perm
from tests.fakes.zai import FakeZai


def make_settings(
    db_path: Path, fake_discord: FakeDiscord, fake_zai: FakeZai, **overrides: Any
) -> Settings:
    """Settings pointing at the fakes; loopback hosts are trusted like a media proxy would be."""
    values: dict[str, Any] = {
        "discord_token": fake_discord.token,
        "zai_api_key": fake_zai.api_key,
        "zai_base_url": fake_zai.base_url,
        "discord_api_base": fake_discord.api_base,
        "discord_gateway_url": fake_discord.gateway_url,
        "database_url": f"sqlite:///{db_path}",
        "trusted_media_hosts": "127.0.0.1",
        "max_inflight_per_user": 5,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@dataclass
class Harness:
    """A running bot with a guild, a channel and three people."""

    discord: FakeDiscord
    zai: FakeZai
    guild: FakeGuild
    alice: FakeUser
    bob: FakeUser
    mod: FakeUser
    db_path: Path
    settings: Settings
    bot: VideoBot | None = None
    resources: Resources | None = None
    _stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    @property
    def channel(self) -> Any:
        """#general."""
        return self.guild.channel("general")

    async def start(self) -> VideoBot:
        """Open resources and log the bot in; wait until the fake saw it ready."""
        self._stack = contextlib.AsyncExitStack()
        self.resources = await self._stack.enter_async_context(
            open_resources(self.settings, FAST_POLLS)
        )
        bot = make_bot(self.resources, status_interval=0.0, guild_ready_timeout=0.05)
        self.bot = bot
        task = asyncio.create_task(bot.start(self.settings.discord_token.get_secret_value()))
        ready = asyncio.create_task(self.discord.wait_ready(timeout=10))
        await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            ready.cancel()
            task.result()
        await ready
        await asyncio.wait_for(bot.wait_until_ready(), 10)
        self._stack.push_async_callback(self._stop_bot, bot, task)
        return bot

    @staticmethod
    async def _stop_bot(bot: VideoBot, task: asyncio.Task[None]) -> None:
        """Close the bot and its task."""
        await bot.close()
        await asyncio.gather(task, return_exceptions=True)

    async def stop(self) -> None:
        """Close the bot and its resources (the database file stays)."""
        await self._stack.aclose()
        self.bot = self.resources = None

    async def restart(self) -> VideoBot:
        """Stop and start again on the same database."""
        await self.stop()
        return await self.start()

    def attachment(
        self, filename: str, data: bytes, content_type: str | None = None
    ) -> dict[str, Any]:
        """Put a file on the fake CDN."""
        return self.discord.add_attachment(filename, data, content_type)

    async def result_for(
        self, user: FakeUser, *, timeout: float = 15.0, after: int = 0
    ) -> FakeMessage:
        """Wait for the bot's result message that mentions `user`."""
        bot_id = self.discord.bot_user.id

        def is_result(m: FakeMessage) -> bool:
            return (
                m.author_id == bot_id
                and m.id > after
                and m.content.startswith(f"<@{user.id}> your video")
                and not m.deleted
            )

        return await self.discord.wait_for_message(is_result, channel=self.channel, timeout=timeout)

    def bot_messages(self) -> list[FakeMessage]:
        """Public messages the bot posted in #general."""
        bot_id = self.discord.bot_user.id
        return [
            m
            for m in self.discord.messages(self.channel)
            if m.author_id == bot_id and not m.ephemeral
        ]


@contextlib.asynccontextmanager
async def harness(
    tmp_path: Path,
    *,
    zai: dict[str, Any] | None = None,
    dev_guild: bool = False,
    zai_fake: type[FakeZai] = FakeZai,
    **settings: Any,
) -> AsyncIterator[Harness]:
    """Fakes up, bot started; everything closed after (`zai_fake`: e.g. the reseller)."""
    async with FakeDiscord() as fake_discord, zai_fake(**(zai or {})) as fake_zai:
        alice, bob, mod = (fake_discord.add_user(n) for n in ("alice", "bob", "mod"))
        guild = fake_discord.add_guild(
            name="Test",
            channels=["general", "mods"],
            members=[alice, bob, (mod, Perm.MANAGE_GUILD)],
        )
        db_path = tmp_path / "data" / "bot.db"
        if dev_guild:
            settings["dev_guild_id"] = guild.id
        h = Harness(
            fake_discord,
            fake_zai,
            guild,
            alice,
            bob,
            mod,
            db_path,
            make_settings(db_path, fake_discord, fake_zai, **settings),
        )
        with fake_discord.patch_discord_py():
            await h.start()
            try:
                yield h
            finally:
                await h.stop()
        assert fake_discord.server_errors == []
        assert fake_discord.invalid_requests == [], fake_discord.invalid_requests
