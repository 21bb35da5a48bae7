"""/image end to end: the real bot against the fake Discord and the fake Z.AI's still route."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.discord import FakeInteraction, FakeMessage, FakeUser
from tests.fakes.media import make_png
from tests.fakes.zai import Fault
from tests.harness import Harness, harness


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    """A running bot."""
    async with harness(tmp_path) as running:
        yield running


async def image(h: Harness, user: FakeUser | None = None, **options: Any) -> FakeInteraction:
    """Run /image with options."""
    return await h.discord.slash(h.guild, h.channel, user or h.alice, "image", options=options)


async def picture_for(h: Harness, user: FakeUser, *, after: int = 0) -> FakeMessage:
    """The bot's posted still for `user`."""
    bot_id = h.discord.bot_user.id

    def is_still(m: FakeMessage) -> bool:
        return (
            m.author_id == bot_id
            and m.id > after
            and m.content.startswith(f"<@{user.id}> your picture")
        )

    return await h.discord.wait_for_message(is_still, channel=h.channel, timeout=15)


async def private(interaction: FakeInteraction, text: str) -> FakeMessage:
    """The private answer of an interaction that contains `text`."""
    message = await interaction.wait_response(lambda m: text in m.content and not m.loading)
    assert message.ephemeral
    return message


async def credits_left(h: Harness, user: FakeUser) -> int:
    """The member's credits left today, read through the engine."""
    assert h.resources is not None
    balance = await h.resources.engine.balance(h.guild.id, user.id, time.time())
    return balance.left


def buttons(message: FakeMessage) -> list[str]:
    """custom_ids of a message's buttons."""
    return [c["custom_id"] for row in message.components for c in row["components"]]


async def test_image_posts_the_still_with_its_buttons(h: Harness) -> None:
    started = time.perf_counter()
    interaction = await image(h, prompt="a lighthouse at dusk", size="1568x1056")
    result = await picture_for(h, h.alice)
    elapsed = time.perf_counter() - started
    [body] = h.zai.media_api.images
    assert body == {
        "model": "glm-image",
        "prompt": "a lighthouse at dusk",
        "quality": "hd",
        "size": "1568x1056",
        "user_id": str(h.alice.id),
    }
    [(name, data)] = result.attachments
    assert name.endswith(".png") and data == make_png(1568, 1056)  # downloaded, not linked
    assert result.embeds[0]["title"].startswith("Picture #")
    assert [b.split(":")[1] for b in buttons(result)] == ["animate", "reroll", "details"]
    assert all(len(b) <= 100 for b in buttons(result))
    assert "Accepted as picture" in (await private(interaction, "Accepted")).content
    assert await credits_left(h, h.alice) == 9
    assert h.zai.submits == [] and h.zai.polls == {}  # no video task, nothing polled
    print(f"\nFIGURE command → still posted: {elapsed * 1000:.0f} ms (fakes, 0 s generation)")


async def test_bad_size_is_refused_before_anything_is_spent(h: Harness) -> None:
    interaction = await image(h, prompt="a cat", model="cogview-4-250304", size="1000x1000")
    text = (await private(interaction, "does not work")).content
    assert "multiple of 16" in text
    assert h.zai.media_api.images == [] and await credits_left(h, h.alice) == 10


async def test_size_autocomplete_follows_the_model() -> None:
    from bot.stills import size_choices

    assert size_choices("cogview-4-250304", "7")[:2] == ["768x1344", "720x1440"]
    assert size_choices(None, "")[0] == "1280x1280"


async def test_animate_reroll_and_details(h: Harness) -> None:
    await image(h, prompt="a red kite over hills", model="cogview-4-250304")
    still = await picture_for(h, h.alice)
    details = await h.discord.click(h.guild, h.channel, h.bob, still, "still:details:1")
    text = (await private(details, "Picture #1")).content
    assert "a red kite over hills" in text and "cogview-4-250304" in text

    stolen = await h.discord.click(h.guild, h.channel, h.bob, still, "still:reroll:1")
    assert "costs their credits" in (await private(stolen, "costs")).content
    reroll = await h.discord.click(h.guild, h.channel, h.alice, still, "still:reroll:1")
    assert "Accepted as picture #2" in (await private(reroll, "Accepted")).content
    second = await picture_for(h, h.alice, after=still.id)
    assert h.zai.media_api.images[1] == h.zai.media_api.images[0]  # same request again
    assert second.id != still.id

    animate = await h.discord.click(h.guild, h.channel, h.bob, still, "still:animate:1")
    assert "Accepted as video #3" in (await private(animate, "Accepted")).content
    video = await h.result_for(h.bob)
    [body] = h.zai.submits
    assert body["model"] == "cogvideox-3" and body["prompt"] == "a red kite over hills"
    assert body["image_url"][0].startswith("data:image/")  # the posted still, from Discord
    assert video.embeds[0]["title"] == "Video #3"
    assert await credits_left(h, h.alice) == 8 and await credits_left(h, h.bob) == 9


