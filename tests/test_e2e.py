"""End to end: the real bot (setup_hook, cogs, engine, database) against the fake Discord and Z.AI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.media import probe_video
from tests.fakes.discord import FakeInteraction, FakeMessage
from tests.fakes.media import make_big_mp4, make_jpeg, make_mp4, make_png, make_webp
from tests.harness import Harness, harness
from tests.util import eventually


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    """A running bot."""
    async with harness(tmp_path) as running:
        yield running


def mp4_of(message: FakeMessage) -> bytes:
    """The video attached to a result message."""
    [data] = [d for name, d in message.attachments if name.endswith(".mp4")]
    return data


async def slash(h: Harness, sub: str, user: Any = None, **options: Any) -> FakeInteraction:
    """Run /video <sub> with options; attachments are dicts made by h.attachment."""
    attachments = {k: v for k, v in options.items() if isinstance(v, dict)}
    plain = {k: v for k, v in options.items() if not isinstance(v, dict)}
    return await h.discord.slash(
        h.guild,
        h.channel,
        user or h.alice,
        "video",
        subcommand=sub,
        options=plain,
        attachments=attachments,
    )


async def private_text(interaction: FakeInteraction) -> str:
    """The private answer of an interaction (a reply or the follow-up of a deferral)."""
    message = await interaction.wait_response()
    assert message.ephemeral, message.content
    return message.content


QUESTION = "Which model should animate"


async def make_it(
    h: Harness, question: FakeMessage, user: Any = None, pick: str | None = None
) -> FakeInteraction:
    """Answer the bot's model question (Animate menu or mention): maybe pick, then Make it."""
    user = user or h.alice
    if pick is not None:
        chosen = await h.discord.click(
            h.guild, h.channel, user, question, "animate:pick", values=[pick]
        )
        await chosen.wait_callback()
    return await h.discord.click(h.guild, h.channel, user, question, "animate:go")


async def mention_question(h: Harness) -> FakeMessage:
    """The model question the bot replied to a mention with (still unanswered)."""
    me = h.discord.bot_user.id
    return await h.discord.wait_for_message(
        lambda m: (
            m.author_id == me and QUESTION in m.content and bool(m.components) and not m.ephemeral
        ),
        channel=h.channel,
    )


def png(h: Harness, name: str = "cat.png", w: int = 320, hgt: int = 240) -> dict[str, Any]:
    """A real PNG on the fake CDN."""
    return h.attachment(name, make_png(w, hgt), "image/png")


MODES = [
    ("text", {"prompt": "a cat surfing", "model": "cogvideox-3", "quality": "quality", "fps": 60}),
    (
        "text",
        {"prompt": "an eagle", "model": "viduq1-text", "style": "anime", "aspect_ratio": "9:16"},
    ),
    ("image", {"image": "png", "model": "cogvideox-3", "duration": 10}),
    ("image", {"image": "png", "model": "viduq1-image", "prompt": "wave", "movement": "large"}),
    ("image", {"image": "png", "model": "vidu2-image", "audio": True}),
    ("frames", {"first": "png", "last": "png", "model": "cogvideox-3"}),
    ("frames", {"first": "png", "last": "png", "model": "viduq1-start-end"}),
    ("frames", {"first": "png", "last": "png", "model": "vidu2-start-end"}),
    ("reference", {"image1": "png", "image2": "png", "image3": "png", "prompt": "friends"}),
]


@pytest.mark.parametrize(("sub", "options"), MODES)
async def test_every_command_and_model_mode_delivers(
    h: Harness, sub: str, options: dict[str, Any]
) -> None:
    resolved = {k: png(h) if v == "png" else v for k, v in options.items()}
    interaction = await slash(h, sub, **resolved)
    result = await h.result_for(h.alice)
    assert mp4_of(result) == make_mp4()  # byte-identical to what the provider served
    assert result.allowed_mentions is not None
    assert [int(u) for u in result.allowed_mentions.get("users", [])] == [h.alice.id]
    assert result.allowed_mentions.get("parse") == []
    assert "Accepted" in await private_text(interaction)
    [body] = h.zai.submits
    assert body["model"] == options.get("model", "vidu2-reference")
    assert body["user_id"] == str(h.alice.id)
    assert result.embeds and result.embeds[0]["title"].startswith("Video #")
    assert len(result.components[0]["components"]) == 4


async def test_first_response_comes_before_any_slow_work(h: Harness) -> None:
    interaction = await slash(h, "image", image=png(h))
    await interaction.wait_callback()
    await h.result_for(h.alice)
    cdn = [r.at for r in h.discord.requests if r.path.startswith("/attachments/")]
    assert cdn and interaction.callback_at is not None
    assert interaction.callback_at < min(cdn)  # acknowledged before downloading the picture


