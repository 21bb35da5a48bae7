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
from tests.util import eventually


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
