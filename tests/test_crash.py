"""kill -9 at every step of a job's life, then start again on the same database file.

The bot runs as a real child process (tests/procs.py) against the fakes of this process, which
outlive it. After the restart every job must end delivered exactly once, or failed and refunded
exactly once with the user told why; no task is submitted twice and no video posted twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from tests.fakes.discord import FakeDiscord, FakeGuild, FakeMessage, FakeUser
from tests.fakes.discord_state import NONCE_WINDOW
from tests.fakes.zai import FakeZai
from tests.procs import BotProcess, bot_env, query, start_bot
from tests.util import eventually

FINAL = ("delivered", "failed", "refused", "undeliverable", "rejected")
REFUND_TEXT = "Your credit was refunded"


@dataclass(frozen=True)
class Point:
    """Where the process dies and how the job must end."""

    name: str
    ends: Literal["delivered", "failed"]
    submits: int
    crash_at: str | None = None  # a failpoint; None: the test kills the process itself
    hold_task: bool = False  # keep the task PROCESSING until after the crash
    down_for: float = 0.0  # seconds the bot stays down (the fake Discord's clock moves on)


POINTS = [
    Point("after_accept", "delivered", 1, "after_accept"),
    Point("before_submit", "failed", 0, "before_submit"),
    Point("after_submit", "failed", 1, "after_submit"),  # the ambiguous one: stated, refunded
    Point("after_poll", "delivered", 1, "after_poll", hold_task=True),
    Point("after_succeeded", "delivered", 1, "after_succeeded"),
    Point("during_download", "delivered", 1),
    Point("after_download", "delivered", 1, "after_download"),
    Point("during_upload", "delivered", 1),
    Point("after_upload", "delivered", 1, "after_upload"),
    # Down longer than Discord remembers nonces: the restart finds the result in the channel.
    Point("after_upload_down_10_min", "delivered", 1, "after_upload", down_for=NONCE_WINDOW * 2),
]


@dataclass
class World:
    """The fakes, one guild with alice in #general, and where the child keeps its files."""

    discord: FakeDiscord
    zai: FakeZai
    guild: FakeGuild
    alice: FakeUser
    db_path: Path  # its folder holds the scratch files
    env: dict[str, str]
    cwd: Path
    log_path: Path

    @property
    def channel(self) -> int:
        """#general's id."""
        return self.guild.channel("general").id

    async def start(self, crash_at: str | None = None) -> BotProcess:
        """Start a child bot (with a failpoint armed, if given)."""
        return await start_bot(self.discord, self.env, self.cwd, self.log_path, crash_at=crash_at)


@pytest.fixture
async def world(tmp_path: Path, database_url: str) -> AsyncIterator[World]:
    """Fakes in this process; the child gets a cwd without .env and a fresh database path."""
    async with FakeDiscord() as fake_discord, FakeZai() as fake_zai:
        alice = fake_discord.add_user("alice")
        guild = fake_discord.add_guild(name="Crash", channels=["general"], members=[alice])
        db_path = tmp_path / "data" / "bot.db"
        cwd = tmp_path / "cwd"
        cwd.mkdir()
        env = bot_env(fake_discord, fake_zai, db_path, database_url)
        yield World(fake_discord, fake_zai, guild, alice, db_path, env, cwd, tmp_path / "bot.log")


def job_row(world: World) -> dict[str, object] | None:
    """The one job of the test, as a dict (None before it exists)."""
    rows = query(world.env["DATABASE_URL"], "SELECT * FROM jobs ORDER BY id")
    assert len(rows) <= 1, "the test makes one job"
    return dict(rows[0]) if rows else None


def results(world: World, job_id: int) -> list[FakeMessage]:
    """Every live result message of the job, in any channel or DM (counted by nonce)."""
    nonce = f"job-{job_id}"
    return [
        m
        for channel in list(world.discord.channels)
        for m in world.discord.messages(channel)
        if m.nonce == nonce and m.author_id == world.discord.bot_user.id
    ]


