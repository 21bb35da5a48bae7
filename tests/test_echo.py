"""Issue 10 items 6 and 7: what members write is echoed inert; only a mention in the text asks."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cogs.common import inert
from tests.fakes.discord import FakeDiscord
from tests.fakes.media import make_png
from tests.harness import Harness, harness
from tests.test_e2e import make_it, mention_question, private_text, slash
from tests.test_moderation import admin, spent
from tests.util import eventually

# Two masked links on one line (discord.utils.escape_markdown escapes only the first), one
# behind a typed backslash, one split by a newline, and a mention of everyone.
BAIT = (
    "[Claim Nitro](https://evil.example/a) and [free](https://evil.example/b) "
    "\\[gift](https://evil.example/c) [x]\n(https://evil.example/d) @everyone"
)
REASON = "see [the appeal form](https://evil.example/appeal)"


def live_links(text: str) -> list[str]:
    """Masked links to the bait's host that Discord would render (escaped characters such as
    `\\[` or `\\\\` taken out first); the bot's own links (e.g. /jobs' `[video](…)`) are fine."""
    plain = re.sub(r"\\[^\w\s]", "", text)
    return re.findall(r"\[[^\]]*\]\(\s*<?https?://evil\.example", plain)


def test_the_checker_finds_what_it_should() -> None:
    assert live_links("[a](https://evil.example)") and live_links("\\\\[a](https://evil.example)")
    assert not live_links("\\[a\\](https://evil.example)")
    assert live_links(BAIT.replace("\n", " "))


@pytest.mark.parametrize("one_line", [True, False])
def test_inert_text_has_no_live_link_or_mass_mention(one_line: bool) -> None:
    text = inert(BAIT, 2000, one_line=one_line)
    assert live_links(text) == [] and "@everyone" not in text
    assert "https://evil.example/a" in text  # the address stays readable


def _everything_sent(fake: FakeDiscord) -> list[str]:
    """Every string the bot sent: messages in every channel, their edits, interaction callbacks."""
    payloads: list[object] = [
        m.payload() for c in list(fake.channels) for m in fake.messages(c, include_deleted=True)
    ]
    payloads += [e.payload for c in list(fake.channels) for m in fake.messages(c) for e in m.edits]
    payloads += [c.payload for c in fake.callbacks]
    return [s for p in payloads for s in _strings(p)]


async def test_member_markdown_never_becomes_a_link(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        mods = h.guild.channel("mods")
        await admin(h, "alerts", channel=mods)
        await admin(h, "approval on", channel=mods)
        assert "Accepted" in await private_text(await slash(h, "text", prompt=BAIT))
        request = await h.discord.wait_for_message(
            lambda m: "Video request #1" in m.content, channel=mods
        )
        click = await h.discord.click(h.guild, mods, h.mod, request, "approval:reject:1")
        await click.wait_callback()
        assert click.modal is not None
        field = click.modal["components"][0]["components"][0]["custom_id"]
        await h.discord.submit_modal(click, h.mod, {field: REASON})
        await eventually(lambda: "Rejected" in _status(h, 1), what="the status says rejected")
        await admin(h, "approval off")
        await slash(h, "text", prompt=BAIT)
        result = await h.result_for(h.alice)
        details = await h.discord.click(h.guild, h.channel, h.alice, result, "video:details:2")
        assert "Video #2" in await private_text(details)
        jobs = await h.discord.slash(h.guild, h.channel, h.alice, "jobs")
        assert "appeal form" in await private_text(jobs)
        texts = _everything_sent(h.discord)
        assert any("Claim Nitro" in t for t in texts) and any("appeal form" in t for t in texts)
        assert [t for t in texts if live_links(t)] == []


def _status(h: Harness, job_id: int) -> str:
    """The public status message of a job ('' before it is posted)."""
    found = [m.content for m in h.bot_messages() if f"video #{job_id} " in m.content]
    return found[0] if found else ""


def _strings(value: object) -> list[str]:
    """Every string inside a JSON value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


# --- item 7: a reply to the bot is not a request ------------------------------------------


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    """A running bot."""
    async with harness(tmp_path) as running:
        yield running


async def test_a_reply_that_does_not_mention_in_text_starts_nothing(h: Harness) -> None:
    me = h.discord.bot_user
    picture = h.attachment("a.png", make_png(320, 240), "image/png")
    # Discord puts the replied-to author in `mentions` (ping on reply); the text has no <@id>.
    await h.discord.user_message(
        h.guild, h.channel, h.alice, "nice one!", attachments=[picture], mentions=[me]
    )
    # A barrier: a real mention afterwards goes all the way to its result.
    later = h.attachment("b.png", make_png(322, 240), "image/png")
    await h.discord.user_message(
        h.guild, h.channel, h.bob, f"<@!{me.id}> go", attachments=[later], mentions=[me]
    )
    await make_it(h, await mention_question(h), h.bob)
    await h.result_for(h.bob)
    assert h.resources is not None
    rows = await h.resources.db.fetchall("SELECT user_id FROM jobs")
    assert [r[0] for r in rows] == [h.bob.id]
    assert len(h.discord.cdn_downloads) == 1 and len(h.zai.submits) == 1
    assert await spent(h) == 1
    replies = [m for m in h.bot_messages() if f"<@{h.alice.id}>" in m.content]
    assert replies == []
