"""Under load: a burst of 500 requests, and memory while big videos are relayed.

Both run the bot as a child process (tests/procs.py), as in production: its event loop is its
own, not shared with the fakes. The fake Discord times every interaction and refuses an
acknowledgement later than 3 s, like Discord. The memory test reads the child's peak resident
size (VmHWM) from /proc, so the fakes' own buffers do not count.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.discord import (
    FakeChannel,
    FakeDiscord,
    FakeGuild,
    FakeInteraction,
    FakeUser,
    MiB,
)
from tests.fakes.zai import FakeZai
from tests.procs import bot_env, query, start_bot
from tests.util import eventually

USERS = 100
CHANNELS = 10
ROUNDS = 5  # each user asks 5 times: 500 requests
CONCURRENCY = 5  # the provider's (and the bot's) limit of tasks in flight
DISCORD_DEADLINE = 3.0  # seconds Discord gives a bot to acknowledge an interaction


def generation(seed: int, low: float, high: float) -> Any:
    """Seeded random generation times for the fake provider."""
    rng = random.Random(seed)
    return lambda _model, _body: rng.uniform(low, high)


@dataclass
class Crowd:
    """The fakes, 100 members in 10 channels, and the child bot's database."""

    discord: FakeDiscord
    zai: FakeZai
    guild: FakeGuild
    users: list[FakeUser]
    channels: list[FakeChannel]
    db_path: Path | str  # the DATABASE_URL


@pytest.fixture
async def crowd(tmp_path: Path, database_url: str) -> AsyncIterator[Crowd]:
    """A child bot allowing 5 unfinished jobs a user, against a provider limited to 5 tasks."""
    zai = FakeZai(concurrency=CONCURRENCY, generation_seconds=generation(3, 0.05, 0.25))
    async with FakeDiscord() as fake_discord, zai:
        users = [fake_discord.add_user(f"user{n}") for n in range(USERS)]
        names = [f"room-{n}" for n in range(CHANNELS)]
        guild = fake_discord.add_guild(name="Busy", channels=names, members=users)
        channels = [guild.channel(name) for name in names]
        db_path = tmp_path / "data" / "bot.db"
        (tmp_path / "cwd").mkdir()
        env = bot_env(
            fake_discord,
            zai,
            db_path,
            database_url,
            QUOTA_DAILY_CREDITS=str(ROUNDS),
            MAX_INFLIGHT_PER_USER=str(ROUNDS),
            ZAI_MAX_CONCURRENT_TASKS=str(CONCURRENCY),
        )
        bot = await start_bot(fake_discord, env, tmp_path / "cwd", tmp_path / "bot.log")
        try:
            yield Crowd(fake_discord, zai, guild, users, channels, database_url)
        finally:
            assert await bot.stop() == 0, bot.log()


async def burst(c: Crowd) -> list[FakeInteraction]:
    """Round after round, every user asks once in their channel (all at once in a round)."""
    sent: list[FakeInteraction] = []
    for round_ in range(ROUNDS):
        asks = [
            c.discord.slash(
                c.guild,
                c.channels[n % CHANNELS],
                user,
                "video",
                subcommand="text",
                options={"prompt": f"{user.username} round {round_}"},
            )  # fmt: skip
            for n, user in enumerate(c.users)
        ]
        sent += await asyncio.gather(*asks)
        # Job ids then follow the rounds, which the fairness check relies on.
        await _accepted(c, len(sent))
    return sent


async def _accepted(c: Crowd, count: int) -> None:
    """Wait until `count` jobs exist."""
    await eventually(lambda: _count(c, "TRUE") >= count, timeout=30, what=f"{count} accepted jobs")


def _count(c: Crowd, where: str) -> int:
    """Jobs matching a condition, in the child's database."""
    return query(c.db_path, f"SELECT count(*) FROM jobs WHERE {where}")[0][0]  # noqa: S608


def start_order(c: Crowd) -> list[tuple[int, int]]:
    """(user, k) of each job in the order the provider accepted them: k = the user's k-th job."""
    rows = query(c.db_path, "SELECT id, user_id, request_id FROM jobs ORDER BY id")
    seen: Counter[int] = Counter()
    rank: dict[str, tuple[int, int]] = {}
    for row in rows:
        seen[row["user_id"]] += 1
        rank[row["request_id"]] = (row["user_id"], seen[row["user_id"]])
    return [rank[body["request_id"]] for body in c.zai.submits]