async def test_status_message_ends_with_a_link_to_the_video(h: Harness) -> None:
    await slash(h, "text", prompt="a dog")
    result = await h.result_for(h.alice)
    status = next(m for m in h.bot_messages() if "video #" in m.content and m.id != result.id)
    assert status.allowed_mentions == {"parse": []} or status.allowed_mentions.get("parse") == []
    await eventually(lambda: f"/{result.id}" in status.content, what="status links the result")


HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)  # an iPhone photo's start

REFUSALS = [
    ("text", {"prompt": "a cat", "model": "viduq1-text", "duration": 10}, "5-second videos only"),
    ("text", {"prompt": "a cat", "model": "viduq1-text", "audio": True}, "no `audio` option"),
    ("text", {"prompt": "   "}, "no visible text"),
    ("frames", {"first": "png"}, "needs a first and a last frame"),  # cogvideox-3 takes two
    ("image", {"image": ("cat.png", b"just some text, honest", "text/plain")}, "not a picture"),
    ("image", {"image": ("cat.png", b"just some text, honest", "image/png")}, "not a picture"),
    ("image", {"image": ("cat.png", b"", "image/png")}, "empty"),
    ("image", {"image": ("a.heic", HEIC, "image/heic")}, "HEIC/HEIF file"),
    (
        "image",
        {"image": ("thin.png", make_png(10, 400), "image/png"), "model": "vidu2-image"},
        "less than 4 times",
    ),
    (
        "frames",
        {
            "first": "png",
            "last": ("big.png", make_png(640, 480), "image/png"),
            "model": "viduq1-start-end",
        },
        "similar resolutions",
    ),
    ("reference", {"image1": ("tiny.png", make_png(100, 100), "image/png")}, "128×128"),
]


@pytest.mark.parametrize(("sub", "options", "words"), REFUSALS)
async def test_refusals_are_private_and_spend_nothing(
    h: Harness, sub: str, options: dict[str, Any], words: str
) -> None:
    resolved = {
        k: png(h) if v == "png" else h.attachment(*v) if isinstance(v, tuple) else v
        for k, v in options.items()
    }
    interaction = await slash(h, sub, **resolved)
    text = await private_text(interaction)
    assert words in text, text
    assert h.zai.requests == []
    assert h.bot_messages() == []  # nothing public
    rows = await h.resources.db.fetchall("SELECT * FROM credit_ledger")
    assert rows == []


async def test_quota_and_jobs(h: Harness) -> None:
    await slash(h, "text", prompt="a dog")
    result = await h.result_for(h.alice)
    quota = await h.discord.slash(h.guild, h.channel, h.alice, "quota")
    assert "**9** of 10" in await private_text(quota)
    jobs = await h.discord.slash(h.guild, h.channel, h.alice, "jobs")
    text = await private_text(jobs)
    assert "delivered" in text and f"/{result.id})" in text


async def test_context_menu_with_two_images_makes_frames(h: Harness) -> None:
    source = await h.discord.user_message(
        h.guild, h.channel, h.bob, "look", attachments=[png(h), png(h)]
    )
    menu = await h.discord.context_menu(h.guild, h.channel, h.alice, "Animate image", source)
    callback = await menu.wait_callback()
    assert callback["type"] == 9  # a modal asking for the prompt
    modal = await h.discord.submit_modal(
        menu, h.alice, {"prompt": "morph slowly"} if False else _prompt_values(menu, "morph")
    )
    question = await modal.wait_response()
    assert question.ephemeral and QUESTION in question.content
    assert "Accepted" in await private_text(await make_it(h, question))
    await h.result_for(h.alice)
    assert h.zai.submits[0]["prompt"] == "morph" and len(h.zai.submits[0]["image_url"]) == 2


def _prompt_values(menu: FakeInteraction, text: str) -> dict[str, str]:
    """Values for the one text input of the modal the bot opened."""
    rows = menu.modal["components"]
    inputs = [c for row in rows for c in row.get("components", [row.get("component", row)])]
    return {inputs[0]["custom_id"]: text}


async def test_context_menu_on_message_without_images_is_refused(h: Harness) -> None:
    source = await h.discord.user_message(h.guild, h.channel, h.bob, "no pictures")
    menu = await h.discord.context_menu(h.guild, h.channel, h.alice, "Animate image", source)
    assert "1, 2 or 3 pictures" in await private_text(menu)


async def test_mention_with_an_image_starts_a_video(h: Harness) -> None:
    me = h.discord.bot_user
    await h.discord.user_message(
        h.guild,
        h.channel,
        h.alice,
        f"<@{me.id}> make it rain",
        attachments=[h.attachment("p.jpg", make_jpeg(320, 240), "image/jpeg")],
        mentions=[me],
    )
    await make_it(h, await mention_question(h))
    await h.result_for(h.alice)
    assert h.zai.submits[0]["prompt"] == "make it rain"