def statuses(world: World, job_id: int) -> list[FakeMessage]:
    """The job's status messages in #general."""
    nonce = f"status-{job_id}"
    return [m for m in world.discord.messages(world.channel) if m.nonce == nonce]


async def crash(world: World, point: Point) -> None:
    """Run the first process until it dies at `point` (by failpoint or by our kill -9)."""
    if point.name == "during_download":
        world.zai.hold_media()
    if point.name == "during_upload":
        # Only the result: a picture or a status upload before it is not the crash point.
        world.discord.hold_uploads(nonce="job-1")
    world.zai.hold_all = point.hold_task
    bot = await world.start(point.crash_at)
    await world.discord.slash(
        world.guild, world.channel, world.alice, "video", subcommand="text",
        options={"prompt": f"crash at {point.name}"},
    )  # fmt: skip
    if point.crash_at is None:
        await kill_mid_transfer(world, bot, point)
    assert await bot.wait_exit() == -9, world.log_path.read_text()


async def kill_mid_transfer(world: World, bot: BotProcess, point: Point) -> None:
    """kill -9 while the download or the upload is in flight, then let the fake finish it."""
    if point.name == "during_download":
        await world.zai.wait_media_held()
        await bot.kill()
        world.zai.release_media()
        return
    await world.discord.wait_upload_held()
    await bot.kill()
    world.discord.release_uploads()  # Discord got the whole upload: the answer was lost
    await world.discord.wait_for_message(lambda m: m.nonce == "job-1", timeout=10)


async def recover(world: World, point: Point) -> dict[str, object]:
    """Start again without the failpoint and wait until the job reached a final state."""
    world.discord.advance(point.down_for)
    world.zai.hold_all = False
    world.zai.finish_all()
    bot = await world.start()
    try:
        job = await eventually(
            lambda: (row := job_row(world)) and row["state"] in FINAL and row,
            timeout=30,
            what="the job to end",
        )
        if job["state"] == "delivered":
            await eventually(lambda: results(world, int(job["id"])), what="the result message")
        else:
            await eventually(lambda: told(world, int(job["id"])), what="the refund notice")
    finally:
        assert await bot.stop() == 0, world.log_path.read_text()
    return job


def told(world: World, job_id: int) -> bool:
    """The user's status message says the job failed and the credit came back."""
    return any(REFUND_TEXT in m.content for m in statuses(world, job_id))


def ledger(world: World, job_id: int) -> list[tuple[str, int]]:
    """(reason, delta) rows of the job's credit ledger."""
    rows = query(
        world.env["DATABASE_URL"],
        "SELECT reason, delta FROM credit_ledger WHERE job_id = ? ORDER BY id",
        (job_id,),
    )  # fmt: skip
    return [(r["reason"], r["delta"]) for r in rows]


@pytest.mark.parametrize("point", POINTS, ids=[p.name for p in POINTS])
async def test_kill_9_then_restart_ends_every_job_once(world: World, point: Point) -> None:
    await crash(world, point)
    job = await recover(world, point)
    job_id = int(job["id"])

    assert job["state"] == point.ends, job
    assert len(world.zai.submits) == point.submits  # never resent
    assert len(results(world, job_id)) == (1 if point.ends == "delivered" else 0)
    assert len(statuses(world, job_id)) <= 1
    if point.ends == "delivered":
        assert ledger(world, job_id) == [("reserve", -1)] and job["refunded"] == 0
        assert job["result_message_id"] == results(world, job_id)[0].id
    else:
        assert job["error_code"] == "submit_unconfirmed"
        assert ledger(world, job_id) == [("reserve", -1), ("refund", 1)] and job["refunded"] == 1
        assert told(world, job_id)
    [usage] = query(world.env["DATABASE_URL"], "SELECT used FROM credit_usage")
    assert usage["used"] == -sum(delta for _, delta in ledger(world, job_id))
    assert list((world.db_path.parent / "scratch").iterdir()) == []  # no leftover video files
    assert "Traceback" not in world.log_path.read_text()