def peak_tasks(fake: FakeZai) -> int:
    """The most tasks the provider had PROCESSING at once."""
    edges = []
    for task in fake.tasks.values():
        edges += [(task.created_at, 1), (task.finished_at or float("inf"), -1)]
    running = peak = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):
        running += step
        peak = max(peak, running)
    return peak


async def test_burst_of_500_requests_from_100_users(crowd: Crowd) -> None:
    c = crowd
    loop = asyncio.get_running_loop()
    began = loop.time()
    interactions = await burst(c)
    dispatch_seconds = loop.time() - began

    # Every request answered within Discord's 3 seconds, and accepted.
    latencies = [i.callback_at - i.dispatched_at for i in interactions]  # type: ignore[operator]
    assert len(latencies) == USERS * ROUNDS and max(latencies) < DISCORD_DEADLINE
    answers = await asyncio.gather(*(i.wait_response(timeout=30) for i in interactions))
    assert all("Accepted as video #" in a.content for a in answers)

    # All delivered, each exactly once.
    total = USERS * ROUNDS
    await eventually(
        lambda: _count(c, "state = 'delivered'") >= total, timeout=150, what="every video"
    )
    posted = Counter(m.nonce for ch in c.channels for m in c.discord.messages(ch) if m.nonce)
    assert sorted(k for k in posted if k.startswith("job-")) == sorted(
        f"job-{n}" for n in range(1, total + 1)
    )
    assert max(posted.values()) == 1

    # Queued fairly: every user's first video started before anyone's second.
    order = start_order(c)
    first_second = next(i for i, (_, k) in enumerate(order) if k == 2)
    assert first_second == USERS and all(k == 1 for _, k in order[:first_second])
    for user in {u for u, _ in order}:
        ks = [k for u, k in order if u == user]
        assert ks == sorted(ks)  # each user's own requests in the order they were made

    # The provider worked at its limit and was never asked for more.
    assert peak_tasks(c.zai) == CONCURRENCY and c.zai.rejected == []
    print(
        f"\n[burst] requests={len(interactions)} dispatched in {dispatch_seconds:.1f}s "
        f"ack max={max(latencies):.2f}s p50={sorted(latencies)[len(latencies) // 2]:.3f}s "
        f"delivered={total} lost=0 duplicated=0 provider peak={peak_tasks(c.zai)} "
        f"all done in {loop.time() - began:.1f}s"
    )


# --------------------------------------------------------------------------- memory

VIDEO_SIZE = 40 * MiB
VIDEOS = 3


async def test_memory_stays_flat_while_relaying_big_videos(
    tmp_path: Path, database_url: str
) -> None:
    """Three 40 MiB videos go through a child bot; its peak RSS grows far less than one video."""
    async with FakeDiscord() as fake_discord, FakeZai(video_size=VIDEO_SIZE) as fake_zai:
        alice = fake_discord.add_user("alice")
        guild = fake_discord.add_guild(
            name="Big", channels=["general"], members=[alice], filesize_limit=100 * MiB
        )
        db_path = tmp_path / "data" / "bot.db"
        (tmp_path / "cwd").mkdir()
        env = bot_env(fake_discord, fake_zai, db_path, database_url)
        bot = await start_bot(fake_discord, env, tmp_path / "cwd", tmp_path / "bot.log")
        try:
            before = bot.status_kib("VmHWM")
            for n in range(1, VIDEOS + 1):
                await fake_discord.slash(
                    guild, guild.channel("general"), alice, "video", subcommand="text",
                    options={"prompt": f"big video {n}"},
                )  # fmt: skip
                await eventually(
                    lambda n=n: _delivered(database_url) >= n, timeout=60, what=f"video {n}"
                )
            after = bot.status_kib("VmHWM")
        finally:
            assert await bot.stop() == 0, bot.log()
        sizes = [len(data) for m in fake_discord.messages(guild.channel("general"))
                 for name, data in m.attachments if name.endswith(".mp4")]  # fmt: skip
    assert sizes == [VIDEO_SIZE] * VIDEOS  # relayed whole, never re-encoded
    growth = (after - before) * 1024
    print(
        f"\n[memory] relayed {VIDEOS} x {VIDEO_SIZE // MiB} MiB; peak RSS "
        f"{before // 1024} -> {after // 1024} MiB (+{growth / MiB:.1f} MiB)"
    )
    assert growth < VIDEO_SIZE / 4


def _delivered(db_path: Path | str) -> int:
    """Delivered jobs in the child's database."""
    return query(db_path, "SELECT count(*) FROM jobs WHERE state = 'delivered'")[0][0]
