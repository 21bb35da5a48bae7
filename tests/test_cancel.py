"""Issue 10 item 8: nothing waits forever. Members cancel their own waiting jobs (refunded once,
even on a double click or against the submit), approvals expire, moderators see what waits."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

from bot.engine import Engine, JobRequest
from bot.errors import BotError
from bot.models import Mode
from storage.db import Database
from tests.conftest import make_engine
from tests.fakes.discord import FakeMessage
from tests.fakes.zai import FakeZai
from tests.harness import Harness, harness
from tests.test_e2e import private_text, slash
from tests.test_moderation import admin, spent
from tests.util import eventually

HOUR = 3600.0


async def ledger(db: Database, job_id: int) -> list[tuple[str, int]]:
    """The ledger rows of one job."""
    rows = await db.fetchall(
        "SELECT reason, delta FROM credit_ledger WHERE job_id = ? ORDER BY id", (job_id,)
    )
    return [(r[0], r[1]) for r in rows]


async def status_of(h: Harness, job_id: int) -> FakeMessage:
    """The public status message of a job."""
    return await eventually(
        lambda: next((m for m in h.bot_messages() if m.nonce == f"status-{job_id}"), None),
        what=f"the status of #{job_id}",
    )


def buttons(message: FakeMessage) -> list[str]:
    """The custom ids of a message's buttons."""
    return [c.get("custom_id", "") for row in message.components for c in row["components"]]


async def engine_approve(h: Harness, job_id: int) -> bool:
    """What a moderator's Approve does, for a click that raced the end of the request."""
    assert h.resources is not None
    return await h.resources.engine.approve(job_id, h.mod.id)


async def answers(interactions: list) -> list[str]:
    """The private answers of several interactions."""
    return [await private_text(i) for i in interactions]


# --- the Cancel button -------------------------------------------------------------------


