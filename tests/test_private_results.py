"""Private results (issue 12): `private:True` sends the video by DM with a link back to the
channel; the channel sees nothing but the requester's private acknowledgement. DMs closed: the
download link as an ephemeral follow-up while the interaction token lives, else a short note
mentioning the requester; /jobs keeps the reason and the link either way."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cogs.common import jump_url
from storage.rows import Job
from tests.harness import Harness, harness
from tests.test_discord_faults import ended, results
from tests.test_e2e import png, private_text, slash
from tests.test_moderation import spent


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    """A running bot."""
    async with harness(tmp_path) as running:
        yield running


def public(h: Harness) -> list[str]:
    """What the bot posted in #general for everyone to see."""
    return [m.content for m in h.bot_messages() if not m.ephemeral]


async def delivered(h: Harness, **options: object) -> tuple[str, Job]:
    """/video text privately; the acknowledgement and the job once it ended."""
    interaction = await slash(h, "text", prompt="a secret kite", private=True, **options)
    ack = await private_text(interaction)
    return ack, await ended(h, 1)


async def test_a_private_result_goes_to_the_requesters_dms_only(h: Harness) -> None:
    ack, job = await delivered(h)
    assert "Accepted as video #1" in ack and "direct message" in ack
    assert job.state == "delivered" and job.private and job.result_message_id is None
    [message] = results(h, 1)
    dm = h.discord.channels[message.channel_id]
    assert dm.is_dm and dm.recipient is h.alice
    assert any(name == "video-1.mp4" for name, _ in message.attachments)
    back = jump_url(h.guild.id, h.channel.id, 0).rsplit("/", 1)[0]  # the channel's link
    assert back in message.content and f"<#{h.channel.id}>" in message.content
    assert public(h) == []  # no status message, no result in the channel
    jobs = await private_text(await h.discord.slash(h.guild, h.channel, h.alice, "jobs"))
    assert "sent to you by direct message" in jobs
    assert await spent(h) == 1


async def test_a_private_result_with_dms_closed_comes_as_an_ephemeral_link(h: Harness) -> None:
    h.alice.accepts_dms = False
    _, job = await delivered(h)
    assert job.state == "delivered" and job.refunded == 0
    assert public(h) == []  # nothing in the channel: not even a note
    [link] = [m for m in h.discord.messages(h.channel) if m.ephemeral and "DM you" in m.content]
    assert link.channel_id == h.channel.id and f"]({job.video_url})" in link.content
    assert "the requester cannot be sent direct messages" in link.content
    jobs = await private_text(await h.discord.slash(h.guild, h.channel, h.alice, "jobs"))
    assert f"[download]({job.video_url})" in jobs
    assert await spent(h) == 1


async def test_a_private_result_with_dms_closed_leaves_a_short_note(h: Harness) -> None:
    """After the interaction token's life the ephemeral link cannot go: a note in the channel."""
    assert h.bot is not None
    h.bot.get_cog("Delivery").private_reply_seconds = 0  # type: ignore[union-attr]
    h.alice.accepts_dms = False
    _, job = await delivered(h)
    assert job.state == "delivered" and job.refunded == 0
    [note] = results(h, 1)
    assert note.channel_id == h.channel.id and note.attachments == []
    assert note.content.startswith(f"<@{h.alice.id}>") and "could not DM you" in note.content
    assert public(h) == [note.content]  # only the note: no status message, no video
    jobs = await private_text(await h.discord.slash(h.guild, h.channel, h.alice, "jobs"))
    assert "could not DM you: the requester cannot be sent direct messages" in jobs
    assert f"[download]({job.video_url})" in jobs
    assert await spent(h) == 1


async def test_a_private_image_request_posts_nothing_publicly(h: Harness) -> None:
    interaction = await slash(h, "image", image=png(h), private=True)
    assert "direct message" in await private_text(interaction)
    job = await ended(h, 1)
    assert job.state == "delivered" and h.discord.channels[results(h, 1)[0].channel_id].is_dm
    assert public(h) == []
