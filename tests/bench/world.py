"""The world a client under test talks to: the loopback fakes of Z.AI and Discord, members."""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.schedule import PollPolicy
from tests.bench.workload import PROMPT_TAG, BenchJob
from tests.fakes.discord import FakeDiscord, FakeGuild, FakeInteraction, FakeMessage, FakeUser
from tests.fakes.media import make_png
from tests.fakes.zai import FakeZai

RESULT_MARK = "your video is ready"


@dataclass
class World:
    """Running fakes, one guild with #general and its members."""

    zai: FakeZai
    discord: FakeDiscord
    guild: FakeGuild
    users: list[FakeUser]
    workdir: Path
    wall_minus_mono: float  # add to a loop (monotonic) time to get a wall time

    @property
    def channel(self) -> Any:
        """#general."""
        return self.guild.channel("general")

    def to_wall(self, loop_time: float) -> float:
        """A fake Z.AI time (event-loop clock) as a wall-clock time."""
        return loop_time + self.wall_minus_mono

    def results(self) -> list[FakeMessage]:
        """Result messages the bot posted, oldest first."""
        bot_id = self.discord.bot_user.id
        return [
            m
            for m in self.discord.messages(self.channel)
            if m.author_id == bot_id and RESULT_MARK in m.content
        ]

    async def wait_results(self, count: int, timeout: float) -> list[FakeMessage]:
        """Wait until at least `count` result messages were posted."""
        return await self.discord.signal.wait_for(
            lambda: (found := self.results()) and len(found) >= count and found,
            timeout,
            f"{count} result messages",
        )

    async def wait_commands(self, timeout: float = 60.0) -> None:
        """Wait until the bot synced /video where the members can use it."""

        def synced() -> bool:
            try:
                self.discord.find_command("video", self.guild.id, 1)
            except LookupError:
                return False
            return True

        await self.discord.signal.wait_for(synced, timeout, "/video to be synced")

    async def ask(self, job: BenchJob, user: FakeUser) -> FakeInteraction:
        """Run the job's /video command as a member."""
        options: dict[str, Any] = {"prompt": job.prompt, "model": job.model}
        attachments: dict[str, Any] = {}
        if job.subcommand == "image":
            png = make_png(320, 240, (job.index % 200, 90, 160))
            attachments["image"] = self.discord.add_attachment(f"in{job.index}.png", png)
        return await self.discord.slash(
            self.guild,
            self.channel,
            user,
            "video",
            subcommand=job.subcommand,
            options=options,
            attachments=attachments,
        )

    def bot_settings(self, db_path: Path, **overrides: Any) -> dict[str, Any]:
        """Settings for a child bot pointed at these fakes."""
        values: dict[str, Any] = {
            "discord_token": self.discord.token,
            "zai_api_key": self.zai.api_key,
            "zai_base_url": self.zai.base_url,
            "discord_api_base": self.discord.api_base,
            "discord_gateway_url": self.discord.gateway_url,
            "database_url": f"sqlite:///{db_path}",
            "trusted_media_hosts": "127.0.0.1",
            "dev_guild_id": self.guild.id,
            "quota_daily_credits": 1_000_000,
            "max_inflight_per_user": 1_000,
            "zai_max_concurrent_tasks": 1_000,
            "log_level": "INFO",
        }
        values.update(overrides)
        return values

    def task_index(self, task_id: str) -> int | None:
        """The bench job index a fake task belongs to (from its prompt)."""
        task = self.zai.tasks.get(task_id)
        match = PROMPT_TAG.search(str((task.body if task else {}).get("prompt") or ""))
        return int(match.group(1)) if match else None


def policy_config(policy: PollPolicy) -> dict[str, Any]:
    """A poll policy as JSON-able fields."""
    return dataclasses.asdict(policy)


@contextlib.asynccontextmanager
async def world(
    workdir: Path,
    *,
    members: int = 30,
    filesize_limit: int | None = None,
    **zai: Any,
) -> AsyncIterator[World]:
    """Start both fakes with a guild of `members` people; stop them after."""
    zai.setdefault("concurrency", 1_000_000)
    async with FakeDiscord() as discord, FakeZai(**zai) as fake_zai:
        users = [discord.add_user(f"member{i}") for i in range(members)]
        extra = {"filesize_limit": filesize_limit} if filesize_limit else {}
        guild = discord.add_guild(name="Bench", channels=["general"], members=users, **extra)
        workdir.mkdir(parents=True, exist_ok=True)
        yield World(fake_zai, discord, guild, users, workdir, time.time() - time.monotonic())


def db_rows(db_path: Path, query: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    """Rows of a read-only query on a child's database."""
    conn = sqlite3.connect(db_path, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return list(conn.execute(query, params))
    finally:
        conn.close()
