"""Spoken prompts end to end: voice messages (reply to the bot, DM) and `/video text voice:`,
each with a real ogg/opus file made in the test, against the fake Discord and Z.AI."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.audio import make_audio
from tests.fakes.discord import FakeInteraction, FakeMessage, FakeUser
from tests.fakes.zai import Fault
from tests.harness import Harness, harness

VOICE_FLAG = 8192  # IS_VOICE_MESSAGE
HEARD = "a red fox running through fresh snow at dawn"  # the fake's transcript


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    """A running bot."""
    async with harness(tmp_path) as running:
        yield running


def voice_file(h: Harness, seconds: float = 3.0, data: bytes | None = None) -> dict[str, Any]:
    """A voice message's attachment: a real ogg/opus recording on the fake CDN."""
    return h.attachment("voice-message.ogg", data or make_audio(seconds, "ogg"), "audio/ogg")


async def bot_message(h: Harness) -> FakeMessage:
    """Any message of the bot in #general (its answer to a mention without pictures)."""
    me = h.discord.bot_user
    await h.discord.user_message(h.guild, h.channel, h.bob, f"<@{me.id}> hi", mentions=[me])
    return await h.discord.wait_for_message(
        lambda m: m.author_id == h.discord.bot_user.id, channel=h.channel
    )


async def speak(
    h: Harness, channel: Any, user: FakeUser, *, reply_to: FakeMessage | None = None, **kw: Any
) -> FakeMessage:
    """Send a voice message; the bot's answer to it."""
    guild = None if channel is not h.channel else h.guild
    sent = await h.discord.user_message(
        guild, channel, user, attachments=[voice_file(h, **kw)], reply_to=reply_to,
        flags=VOICE_FLAG,
    )  # fmt: skip
    return await h.discord.wait_for_message(
        lambda m: (
            m.author_id == h.discord.bot_user.id
            and (m.message_reference or {}).get("message_id") == str(sent.id)
        ),
        channel=channel,
        timeout=15,
    )


def button(message: FakeMessage, label: str) -> str:
    """The custom_id of a message's button by label."""
    for row in message.components:
        for component in row["components"]:
            if component.get("label") == label:
                return str(component["custom_id"])
    raise LookupError(label)


async def credits_left(h: Harness, user: FakeUser, guild_id: int | None = None) -> int:
    """A member's credits left today."""
    assert h.resources is not None
    gid = h.guild.id if guild_id is None else guild_id
    return (await h.resources.engine.balance(gid, user.id, time.time())).left


async def test_voice_reply_to_the_bot_shows_the_transcript_then_generates(h: Harness) -> None:
    mine = await bot_message(h)
    started = time.perf_counter()
    answer = await speak(h, h.channel, h.alice, reply_to=mine)
    elapsed = time.perf_counter() - started
    assert HEARD in answer.content and not answer.ephemeral
    [sent] = h.zai.media_api.transcriptions
    assert sent.content_type == "audio/wav" and 2.9 < sent.seconds <= 3.0
    assert sent.fields["model"] == "glm-asr-2512" and "hotwords" not in sent.fields
    assert h.zai.submits == [] and await credits_left(h, h.alice) == 10  # free, nothing made

    stolen = await h.discord.click(h.guild, h.channel, h.bob, answer, button(answer, "Generate"))
    assert "person who sent the recording" in (await stolen.wait_response()).content
    go = await h.discord.click(h.guild, h.channel, h.alice, answer, button(answer, "Generate"))
    accepted = await go.wait_response(lambda m: "Accepted" in m.content)
    assert accepted.ephemeral
    await h.result_for(h.alice)
    [body] = h.zai.submits
    assert body["prompt"] == HEARD and body["model"] == "cogvideox-3"
    assert await credits_left(h, h.alice) == 9
    print(f"\nFIGURE voice message → transcript shown: {elapsed * 1000:.0f} ms (fakes)")


async def test_voice_message_not_replying_to_the_bot_is_ignored(h: Harness) -> None:
    await h.discord.user_message(
        h.guild, h.channel, h.alice, attachments=[voice_file(h)], flags=VOICE_FLAG
    )
    mine = await bot_message(h)  # the bot answered something later: the voice was seen
    assert h.zai.media_api.transcriptions == [] and mine.content