async def test_animate_uses_an_enabled_image_model(h: Harness) -> None:
    mod = await h.discord.slash(
        h.guild, h.channel, h.mod, "videoadmin", group="models", subcommand="disable",
        options={"model": "cogvideox-3"},
    )  # fmt: skip
    await mod.wait_response()
    await image(h, prompt="a boat")
    still = await picture_for(h, h.alice)
    animate = await h.discord.click(h.guild, h.channel, h.alice, still, "still:animate:1")
    await private(animate, "Accepted")
    await h.result_for(h.alice)
    assert h.zai.submits[0]["model"] == "viduq1-image"


async def test_still_buttons_work_after_a_restart(h: Harness) -> None:
    await image(h, prompt="an owl")
    still = await picture_for(h, h.alice)
    await h.restart()
    details = await h.discord.click(h.guild, h.channel, h.alice, still, "still:details:1")
    assert "an owl" in (await private(details, "Picture #1")).content
    reroll = await h.discord.click(h.guild, h.channel, h.alice, still, "still:reroll:1")
    await private(reroll, "Accepted")
    await picture_for(h, h.alice, after=still.id)


async def test_rate_limited_still_is_retried_and_delivered_once(h: Harness) -> None:
    h.zai.media_api.script("image", Fault.http(429, "1302", "slow down", retry_after=0))
    await image(h, prompt="a cat in a hat")
    await picture_for(h, h.alice)
    assert len(h.zai.media_api.images) == 1 and len(h.zai.media_api.faults_applied) == 1
    assert await credits_left(h, h.alice) == 9  # charged once, for the one picture


async def test_content_filter_refuses_and_refunds_once(h: Harness) -> None:
    interaction = await image(h, prompt="BLOCKME please")
    await private(interaction, "Accepted")
    status = await h.discord.wait_for_message(
        lambda m: "content policy" in m.content, channel=h.channel, timeout=10
    )
    assert "picture service" in status.content and "refunded" in status.content
    assert await credits_left(h, h.alice) == 10
    assert h.resources is not None
    [job] = await h.resources.engine.recent_jobs(h.guild.id, h.alice.id)
    assert job.state == "refused" and job.refunded == 1


async def test_moderation_applies_to_stills(h: Harness) -> None:
    async def mod(group: str, sub: str, **options: Any) -> None:
        i = await h.discord.slash(
            h.guild, h.channel, h.mod, "videoadmin", group=group, subcommand=sub, options=options
        )
        await i.wait_response()

    await mod("blocklist", "add", pattern="dragon")
    refused = await image(h, prompt="a Dragon")
    assert "moderators do not allow" in (await private(refused, "allow")).content
    await mod("models", "disable", model="glm-image")
    off = await image(h, prompt="a cat")
    assert "turned off" in (await private(off, "turned off")).content
    assert "cogview-4-250304" in (await private(off, "turned off")).content
    await mod("cost", "set", model="cogview-4-250304", credits=3, option="size", value="1440x720")
    pricey = await image(h, prompt="a cat", model="cogview-4-250304", size="1440x720")
    question = await pricey.wait_response(lambda m: "**3 credits**" in m.content)
    await h.discord.click(h.guild, h.channel, h.alice, question, "cost:spend")
    await picture_for(h, h.alice)
    assert h.zai.media_api.images[0]["size"] == "1440x720"
    assert await credits_left(h, h.alice) == 7


async def test_still_waits_for_approval_like_a_video(h: Harness) -> None:
    mods = h.guild.channel("mods")
    on = await h.discord.slash(
        h.guild, h.channel, h.mod, "videoadmin", group="approval", subcommand="on",
        options={"channel": mods},
    )  # fmt: skip
    await on.wait_response()
    await image(h, prompt="a quiet harbour")
    request = await h.discord.wait_for_message(
        lambda m: "Picture request #1" in m.content, channel=mods
    )
    assert h.zai.media_api.images == [] and await credits_left(h, h.alice) == 9  # held
    await h.discord.click(h.guild, mods, h.mod, request, "approval:approve:1")
    await picture_for(h, h.alice)
    assert len(h.zai.media_api.images) == 1
