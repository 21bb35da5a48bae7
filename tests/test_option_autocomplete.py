"""Issue 12: /video options autocomplete from what the chosen model takes in the mode (the
model table, or the provider catalog for gateway models), the default marked; a refusal of an
option the model lacks names the configured models that have it and the command to use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot import models
from bot.models import Mode
from tests.fakes.geekai import FakeGeekai
from tests.fakes.newapi import FakeNewApi
from tests.harness import Harness, harness
from tests.test_e2e import private_text, slash
from tests.test_moderation import spent

AUTOCOMPLETED = {
    Mode.TEXT: ("quality", "size", "duration", "fps", "style", "aspect_ratio", "movement"),
    Mode.IMAGE: ("quality", "size", "duration", "fps", "movement"),
    Mode.FRAMES: ("size", "duration", "fps", "movement"),
    Mode.REFERENCE: ("aspect_ratio", "movement"),
}


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    """A running bot (Z.AI only)."""
    async with harness(tmp_path) as running:
        yield running


async def offered(
    h: Harness, mode: Mode, option: str, typed: str = "", **filled: Any
) -> list[dict[str, Any]]:
    """Type into an option of /video <mode>: the choices the bot answers with (callback 8)."""
    typing = await h.discord.autocomplete(
        h.guild,
        h.channel,
        h.alice,
        "video",
        subcommand=mode.value,
        option=option,
        typed=typed,
        filled=filled,
    )
    await typing.wait_callback()
    assert typing.callback["type"] == 8
    return typing.callback["data"]["choices"]


async def test_options_are_autocompletes_not_static_choices(h: Harness) -> None:
    video = h.discord.find_command("video", None, 1)
    for mode, names in AUTOCOMPLETED.items():
        [sub] = [o for o in video["options"] if o["name"] == mode.value]
        options = {o["name"]: o for o in sub["options"]}
        for name in names:
            assert options[name].get("autocomplete") is True, (mode, name)
            assert "choices" not in options[name], (mode, name)


@pytest.mark.parametrize("model", models.models_for(Mode.TEXT))
async def test_text_options_follow_the_chosen_model(h: Harness, model: str) -> None:
    defaults = models.default_options(model)
    for option in AUTOCOMPLETED[Mode.TEXT]:
        choices = await offered(h, Mode.TEXT, option, model=model)
        allowed = models.allowed_values(model, option, Mode.TEXT) or ()
        assert sorted(map(str, (c["value"] for c in choices))) == sorted(map(str, allowed))
        marked = [c["value"] for c in choices if c["name"].endswith(" (default)")]
        assert marked == ([defaults[option]] if option in defaults else []), option
        assert len(choices) <= 25


async def test_without_a_model_the_default_models_values_are_offered(h: Harness) -> None:
    sizes = await offered(h, Mode.TEXT, "size")
    assert [c["value"] for c in sizes] == list(models.allowed_values("cogvideox-3", "size") or ())
    assert await offered(h, Mode.TEXT, "style") == []  # cogvideox-3 has no style
    durations = await offered(h, Mode.TEXT, "duration")
    assert [c["name"] for c in durations] == ["5 seconds (default)", "10 seconds"]


@pytest.mark.parametrize(
    ("model", "durations", "sizes"),
    [
        ("cogvideox-3", ["5 seconds (default)", "10 seconds"], 7),
        ("viduq1-image", ["5 seconds (default)"], 1),
        ("vidu2-image", ["4 seconds (default)"], 1),
    ],
)
async def test_image_options_follow_the_chosen_model(
    h: Harness, model: str, durations: list[str], sizes: int
) -> None:
    assert [c["name"] for c in await offered(h, Mode.IMAGE, "duration", model=model)] == durations
    assert len(await offered(h, Mode.IMAGE, "size", model=model)) == sizes


async def test_frames_narrowing_and_typed_filter(h: Harness) -> None:
    one = await offered(h, Mode.FRAMES, "size", model="viduq1-start-end")
    assert one == [{"name": "1920x1080 (default)", "value": "1920x1080"}]
    typed = await offered(h, Mode.FRAMES, "size", "1080", model="cogvideox-3")
    assert {c["value"] for c in typed} == {"1920x1080", "1080x1920", "2048x1080"}
    assert await offered(h, Mode.FRAMES, "movement", model="cogvideox-3") == []
    assert await offered(h, Mode.TEXT, "size", model="no-such-model") == []


async def test_refusal_names_the_models_that_have_the_option(h: Harness) -> None:
    text = await private_text(await slash(h, "text", prompt="a cat", style="anime"))
    assert "cogvideox-3 has no `style` option" in text
    assert "viduq1-text has it" in text
    assert "`/video text model:viduq1-text style:anime`" in text
    assert h.zai.requests == [] and await spent(h) == 0


async def test_gateway_models_offer_their_catalog_values(tmp_path: Path) -> None:
    async with (
        FakeNewApi() as newapi,
        FakeGeekai() as geekai,
        harness(
            tmp_path,
            gateway_base_url=newapi.base_url,
            gateway_api_key=newapi.api_key,
            geekai_base_url=geekai.base_url,
            geekai_api_key=geekai.api_key,
        ) as h,
    ):
        durations = await offered(h, Mode.TEXT, "duration", model="viduq3p-720p")
        assert [c["value"] for c in durations] == list(range(1, 17))
        assert durations[4]["name"] == "5 seconds (default)"
        ratios = await offered(h, Mode.TEXT, "aspect_ratio", model="viduq3p-720p")
        assert [c["value"] for c in ratios] == ["16:9", "9:16", "1:1"]
        # Reference videos take a ratio, but a mix model's sizes are fixed by its name.
        mix = await offered(h, Mode.REFERENCE, "aspect_ratio", model="viduq3p-mix-720p")
        assert [c["value"] for c in mix] == ["16:9", "9:16", "1:1"]
        fps = await offered(h, Mode.TEXT, "fps", model="cogvideox-flash")
        assert [c["value"] for c in fps] == [24, 30, 60]
        assert await offered(h, Mode.TEXT, "size", model="viduq3p-720p") == []
        text = await private_text(
            await slash(h, "text", prompt="a fox", model="viduq3p-720p", fps=30)
        )
        assert "viduq3p-720p has no `fps` option" in text
        assert "cogvideox-3" in text and "cogvideox-flash" in text
        assert "`/video text model:" in text and "fps:30`" in text