async def test_mention_with_three_images_is_reference_mode(h: Harness) -> None:
    me = h.discord.bot_user
    pics = [png(h), h.attachment("b.webp", make_webp(300, 300), "image/webp"), png(h)]
    await h.discord.user_message(
        h.guild, h.channel, h.alice, f"<@{me.id}>", attachments=pics, mentions=[me]
    )
    await make_it(h, await mention_question(h))
    await h.result_for(h.alice)
    assert (
        h.zai.submits[0]["model"] == "vidu2-reference" and len(h.zai.submits[0]["image_url"]) == 3
    )


async def test_mention_without_images_explains(h: Harness) -> None:
    me = h.discord.bot_user
    await h.discord.user_message(
        h.guild, h.channel, h.alice, f"<@{me.id}> hi @everyone", mentions=[me]
    )
    reply = await h.discord.wait_for_message(lambda m: m.author_id == me.id, channel=h.channel)
    assert "1, 2 or 3 pictures" in reply.content
    assert reply.allowed_mentions.get("parse") == [] and h.zai.requests == []


async def test_buttons(h: Harness) -> None:
    await slash(h, "image", image=png(h), prompt="spin")
    result = await h.result_for(h.alice)
    details = await h.discord.click(h.guild, h.channel, h.bob, result, "video:details:1")
    assert "spin" in await private_text(details)

    stolen = await h.discord.click(h.guild, h.channel, h.bob, result, "video:reroll:1")
    assert "costs their credits" in await private_text(stolen)
    assert len(h.zai.submits) == 1

    reroll = await h.discord.click(h.guild, h.channel, h.alice, result, "video:reroll:1")
    assert "Accepted as video #2" in await private_text(reroll)
    second = await h.result_for(h.alice, after=result.id)
    assert h.zai.submits[1]["image_url"] == h.zai.submits[0]["image_url"]

    extend = await h.discord.click(h.guild, h.channel, h.alice, second, "video:extend:2")
    assert "Accepted as video #3" in await private_text(extend)
    await h.result_for(h.alice, after=second.id)
    assert h.zai.submits[2]["image_url"] != h.zai.submits[0]["image_url"]  # the last frame

    refused = await h.discord.click(h.guild, h.channel, h.bob, result, "video:delete:1")
    assert "Only the person" in await private_text(refused)
    delete = await h.discord.click(h.guild, h.channel, h.alice, result, "video:delete:1")
    assert "deleted" in await private_text(delete)
    assert result.deleted


async def test_buttons_work_after_a_restart(h: Harness) -> None:
    await slash(h, "text", prompt="a fox")
    result = await h.result_for(h.alice)
    await h.restart()
    details = await h.discord.click(h.guild, h.channel, h.alice, result, "video:details:1")
    assert "a fox" in await private_text(details)


async def test_video_above_upload_limit_is_reencoded(tmp_path: Path) -> None:
    big = make_big_mp4()
    async with harness(tmp_path, zai={"video_bytes": big}) as h:
        h.guild.filesize_limit = 600_000
        await slash(h, "text", prompt="confetti")
        result = await h.result_for(h.alice, timeout=60)
        posted = mp4_of(result)
        assert len(posted) < 600_000 < len(big)
        path = tmp_path / "posted.mp4"
        path.write_bytes(posted)
        assert probe_video(path).duration == pytest.approx(2.0, abs=0.2)


async def test_video_that_cannot_fit_is_posted_as_a_link(tmp_path: Path) -> None:
    async with harness(tmp_path, zai={"video_bytes": make_big_mp4()}) as h:
        h.guild.filesize_limit = 70_000  # below what any re-encode can reach
        await slash(h, "text", prompt="confetti")
        result = await h.result_for(h.alice, timeout=60)
        assert "upload limit" in result.content and "/media/" in result.content
        assert not any(name.endswith(".mp4") for name, _ in result.attachments)


async def test_global_sync_happens_only_when_the_tree_changed(h: Harness) -> None:
    assert h.discord.sync_calls == 1
    assert {c["name"] for c in h.discord.commands()} >= {"video", "quota", "jobs", "Animate image"}
    await h.restart()
    assert h.discord.sync_calls == 1


async def test_dev_guild_gets_commands_at_every_start(tmp_path: Path) -> None:
    async with harness(tmp_path, dev_guild=True) as h:
        assert {c["name"] for c in h.discord.commands(h.guild)} >= {"video", "quota", "jobs"}
        await h.restart()
        assert h.discord.sync_calls == 2
