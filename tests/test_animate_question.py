"""Issue 12: the Animate menu and mentions ask privately which model (the server's enabled
ones of configured providers; for two pictures, first/last frames or references), the usual
one picked so one click goes; only the requester can answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.discord import FakeMessage
from tests.fakes.media import make_png
from tests.harness import Harness, harness
from tests.test_e2e import QUESTION, _prompt_values, make_it, mention_question, private_text
from tests.test_moderation import admin, spent


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    """A running bot."""
    async with harness(tmp_path) as running:
        yield running


def pics(h: Harness, n: int) -> list[dict[str, Any]]:
    """n distinct PNGs on the fake CDN."""
    return [h.attachment(f"p{i}.png", make_png(320 + 2 * i, 240), "image/png") for i in range(n)]


def options_of(question: FakeMessage) -> list[dict[str, Any]]:
    """The options of the question's model select."""
    rows = question.components
    [select] = [c for row in rows for c in row.get("components", []) if c["type"] == 3]
    return select["options"]


async def menu_question(h: Harness, n: int) -> FakeMessage:
    """Animate image on bob's message with n pictures, as alice: the private question."""
    source = await h.discord.user_message(h.guild, h.channel, h.bob, "look", attachments=pics(h, n))
    opened = await h.discord.context_menu(h.guild, h.channel, h.alice, "Animate image", source)
    await opened.wait_callback()
    submitted = await h.discord.submit_modal(opened, h.alice, _prompt_values(opened, "waves"))
    question = await submitted.wait_response()
    assert question.ephemeral and QUESTION in question.content and "10 minutes" in question.content
    return question


async def test_menu_offers_the_image_models_with_the_usual_one_picked(h: Harness) -> None:
    await admin(h, "models disable", model="vidu2-image")
    question = await menu_question(h, 1)
    offered = options_of(question)
    assert [o["value"] for o in offered] == ["image:cogvideox-3", "image:viduq1-image"]
    assert [o["value"] for o in offered if o.get("default")] == ["image:cogvideox-3"]
    assert h.discord.cdn_downloads == [] and h.zai.requests == []  # nothing before the click
    go = await make_it(h, question, pick="image:viduq1-image")
    assert "Accepted as video #1" in await private_text(go)
    await h.result_for(h.alice)
    assert h.zai.submits[0]["model"] == "viduq1-image" and h.zai.submits[0]["prompt"] == "waves"


async def test_menu_one_click_takes_the_usual_model_as_frames(h: Harness) -> None:
    question = await menu_question(h, 2)
    labels = [o["label"] for o in options_of(question)]
    assert "cogvideox-3 · as first and last frames" == labels[0]
    assert "vidu2-reference · as references" in labels
    assert "Accepted" in await private_text(await make_it(h, question))
    await h.result_for(h.alice)
    submit = h.zai.submits[0]
    assert submit["model"] == "cogvideox-3" and len(submit["image_url"]) == 2


async def test_only_the_requester_can_answer(h: Harness) -> None:
    question = await menu_question(h, 1)
    me = h.discord.bot_user
    await h.discord.user_message(
        h.guild, h.channel, h.alice, f"<@{me.id}> go", attachments=pics(h, 1), mentions=[me]
    )
    public = await mention_question(h)
    assert not public.ephemeral
    bob = await h.discord.click(h.guild, h.channel, h.bob, public, "animate:go")
    assert "for the person who asked" in await private_text(bob)
    assert h.zai.requests == [] and await spent(h) == 0
    assert question.components  # alice's private question is still open


async def test_mention_with_two_pictures_as_references(h: Harness) -> None:
    me = h.discord.bot_user
    await h.discord.user_message(
        h.guild,
        h.channel,
        h.alice,
        f"<@{me.id}> @Image1 hugs @Image2",
        attachments=pics(h, 2),
        mentions=[me],
    )
    question = await mention_question(h)
    assert f"<@{h.alice.id}>" in question.content
    await make_it(h, question, pick="reference:vidu2-reference")
    await h.result_for(h.alice)
    submit = h.zai.submits[0]
    assert submit["model"] == "vidu2-reference" and len(submit["image_url"]) == 2
    assert await spent(h) >= 1
