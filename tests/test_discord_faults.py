"""Discord misbehaving at delivery time: retry where it helps, else DMs, else `undeliverable`.

Each case holds the job at the provider until its status message is up, breaks Discord the
way the case says, then lets the video finish. Whatever happens, exactly one result is posted
somewhere or the job ends `undeliverable` (refunded once) with a reason that /jobs and the
status message show: nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from storage.jobs import Job
from tests.fakes.discord import FakeChannel, FakeMessage
from tests.harness import Harness, harness
from tests.util import eventually, reason

FINAL = ("delivered", "failed", "refused", "undeliverable", "rejected")
MESSAGES = r"^/channels/\d+/messages$"


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    """A running bot whose provider keeps tasks PROCESSING until the test finishes them."""
    async with harness(tmp_path, zai={"hold_all": True}) as running:
        yield running


@dataclass(frozen=True)
class Case:
    """One way Discord fails, and where the video must end up."""

    name: str
    breaks: Callable[[Harness, FakeChannel], None]
    ends: str  # "channel", "dm" or "undeliverable"
    reason: str = ""  # words of the undeliverable reason
    uploads: int = 1  # upload attempts (POSTs with the video) the channel must have seen
    dm_open: bool = True


def _fail_uploads(status: int, times: int, **kwargs: Any) -> Callable[[Harness, FakeChannel], None]:
    """Make the next `times` message POSTs in the channel answer `status`."""

    def breaks(h: Harness, channel: FakeChannel) -> None:
        """Queue the fault."""
        h.discord.fail_next(
            "POST", rf"^/channels/{channel.id}/messages$", status, times=times, **kwargs
        )

    return breaks


CASES = [
    Case("upload_500_is_retried", _fail_uploads(500, 1), "channel", uploads=2),
    Case("upload_503_is_retried", _fail_uploads(503, 1), "channel", uploads=2),
    Case(
        "channel_rate_limit_429_is_waited_out",
        _fail_uploads(429, 1, retry_after=0.5),
        "channel",
        uploads=2,
    ),
    Case("channel_deleted_goes_to_dm", lambda h, c: h.discord.delete_channel(c), "dm"),
    Case(
        "send_permission_removed_goes_to_dm",
        lambda h, c: h.discord.set_permissions(c, send=False),
        "dm",
    ),
    Case(
        "attach_permission_removed_goes_to_dm",
        lambda h, c: h.discord.set_permissions(c, attach=False),
        "dm",
    ),
    Case(
        "requester_left_still_gets_it_in_the_channel",
        lambda h, c: h.discord.remove_member(h.guild, h.alice),
        "channel",
    ),
    Case(
        "channel_deleted_and_dms_closed",
        lambda h, c: h.discord.delete_channel(c),
        "undeliverable",
        "the channel no longer exists, and the requester cannot be sent direct messages",
        dm_open=False,
    ),
    Case(
        "requester_gone_and_no_send_permission",
        lambda h, c: (
            h.discord.remove_member(h.guild, h.alice),
            h.discord.set_permissions(c, send=False),
        ),
        "undeliverable",
        "may not post or attach files in the channel, and the requester cannot be sent",
    ),
]


async def ended(h: Harness, job_id: int) -> Job:
    """Wait until the job reached a final state."""
    assert h.resources is not None
    store = h.resources.engine.store

    async def final() -> Job | None:
        """The job, once final."""
        job = await store.get(job_id)
        return job if job is not None and job.state in FINAL else None

    return await eventually(final, timeout=30, what=f"job {job_id} to end")


def results(h: Harness, job_id: int) -> list[FakeMessage]:
    """Every result message of the job, in any channel or DM."""
    return [
        m
        for channel in list(h.discord.channels)
        for m in h.discord.messages(channel)
        if m.nonce == f"job-{job_id}"
    ]


def uploads(h: Harness, channel: FakeChannel) -> list[float]:
    """When the bot's multipart POSTs to the channel arrived (status posts are JSON: skipped)."""
    path = f"/channels/{channel.id}/messages"
    posts = [r for r in h.discord.requests if r.method == "POST" and r.path == path]
    return [r.at for r in posts[1:]]  # the first POST there is the status message


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_delivery_survives_discord_faults(h: Harness, case: Case) -> None:
    channel = h.channel
    h.alice.accepts_dms = case.dm_open
    await h.discord.slash(
        h.guild, channel, h.alice, "video", subcommand="text", options={"prompt": case.name}
    )
    status = await h.discord.wait_for_message(lambda m: m.nonce == "status-1", channel=channel)
    await eventually(lambda: h.zai.processing(), what="the task to start")
    case.breaks(h, channel)
    h.zai.finish_all()
    job = await ended(h, 1)

    posted = results(h, 1)
    if case.ends == "undeliverable":
        assert job.state == "undeliverable" and job.refunded == 1, job
        assert case.reason in reason(job.error_message), job.error_message
        assert posted == []
        await _reason_is_visible(h, job, status)
    else:
        assert job.state == "delivered", job
        [message] = posted
        where = h.discord.channels[message.channel_id]
        assert where.is_dm == (case.ends == "dm")
        assert job.result_message_id == (None if where.is_dm else message.id)
    assert len(uploads(h, channel)) == case.uploads
    if "429" in case.name:
        first, retry = uploads(h, channel)
        assert retry - first >= 0.5  # Retry-After honoured
    rows = await h.resources.db.fetchall(  # type: ignore[union-attr]
        "SELECT reason FROM credit_ledger WHERE job_id = 1 ORDER BY id"
    )
    assert [r[0] for r in rows] == (
        ["reserve", "refund"] if case.ends == "undeliverable" else ["reserve"]
    )


async def _reason_is_visible(h: Harness, job: Job, status: FakeMessage) -> None:
    """The reason shows in /jobs and, when the channel still exists, in the status message."""
    if status.channel_id in h.discord.channels:
        await eventually(lambda: reason(job.error_message) in status.content, what="status edit")
    if h.guild.member(job.user_id) is None:
        return  # someone who left cannot run /jobs here; the status message told the channel
    jobs = await h.discord.slash(h.guild, h.guild.channel("mods"), h.alice, "jobs")
    text = (await jobs.wait_response()).content
    assert "undeliverable" in text and reason(job.error_message)[:100] in text, text
