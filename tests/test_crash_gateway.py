"""kill -9 at every step of one gateway job's life (issue 13), then start again.

As tests/test_crash.py, with the job routed to the New-API gateway fake: an image job whose
picture the bot publishes on its status message and the gateway fetches by link. After the
restart the job ends delivered exactly once, or failed and refunded exactly once; the gateway
never gets the task twice and the job never moves to another provider.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fakes.discord import FakeDiscord, FakeGuild, FakeUser
from tests.fakes.media import make_png
from tests.fakes.newapi import FakeNewApi
from tests.fakes.zai import FakeZai
from tests.procs import BotProcess, bot_env, start_bot
from tests.test_crash import FINAL, Point, job_row, ledger, results, statuses, told
from tests.test_crash import POINTS as CRASH_POINTS
from tests.util import eventually

MODEL = "viduq3t-540p"
# The failpoints of test_crash.py (the download hold belongs to the Z.AI fake, so it is left out;
# a crash mid-upload is on the Discord side and is kept).
POINTS = [p for p in CRASH_POINTS if p.name != "during_download"]


@dataclass
class World:
    """The fakes (Discord, Z.AI, the gateway) and where the child keeps its files."""

    discord: FakeDiscord
    zai: FakeZai
    gateway: FakeNewApi
    guild: FakeGuild
    alice: FakeUser
    db_path: Path
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
    """The fakes in this process; the child has the gateway configured beside Z.AI."""
    async with (
        FakeDiscord() as fake_discord,
        FakeZai() as fake_zai,
        FakeNewApi(fetch_pictures=True) as gateway,
    ):
        alice = fake_discord.add_user("alice")
        guild = fake_discord.add_guild(name="Crash", channels=["general"], members=[alice])
        db_path = tmp_path / "data" / "bot.db"
        cwd = tmp_path / "cwd"
        cwd.mkdir()
        env = bot_env(
            fake_discord,
            fake_zai,
            db_path,
            database_url,
            GATEWAY_BASE_URL=gateway.base_url,
            GATEWAY_API_KEY=gateway.api_key,
            PROVIDER_FALLBACK="on",
        )
        yield World(
            fake_discord, fake_zai, gateway, guild, alice, db_path, env, cwd, tmp_path / "bot.log"
        )


async def crash(world: World, point: Point) -> None:
    """Run the first process until it dies at `point` (by failpoint or by our kill -9)."""
    if point.name == "during_upload":
        # Only the result: the picture may go up in a status message first (publish_pictures
        # posts one when the launcher's has not been posted), and that upload is not the point.
        world.discord.hold_uploads(nonce="job-1")
    world.gateway.hold_all = point.hold_task
    bot = await world.start(point.crash_at)
    picture = world.discord.add_attachment("fox.png", make_png(320, 240), "image/png")
    await world.discord.slash(
        world.guild, world.channel, world.alice, "video", subcommand="image",
        options={"model": MODEL, "prompt": f"crash at {point.name}"},
        attachments={"image": picture},
    )  # fmt: skip
    if point.name == "during_upload":
        await world.discord.wait_upload_held()
        await bot.kill()
        world.discord.release_uploads()  # Discord got the whole upload: the answer was lost
        await world.discord.wait_for_message(lambda m: m.nonce == "job-1", timeout=10)
    assert await bot.wait_exit() == -9, world.log_path.read_text()


async def recover(world: World, point: Point) -> dict[str, object]:
    """Start again without the failpoint and wait until the job reached a final state."""
    world.discord.advance(point.down_for)
    world.gateway.hold_all = False
    for task_id in list(world.gateway.tasks):
        world.gateway.finish(task_id)
    bot = await world.start()
    try:
        job = await eventually(
            lambda: (row := job_row(world)) and row["state"] in FINAL and row,  # type: ignore[arg-type]
            timeout=30,
            what="the job to end",
        )
        if job["state"] == "delivered":
            await eventually(lambda: results(world, int(job["id"])), what="the result message")  # type: ignore[arg-type]
        else:
            await eventually(lambda: told(world, int(job["id"])), what="the refund notice")  # type: ignore[arg-type]
    finally:
        assert await bot.stop() == 0, world.log_path.read_text()
    return job


@pytest.mark.parametrize("point", POINTS, ids=[p.name for p in POINTS])
async def test_kill_9_then_restart_ends_a_gateway_job_once(world: World, point: Point) -> None:
    await crash(world, point)
    job = await recover(world, point)
    job_id = int(job["id"])  # type: ignore[call-overload]

    assert job["state"] == point.ends, job
    assert job["provider"] == "gateway" and world.zai.submits == []  # never moved
    assert len(world.gateway.submits) == point.submits  # never resent
    assert len(world.gateway.fetched) == point.submits  # the published link still worked
    assert len(results(world, job_id)) == (1 if point.ends == "delivered" else 0)  # type: ignore[arg-type]
    assert len(statuses(world, job_id)) <= 1  # type: ignore[arg-type]
    if point.ends == "delivered":
        assert ledger(world, job_id) == [("reserve", -1)] and job["refunded"] == 0  # type: ignore[arg-type]
    else:
        assert job["error_code"] == "submit_unconfirmed"
        assert ledger(world, job_id) == [("reserve", -1), ("refund", 1)]  # type: ignore[arg-type]
    assert "Traceback" not in world.log_path.read_text()