async def test_the_cancel_button_refunds_once_even_double_clicked(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        assert h.resources is not None
        db = h.resources.db
        await admin(h, "approval on", channel=h.guild.channel("mods"))
        await slash(h, "text", prompt="a lighthouse")
        status = await status_of(h, 1)
        await eventually(lambda: "job:cancel:1" in buttons(status), what="the Cancel button")
        other = await h.discord.click(h.guild, h.channel, h.bob, status, "job:cancel:1")
        assert "Only the person who asked" in await private_text(other)
        clicks = [
            await h.discord.click(h.guild, h.channel, h.alice, status, "job:cancel:1")
            for _ in range(2)  # both dispatched before either is answered
        ]
        texts = sorted(await answers(clicks))
        assert "was cancelled; your 1 credit was refunded" in texts[1]
        assert "already ended (cancelled)" in texts[0]
        await eventually(lambda: "Cancelled by the requester" in status.content, what="status")
        await eventually(lambda: buttons(status) == [], what="the button removed")
        assert await ledger(db, 1) == [("reserve", -1), ("refund", 1)]
        assert await spent(h) == 0 and h.zai.requests == []
        mods = h.guild.channel("mods")
        request = next(m for m in h.discord.messages(mods) if "Video request #1" in m.content)
        await eventually(lambda: "Cancelled by the member" in request.content, what="mods told")
        assert buttons(request) == [] and "a lighthouse" in request.content
        assert await engine_approve(h, 1) is False  # a moderator's click that raced it
        assert h.zai.requests == []


# --- /video cancel, reachable from /jobs ---------------------------------------------------


async def test_slash_cancel_with_autocomplete_and_a_job_at_the_provider(tmp_path: Path) -> None:
    async with harness(tmp_path, zai_max_concurrent_tasks=1, zai={"hold_all": True}) as h:
        await slash(h, "text", prompt="first, at the provider")
        await eventually(lambda: len(h.zai.submits) == 1, what="the first submit")
        await slash(h, "text", prompt="second, queued")
        await status_of(h, 2)
        typed = await h.discord.autocomplete(
            h.guild, h.channel, h.alice, "video", subcommand="cancel", option="job"
        )
        await typed.wait_callback()
        choices = typed.callback["data"]["choices"]
        assert [c["value"] for c in choices] == [2] and "queued" in choices[0]["name"]
        jobs = await private_text(await h.discord.slash(h.guild, h.channel, h.alice, "jobs"))
        assert "/video cancel" in jobs
        at_provider = await slash(h, "cancel", job=1)
        assert "can no longer be cancelled" in await private_text(at_provider)
        assert "was cancelled" in await private_text(await slash(h, "cancel", job=2))
        again = await slash(h, "cancel", job=2)
        assert "already ended" in await private_text(again)
        assert await spent(h) == 1 and len(h.zai.submits) == 1
        typed = await h.discord.autocomplete(
            h.guild, h.channel, h.alice, "video", subcommand="cancel", option="job"
        )
        await typed.wait_callback()
        assert typed.callback["data"]["choices"] == []


# --- cancel racing the submit -------------------------------------------------------------


async def test_cancel_racing_the_submit_ends_each_job_once(
    db: Database, zai_client: object, fake_zai: FakeZai
) -> None:
    # Tasks stay running: the provider's 5 slots stay full, so whatever the machine's speed the
    # scheduler submits 5 jobs and 19 stay queued — both sides win some races.
    fake_zai.hold_all = True
    engine, _ = make_engine(db, zai_client, allowance=100, max_inflight_per_user=100)  # type: ignore[arg-type]
    await engine.start()
    try:
        jobs = [
            await engine.submit(JobRequest(1, 2, 3, "cogvideox-3", Mode.TEXT, f"race {n}"))
            for n in range(24)
        ]
        # Once the scheduler has begun submitting, each job gets two cancels at once, racing
        # the submits still in flight.
        await eventually(lambda: fake_zai.submits, what="the first submit")
        outcomes = await asyncio.gather(
            *(_cancel(engine, job.id) for job in jobs for _ in range(2))
        )
        await eventually(lambda: _settled(engine, len(jobs)), what="every job settled")
    finally:
        await engine.close()
    sent = {body["request_id"] for body in fake_zai.submits}
    cancelled = 0
    for job, pair in zip(jobs, zip(outcomes[::2], outcomes[1::2], strict=True), strict=True):
        row = await engine.job(job.id)
        assert row is not None
        rows = await ledger(db, job.id)
        if row.state == "cancelled":
            cancelled += 1
            assert sorted(pair) == ["already ended", "cancelled"], pair
            assert job.request_id not in sent and rows == [("reserve", -1), ("refund", 1)]
        else:
            assert pair == ("no longer", "no longer"), pair
            assert job.request_id in sent and rows == [("reserve", -1)]
    assert 0 < cancelled < len(jobs)  # both sides won some races (held tasks ensure it)


async def _cancel(engine: Engine, job_id: int) -> str:
    """Cancel as the requester; the outcome in two words."""
    try:
        await engine.cancel(job_id, 3)
    except BotError as exc:
        return "already ended" if "already ended" in exc.user_message else "no longer"
    return "cancelled"


async def _settled(engine: Engine, count: int) -> bool:
    """No job queued or submitting any more."""
    states = [(await engine.job(n)).state for n in range(1, count + 1)]  # type: ignore[union-attr]
    return not {"queued", "submitting"} & set(states)


# --- approvals expire -----------------------------------------------------------------------


async def test_an_approval_nobody_decides_expires_refunded_once(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        assert h.resources is not None
        engine, db = h.resources.engine, h.resources.db
        await admin(h, "approval on", channel=h.guild.channel("mods"))
        await slash(h, "text", prompt="a dune at dawn")
        status = await status_of(h, 1)
        now = time.time()
        assert await engine.expire_approvals(now + 23.9 * HOUR) == 0  # default: 24 hours
        assert await engine.expire_approvals(now + 24.1 * HOUR) == 1
        assert await engine.expire_approvals(now + 48 * HOUR) == 0
        await eventually(lambda: "within 24 hours, so it expired" in status.content, what="told")
        assert "credit was refunded" in status.content and buttons(status) == []
        assert await ledger(db, 1) == [("reserve", -1), ("refund", 1)]
        mods = h.guild.channel("mods")
        request = next(m for m in h.discord.messages(mods) if "Video request #1" in m.content)
        await eventually(lambda: "Expired" in request.content, what="the mods' request marked")
        assert buttons(request) == []
        # A server's own time; the scheduler's sweep ends it without being called.
        assert "12 hours" in await admin(h, "approval expiry", hours=12)
        await slash(h, "text", prompt="a second dune")
        await status_of(h, 2)
        assert await engine.expire_approvals(time.time() + 11.9 * HOUR) == 0
        await db.execute("UPDATE jobs SET created_at = created_at - ? WHERE id = 2", (12 * HOUR,))
        engine.config = dataclasses.replace(engine.config, approval_sweep_seconds=0.0)
        engine.wake()
        second = await status_of(h, 2)
        await eventually(lambda: "within 12 hours" in second.content, what="swept")
        assert await spent(h) == 0 and h.zai.requests == []


async def test_moderators_list_pending_requests_even_unposted_ones(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        mods = h.guild.channel("mods")
        await admin(h, "approval on", channel=mods)
        await slash(h, "text", prompt="posted for approval")
        await h.discord.wait_for_message(lambda m: "Video request #1" in m.content, channel=mods)
        h.discord.set_permissions(mods, send=False)  # the next request cannot be posted there
        await slash(h, "text", prompt="never posted", user=h.bob)
        await status_of(h, 2)
        listing = await admin(h, "approval pending")
        assert "#1 by" in listing and "#2 by" in listing
        first, second = listing.split("#2 by")
        assert "[request](" in first and "not posted in the approval channel" in second
        assert "expires <t:" in first and "never posted" in second
        await slash(h, "cancel", job=2, user=h.bob)
        await eventually(
            lambda: _lacks(admin(h, "approval pending"), "#2 by"), what="cancelled one gone"
        )


async def _lacks(text: object, words: str) -> bool:
    """Whether an awaited text lacks `words`."""
    return words not in await text  # type: ignore[misc]
