"""Issue 12: /jobs has a Cancel button under each of the member's jobs that has not reached the
provider (queued or waiting for approval): refunded once however often it is clicked, also
against the scheduler and after a restart; a job already at the provider says so."""

from __future__ import annotations

from pathlib import Path

from storage.states import JobState
from tests.fakes.discord import FakeInteraction, FakeMessage
from tests.harness import Harness, harness
from tests.test_cancel import buttons, engine_approve, ledger
from tests.test_discord_faults import ended
from tests.test_e2e import private_text, slash
from tests.test_moderation import admin, spent
from tests.util import eventually

CANCELLED = "was cancelled; your 1 credit was refunded"


async def jobs_list(h: Harness) -> FakeMessage:
    """alice's /jobs, as she sees it (private, with its buttons)."""
    listing = await (await h.discord.slash(h.guild, h.channel, h.alice, "jobs")).wait_response()
    assert listing.ephemeral
    return listing


async def outcome(click: FakeInteraction, listing: FakeMessage, job_id: int) -> str:
    """What a Cancel click did: the list updated in place, or a private refusal."""
    callback = await click.wait_callback()
    if callback["type"] == 7:  # UPDATE_MESSAGE: the list again, the cancel noted on top
        await eventually(lambda: f"#{job_id} {CANCELLED}" in listing.content, what="list")
        return "cancelled"
    return await private_text(click)


async def test_cancel_from_jobs_refunds_once_and_survives_a_restart(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        assert h.resources is not None
        await admin(h, "approval on", channel=h.guild.channel("mods"))
        assert "Accepted" in await private_text(await slash(h, "text", prompt="a lighthouse"))
        listing = await jobs_list(h)
        assert buttons(listing) == ["jobs:cancel:1"] and "pending" in listing.content
        await h.restart()  # the button is rebuilt from its custom_id
        clicks = [
            await h.discord.click(h.guild, h.channel, h.alice, listing, "jobs:cancel:1")
            for _ in range(2)  # both dispatched before either is answered
        ]
        texts = sorted([await outcome(c, listing, 1) for c in clicks])
        assert texts[0].endswith("already ended (cancelled); there is nothing to cancel.")
        assert texts[1] == "cancelled"
        await eventually(lambda: buttons(listing) == [], what="the button gone from the list")
        assert await ledger(h.resources.db, 1) == [("reserve", -1), ("refund", 1)]
        assert await spent(h) == 0 and h.zai.requests == []
        mods = h.guild.channel("mods")
        request = next(m for m in h.discord.messages(mods) if "Video request #1" in m.content)
        await eventually(lambda: "Cancelled by the member" in request.content, what="mods told")
        assert await engine_approve(h, 1) is False


async def test_cancels_from_jobs_racing_the_scheduler_end_each_job_once(tmp_path: Path) -> None:
    async with harness(tmp_path, zai_max_concurrent_tasks=1, zai={"hold_all": True}) as h:
        assert h.resources is not None
        for n in range(1, 6):
            await private_text(await slash(h, "text", prompt=f"kite {n}"))
        await eventually(lambda: len(h.zai.submits) == 1, what="the first at the provider")
        listing = await jobs_list(h)
        assert sorted(buttons(listing)) == [f"jobs:cancel:{n}" for n in range(2, 6)]
        assert all(len(custom_id) < 100 for custom_id in buttons(listing))
        h.zai.finish_all()  # the slot frees: the scheduler submits the next queued job …
        said: dict[int, str] = {}
        for n in range(2, 6):  # … while the member cancels them one after the other
            click = await h.discord.click(h.guild, h.channel, h.alice, listing, f"jobs:cancel:{n}")
            said[n] = await outcome(click, listing, n)
        sent = {body["request_id"] for body in h.zai.submits}
        for n, text in said.items():
            job = await h.resources.engine.job(n)
            assert job is not None
            rows = await ledger(h.resources.db, n)
            if text == "cancelled":
                assert job.state is JobState.CANCELLED and job.request_id not in sent
                assert rows == [("reserve", -1), ("refund", 1)]
            else:
                assert "can no longer be cancelled" in text, text
                assert job.request_id in sent and rows == [("reserve", -1)]
        assert len(h.zai.submits) <= 2  # one slot: at most one of them reached the provider
        await ended(h, 1)


async def test_a_job_already_at_the_provider_cannot_be_cancelled(tmp_path: Path) -> None:
    async with harness(tmp_path, zai={"hold_all": True}) as h:
        assert h.resources is not None
        await admin(h, "approval on", channel=h.guild.channel("mods"))
        await private_text(await slash(h, "text", prompt="a dune"))
        listing = await jobs_list(h)  # listed while waiting for approval
        assert buttons(listing) == ["jobs:cancel:1"]
        assert await engine_approve(h, 1)
        await eventually(lambda: len(h.zai.submits) == 1, what="the job at the provider")
        click = await h.discord.click(h.guild, h.channel, h.alice, listing, "jobs:cancel:1")
        text = await private_text(click)
        assert "already being made at the video service and can no longer be cancelled" in text
        assert await ledger(h.resources.db, 1) == [("reserve", -1)]
        assert buttons(await jobs_list(h)) == []  # a fresh list offers no Cancel for it
