"""Issue 12: a member's own defaults per server (`/video defaults`: a model per mode, quality,
audio, size, duration, fps, private; reset), used by every entry point (what a command says
wins; Re-roll keeps the job's own options), shown in /video help, checked against the model
table, and still under the server's rules and costs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.discord import FakeMessage
from tests.harness import Harness, harness
from tests.test_animate_question import menu_question, options_of, pics
from tests.test_discord_faults import ended, results
from tests.test_e2e import make_it, mention_question, png, private_text, slash
from tests.test_help import help_messages
from tests.test_image_e2e import image, picture_for, private
from tests.test_moderation import admin, spent


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    """A running bot (Z.AI only)."""
    async with harness(tmp_path) as running:
        yield running


async def defaults(h: Harness, user: Any = None, **options: Any) -> str:
    """/video defaults with options; its private answer."""
    return await private_text(await slash(h, "defaults", user=user, **options))


async def typed(h: Harness, option: str, **filled: Any) -> list[dict[str, Any]]:
    """The choices /video defaults offers while `option` is typed into (type 4 → callback 8)."""
    typing = await h.discord.autocomplete(
        h.guild, h.channel, h.alice, "video", subcommand="defaults", option=option, filled=filled
    )
    await typing.wait_callback()
    assert typing.callback["type"] == 8
    return typing.callback["data"]["choices"]


async def made(h: Harness, n: int) -> dict[str, Any]:
    """The body the fake Z.AI received for the n-th submit (1-based), once the job ended."""
    await ended(h, n)
    return h.zai.submits[n - 1]


async def test_set_see_and_reset_privately(h: Harness) -> None:
    shown = await defaults(h)
    assert "Your defaults on this server" in shown
    assert (
        "text **cogvideox-3** (usual)" in shown and "reference **vidu2-reference** (usual)" in shown
    )
    assert "Not set (each model's own): quality, audio, size, duration, fps" in shown
    assert "posted in the channel" in shown
    shown = await defaults(h, image="vidu2-image", quality="quality", duration=10, audio=True)
    assert "image **vidu2-image**" in shown and "(usual)" in shown
    assert "• quality: `quality` (used in text)" in shown  # frames: cogvideox-3 takes speed only
    assert "• duration: `10` (used in text, frames)" in shown  # vidu2-image makes 4 s only
    assert "• audio: `on` (used in text, image, frames, reference)" in shown
    shown = await defaults(h, private=True)
    assert "sent to you by direct message" in shown and "`quality`" in shown  # others kept
    assert "quality" not in (await defaults(h, reset="quality")).split("Not set")[0]
    assert "text **cogvideox-3** (usual)" in await defaults(h, user=h.bob)  # per member
    shown = await defaults(h, reset="all")
    assert "image **vidu2-image**" not in shown and "posted in the channel" in shown
    assert h.zai.requests == [] and await spent(h) == 0


async def test_autocompletes_offer_what_the_members_models_take(h: Harness) -> None:
    await admin(h, "models disable", model="viduq1-image")
    assert [c["value"] for c in await typed(h, "image")] == ["cogvideox-3", "vidu2-image"]
    durations = await typed(h, "duration")
    assert [c["value"] for c in durations] == [5, 10, 4]
    assert durations[1]["name"] == "10 seconds · text, image, frames"
    assert durations[2]["name"] == "4 seconds · reference"
    # A model typed in the same command counts: vidu2-image makes 4 s only.
    durations = await typed(h, "duration", image="vidu2-image")
    assert durations[1]["name"] == "10 seconds · text, frames"
    await defaults(h, fps=60)
    assert [c["name"] for c in await typed(h, "fps")] == [
        "30 fps · text, image, frames",
        "60 fps · text, image, frames (yours)",
    ]
    # /video text's own autocomplete marks the member's default instead of the model's.
    text = await h.discord.autocomplete(
        h.guild, h.channel, h.alice, "video", subcommand="text", option="fps"
    )
    await text.wait_callback()
    assert [c["name"] for c in text.callback["data"]["choices"]] == [
        "30 fps",
        "60 fps (your default)",
    ]


async def test_every_entry_point_uses_the_defaults(h: Harness) -> None:
    shown = await defaults(h, quality="quality", duration=10, fps=60, audio=True)
    assert "Nothing was changed" not in shown
    await slash(h, "text", prompt="a kite")
    text = await made(h, 1)
    assert (text["model"], text["quality"], text["duration"], text["fps"]) == (
        "cogvideox-3",
        "quality",
        10,
        60,
    )
    assert text["with_audio"] is True
    await slash(h, "image", image=png(h))
    image = await made(h, 2)
    assert (image["quality"], image["duration"], image["fps"], image["with_audio"]) == (
        "quality",
        10,
        60,
        True,
    )
    await slash(h, "frames", first=png(h), last=png(h))
    frames = await made(h, 3)  # cogvideox-3 frames: speed only, so the default is not used
    assert (frames["quality"], frames["duration"], frames["with_audio"]) == ("speed", 10, True)
    await slash(h, "reference", image1=png(h))
    reference = await made(h, 4)
    assert reference["model"] == "vidu2-reference" and reference["with_audio"] is True
    assert reference["duration"] == 4  # the model's only length
    # Animate image and mentions: the member's model is the one picked.
    await defaults(h, image="vidu2-image", frames="viduq1-start-end")
    question = await menu_question(h, 1)
    assert [o["value"] for o in options_of(question) if o.get("default")] == ["image:vidu2-image"]
    await make_it(h, question)
    menu = await made(h, 5)
    assert (menu["model"], menu["with_audio"], menu["prompt"]) == ("vidu2-image", True, "waves")
    me = h.discord.bot_user
    await h.discord.user_message(
        h.guild, h.channel, h.alice, f"<@{me.id}> fade", attachments=pics(h, 2), mentions=[me]
    )
    question = await mention_question(h)
    picked = [o["value"] for o in options_of(question) if o.get("default")]
    assert picked == ["frames:viduq1-start-end"]
    await make_it(h, question)
    mention = await made(h, 6)
    assert (mention["model"], mention["with_audio"]) == ("viduq1-start-end", True)


async def test_reroll_keeps_the_jobs_own_options(h: Harness) -> None:
    await defaults(h, duration=10)
    await slash(h, "text", prompt="a heron")
    result = await h.result_for(h.alice)
    assert (await made(h, 1))["duration"] == 10
    await defaults(h, reset="duration", quality="quality", audio=True)
    await h.discord.click(h.guild, h.channel, h.alice, result, "video:reroll:1")
    again = await made(h, 2)
    assert again["duration"] == 10 and again["quality"] == "speed"
    assert again.get("with_audio") is False


async def test_an_explicit_option_beats_the_default(h: Harness) -> None:
    await defaults(h, text="viduq1-text", duration=10, quality="quality", private=True)
    # viduq1-text takes neither 10 s nor a quality: its own defaults apply, nothing is refused.
    await private_text(await slash(h, "text", prompt="a comet"))
    vidu = await made(h, 1)
    assert vidu["model"] == "viduq1-text" and vidu["duration"] == 5 and "quality" not in vidu
    [dm] = results(h, 1)
    assert h.discord.channels[dm.channel_id].is_dm  # private by default
    ack = await private_text(
        await slash(
            h,
            "text",
            prompt="a comet",
            model="cogvideox-3",
            duration=5,
            quality="speed",
            private=False,
        )
    )
    assert "I will post it here" in ack
    typed_in = await made(h, 2)
    assert (typed_in["model"], typed_in["duration"], typed_in["quality"]) == (
        "cogvideox-3",
        5,
        "speed",
    )
    [posted] = results(h, 2)
    assert posted.channel_id == h.channel.id


async def test_a_default_no_model_of_the_member_takes_is_refused(h: Harness) -> None:
    await defaults(h, text="viduq1-text", image="viduq1-image")
    refusal = await defaults(h, quality="quality")
    assert "would fit none of your models" in refusal
    assert "`/video defaults text:cogvideox-3 quality:quality`" in refusal
    assert "Nothing was changed" in refusal
    wrong_mode = await defaults(h, text="vidu2-reference")
    assert "vidu2-reference does not make text videos" in wrong_mode
    assert "cogvideox-3, viduq1-text" in wrong_mode
    # A model change that would strand a default is refused the same way.
    await defaults(h, text="cogvideox-3", size="1920x1080")
    stranded = await defaults(h, text="viduq1-text", frames="viduq1-start-end", size="3840x2160")
    assert "size of `3840x2160` would fit none" in stranded
    refused = await defaults(h, reset="all", text="vidu2-reference")  # one go: none of it
    assert "does not make text videos" in refused
    shown = await defaults(h)
    assert "text **cogvideox-3**" in shown and "`1920x1080`" in shown  # nothing was stored
    shown = await defaults(h, reset="size", duration=10)  # forget one and set another at once
    assert "`1920x1080`" not in shown and "• duration: `10`" in shown


async def test_a_default_model_turned_off_by_moderators(h: Harness) -> None:
    await defaults(h, image="vidu2-image")
    await admin(h, "models disable", model="vidu2-image")
    refusal = await private_text(await slash(h, "image", image=png(h)))
    assert "vidu2-image is turned off on this server" in refusal
    assert "It is your default for `/video image`" in refusal
    assert (
        "`/video defaults image:…`" in refusal and "`/video defaults reset:image model`" in refusal
    )
    assert h.zai.requests == [] and await spent(h) == 0
    again = await defaults(h, image="vidu2-image")
    assert "cannot be your default" in again and "cogvideox-3, viduq1-image" in again
    question = await menu_question(h, 1)  # the usual model is picked instead
    assert [o["value"] for o in options_of(question) if o.get("default")] == ["image:cogvideox-3"]
    shown = "\n".join(m.content for m in await help_messages(h))
    assert "Your defaults on this server" in shown and "image **vidu2-image**" in shown


async def test_cost_rules_apply_to_a_defaulted_option(h: Harness) -> None:
    await admin(h, "cost set", model="cogvideox-3", credits=3, option="quality", value="quality")
    await defaults(h, quality="quality")
    asked = await slash(h, "text", prompt="a dragon")
    question: FakeMessage = await asked.wait_response(lambda m: "credits" in m.content)
    assert "costs **3 credits**" in question.content
    assert h.zai.requests == []


async def test_a_stills_animate_button_uses_the_members_image_model(h: Harness) -> None:
    await defaults(h, image="vidu2-image", audio=True)
    await image(h, prompt="a boat")
    still = await picture_for(h, h.alice)
    animate = await h.discord.click(h.guild, h.channel, h.alice, still, "still:animate:1")
    await private(animate, "Accepted as video #2")
    await ended(h, 2)
    [body] = h.zai.submits  # the still went to the media API
    assert (body["model"], body["with_audio"]) == ("vidu2-image", True)