async def test_voice_in_a_dm_can_be_edited_before_generating(h: Harness) -> None:
    dm = h.discord.dm_channel(h.alice)
    answer = await speak(h, dm, h.alice)
    assert HEARD in answer.content
    edit = await h.discord.click(None, dm, h.alice, answer, button(answer, "Edit"))
    await edit.wait_callback()
    assert edit.modal is not None and HEARD in json.dumps(edit.modal)
    submit = await h.discord.submit_modal(edit, h.alice, {"transcript:prompt": "a grey fox"})
    await submit.wait_response(lambda m: "Accepted" in m.content)
    await h.discord.wait_for_message(
        lambda m: m.content.startswith(f"<@{h.alice.id}> your video"), channel=dm, timeout=15
    )
    assert h.zai.submits[0]["prompt"] == "a grey fox"


async def slash_voice(h: Harness, **options: Any) -> FakeInteraction:
    """/video text with a recording in `voice`."""
    return await h.discord.slash(
        h.guild, h.channel, h.alice, "video", subcommand="text",
        options=options, attachments={"voice": voice_file(h)},
    )  # fmt: skip


async def test_slash_voice_option_is_private_and_keeps_the_options(h: Harness) -> None:
    interaction = await slash_voice(h, model="viduq1-text", style="anime")
    shown = await interaction.wait_response(lambda m: HEARD in m.content)
    assert shown.ephemeral
    go = await h.discord.click(h.guild, h.channel, h.alice, shown, button(shown, "Generate"))
    await go.wait_response(lambda m: "Accepted" in m.content)
    await h.result_for(h.alice)
    [body] = h.zai.submits
    assert body["model"] == "viduq1-text" and body["style"] == "anime" and body["prompt"] == HEARD


async def test_cancel_makes_nothing(h: Harness) -> None:
    interaction = await slash_voice(h)
    shown = await interaction.wait_response(lambda m: HEARD in m.content)
    cancel = await h.discord.click(h.guild, h.channel, h.alice, shown, button(shown, "Cancel"))
    await cancel.wait_callback()
    assert h.zai.submits == [] and await credits_left(h, h.alice) == 10


async def test_text_needs_a_prompt_or_a_recording(h: Harness) -> None:
    interaction = await h.discord.slash(h.guild, h.channel, h.alice, "video", subcommand="text")
    assert "attach a recording" in (await interaction.wait_response()).content


async def mod(h: Harness, group: str, sub: str, **options: Any) -> str:
    """A /videoadmin command's private answer."""
    i = await h.discord.slash(
        h.guild, h.channel, h.mod, "videoadmin", group=group, subcommand=sub, options=options
    )
    return (await i.wait_response()).content


async def test_hotwords_cost_and_blocklist_apply_to_speech(h: Harness) -> None:
    assert "added" in await mod(h, "hotwords", "add", word="Zorblax")
    assert "Zorblax" in await mod(h, "hotwords", "list")
    await mod(h, "cost", "set", model="glm-asr-2512", credits=1)
    interaction = await slash_voice(h)
    await interaction.wait_response(lambda m: HEARD in m.content)
    [sent] = h.zai.media_api.transcriptions
    assert json.loads(sent.fields["hotwords"]) == ["Zorblax"]
    assert await credits_left(h, h.alice) == 9  # the moderators priced transcription
    await mod(h, "blocklist", "add", pattern="fox")
    blocked = await slash_voice(h)
    assert "do not allow" in (await blocked.wait_response()).content
    assert "removed" in await mod(h, "hotwords", "remove", word="Zorblax")


FAULTS = [
    ("429", Fault.http(429, "1302", "rate limited"), "busy"),
    ("content filter", Fault.http(400, "1301", "refused"), "content policy"),
]


@pytest.mark.parametrize(("name", "fault", "says"), FAULTS, ids=[f[0] for f in FAULTS])
async def test_speech_service_faults_are_told_and_free(
    h: Harness, name: str, fault: Fault, says: str
) -> None:
    await mod(h, "cost", "set", model="glm-asr-2512", credits=2)
    h.zai.media_api.script("asr", fault)
    interaction = await slash_voice(h)
    text = (await interaction.wait_response()).content
    assert says in text and "nothing was charged" in text
    assert await credits_left(h, h.alice) == 10 and h.zai.submits == []


BAD_AUDIO = [
    ("not audio", {"data": b"OggS" + bytes(300)}, "could not be decoded"),
    ("too long", {"seconds": 35.0}, "at most 30 s"),
]


@pytest.mark.parametrize(("name", "kw", "says"), BAD_AUDIO, ids=[b[0] for b in BAD_AUDIO])
async def test_bad_audio_is_refused_before_anything_is_sent(
    h: Harness, name: str, kw: dict[str, Any], says: str
) -> None:
    mine = await bot_message(h)
    answer = await speak(h, h.channel, h.alice, reply_to=mine, **kw)
    assert says in answer.content
    assert h.zai.media_api.transcriptions == [] and h.zai.media_api.rejected == []
    assert await credits_left(h, h.alice) == 10
