"""kill -9 while a still is being made: it ends like a video's ambiguous submit (refunded, told)."""

from __future__ import annotations

import pytest

from tests.test_crash import World, job_row, ledger, told
from tests.test_crash import world as world  # noqa: F401 (the fixture)
from tests.util import eventually

FINAL = ("delivered", "failed", "refused", "undeliverable", "rejected")


@pytest.mark.parametrize("point", ["before_submit", "after_submit"])
async def test_still_caught_mid_submit_is_refunded_and_told(world: World, point: str) -> None:
    bot = await world.start(point)
    await world.discord.slash(
        world.guild, world.channel, world.alice, "image", options={"prompt": f"crash {point}"}
    )
    assert await bot.wait_exit() == -9, world.log_path.read_text()
    bot = await world.start()
    try:
        job = await eventually(
            lambda: (row := job_row(world)) and row["state"] in FINAL and row,
            timeout=30,
            what="the still to end",
        )
        await eventually(lambda: told(world, int(job["id"])), what="the refund notice")
    finally:
        assert await bot.stop() == 0, world.log_path.read_text()
    assert job["state"] == "failed" and job["error_code"] == "submit_unconfirmed"
    assert ledger(world, int(job["id"])) == [("reserve", -1), ("refund", 1)]
    assert len(world.zai.media_api.images) == (1 if point == "after_submit" else 0)
    assert world.zai.submits == []
