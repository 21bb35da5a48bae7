"""Issue 10 items 20 and 21, the Discord side: /video frames takes one picture where the model
does, offers no option the table narrows to one value, and an animation's status says so."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot import models
from bot.i18n import render
from bot.models import Mode
from cogs.common import FIRST_FRAME_NOTE
from cogs.video import FRAMES_OPTIONS
from tests.fakes.media import make_gif, make_png
from tests.harness import Harness, harness
from tests.test_e2e import private_text, slash
from tests.test_moderation import spent
from tests.util import eventually

ONE_PICTURE = [
    m for m in models.models_for(Mode.FRAMES) if models.image_count(m, Mode.FRAMES)[0] == 1
]
TWO_PICTURES = [m for m in models.models_for(Mode.FRAMES) if m not in ONE_PICTURE]


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    """A running bot."""
    async with harness(tmp_path) as running:
        yield running


def test_the_table_has_both_kinds_of_frames_models() -> None:
    assert ONE_PICTURE and TWO_PICTURES


async def test_frames_command_offers_what_the_table_allows(h: Harness) -> None:
    video = h.discord.find_command("video", None, 1)
    [frames] = [o for o in video["options"] if o["name"] == "frames"]
    options = {o["name"]: o for o in frames["options"]}
    assert options["first"].get("required") is True
    assert not options["last"].get("required", False)
    assert "quality" not in options  # cogvideox-3 frames: speed only; Vidu's: no quality
    for option in ("quality", "size", "duration", "fps", "movement", "audio"):
        every = {  # what the Z.AI model table allows in frames mode (gateway models add theirs)
            v
            for m in models.models_for(Mode.FRAMES)
            for v in models.allowed_values(m, option, Mode.FRAMES) or ()
        }
        if option not in FRAMES_OPTIONS:
            assert len(every) <= 1, option
        elif option != "audio":  # values follow the chosen model (test_option_autocomplete.py)
            assert options[option].get("autocomplete") is True, option


@pytest.mark.parametrize("model", ONE_PICTURE)
async def test_one_picture_is_enough_for_start_end_models(h: Harness, model: str) -> None:
    first = h.attachment("first.png", make_png(640, 480), "image/png")
    interaction = await slash(h, "frames", first=first, model=model, prompt="a door opens")
    assert "Accepted as video #1" in await private_text(interaction)
    await h.result_for(h.alice)
    assert len(h.zai.submits) == 1 and len(h.zai.submits[0]["image_url"]) == 1


@pytest.mark.parametrize("model", TWO_PICTURES)
async def test_a_model_that_needs_two_refuses_one_before_any_download(
    h: Harness, model: str
) -> None:
    first = h.attachment("first.png", make_png(640, 480), "image/png")
    text = await private_text(await slash(h, "frames", first=first, model=model))
    assert "needs a first and a last frame" in text
    assert all(m in text for m in ONE_PICTURE)
    assert h.discord.cdn_downloads == [] and h.zai.requests == [] and await spent(h) == 0


async def test_the_status_says_an_animation_was_used_by_its_first_frame(h: Harness) -> None:
    gif = h.attachment("dance.gif", make_gif(animated=True, w=320, h=240), "image/gif")
    still = h.attachment("still.png", make_png(320, 240), "image/png")
    await slash(h, "image", image=gif, prompt="moving")
    await h.result_for(h.alice)
    await slash(h, "image", image=still, prompt="still")
    await eventually(lambda: len(_statuses(h)) == 2, what="two status messages")
    animated, plain = _statuses(h)
    await eventually(lambda: render("en-US", FIRST_FRAME_NOTE) in animated.content, what="the note")
    assert render("en-US", FIRST_FRAME_NOTE) not in plain.content
    assert h.resources is not None
    rows = await h.resources.db.fetchall("SELECT id, first_frame_only FROM jobs ORDER BY id")
    assert [tuple(r) for r in rows] == [(1, 1), (2, 0)]


def _statuses(h: Harness) -> list:
    """The status messages in #general, oldest first."""
    return [m for m in h.bot_messages() if m.nonce and str(m.nonce).startswith("status-")]
