"""The model table: every validation rule of the spec, table-driven."""

from __future__ import annotations

import pytest

from bot import models
from bot.errors import InputError
from bot.images import ImageInfo
from bot.models import Mode, VideoOptions


def img(w: int, h: int) -> ImageInfo:
    """An inspected image of a size."""
    return ImageInfo(width=w, height=h, format="PNG", size_bytes=1000)


REQUEST_REFUSALS = [
    # (model, mode, prompt, options, words the message must contain)
    ("viduq1-text", Mode.TEXT, "a cat", VideoOptions(duration=10), "5-second videos only"),
    ("viduq1-text", Mode.TEXT, "a cat", VideoOptions(audio=True), "no `audio` option"),
    ("viduq1-text", Mode.TEXT, "a cat", VideoOptions(size="1280x720"), "1920x1080"),
    ("viduq1-text", Mode.TEXT, "a cat", VideoOptions(fps=60), "no `fps` option"),
    ("viduq1-text", Mode.TEXT, "a cat", VideoOptions(style="noir"), "`anime`"),
    ("viduq1-text", Mode.TEXT, "a cat", VideoOptions(aspect_ratio="4:3"), "`16:9`"),
    ("viduq1-text", Mode.TEXT, "a cat", VideoOptions(movement="huge"), "`large`"),
    ("viduq1-text", Mode.TEXT, None, VideoOptions(), "needs a prompt"),
    ("viduq1-text", Mode.IMAGE, "a cat", VideoOptions(), "does not do image mode"),
    ("cogvideox-3", Mode.TEXT, "a cat", VideoOptions(duration=7), "5 / 10-second"),
    ("cogvideox-3", Mode.TEXT, "a cat", VideoOptions(fps=24), "`30`, `60`"),
    ("cogvideox-3", Mode.TEXT, "a cat", VideoOptions(size="640x480"), "3840x2160"),
    ("cogvideox-3", Mode.TEXT, "a cat", VideoOptions(quality="max"), "`speed`"),
    ("cogvideox-3", Mode.TEXT, "a cat", VideoOptions(style="anime"), "no `style` option"),
    ("cogvideox-3", Mode.FRAMES, "a cat", VideoOptions(quality="quality"), "speed"),
    ("cogvideox-3", Mode.REFERENCE, None, VideoOptions(), "vidu2-reference"),
    ("vidu2-image", Mode.IMAGE, None, VideoOptions(duration=5), "4-second videos only"),
    ("vidu2-image", Mode.IMAGE, None, VideoOptions(size="1920x1080"), "1280x720"),
    ("viduq1-image", Mode.IMAGE, None, VideoOptions(aspect_ratio="1:1"), "no `aspect_ratio`"),
    ("vidu2-start-end", Mode.FRAMES, None, VideoOptions(duration=5), "4-second"),
    ("vidu2-reference", Mode.REFERENCE, None, VideoOptions(duration=5), "4-second"),
    ("vidu2-reference", Mode.REFERENCE, None, VideoOptions(quality="speed"), "no `quality`"),
    ("cogvideox-3", Mode.TEXT, "x" * 513, VideoOptions(), "513 characters"),
    ("cogvideox-3", Mode.TEXT, " \n\t ", VideoOptions(), "no visible text"),
    ("cogvideox-3", Mode.TEXT, "\x00\x01\u200b", VideoOptions(), "no visible text"),
    ("no-such-model", Mode.TEXT, "a cat", VideoOptions(), "Unknown model"),
]


@pytest.mark.parametrize(("model", "mode", "prompt", "options", "words"), REQUEST_REFUSALS)
def test_request_refusals(
    model: str, mode: Mode, prompt: str | None, options: VideoOptions, words: str
) -> None:
    with pytest.raises(InputError) as caught:
        models.check_request(model, mode, prompt, options)
    assert words in caught.value.user_message


REQUEST_ACCEPTED = [
    ("cogvideox-3", Mode.TEXT, "a cat", VideoOptions(quality="quality", duration=10, fps=60)),
    ("cogvideox-3", Mode.TEXT, "x" * 512, VideoOptions(size="3840x2160", audio=True)),
    ("cogvideox-3", Mode.FRAMES, None, VideoOptions(quality="speed")),
    ("cogvideox-3", Mode.IMAGE, None, VideoOptions()),
    ("viduq1-text", Mode.TEXT, "a cat", VideoOptions(style="anime", aspect_ratio="9:16")),
    (
        "vidu2-reference",
        Mode.REFERENCE,
        "two friends",
        VideoOptions(aspect_ratio="1:1", audio=True),
    ),
]


@pytest.mark.parametrize(("model", "mode", "prompt", "options"), REQUEST_ACCEPTED)
def test_requests_accepted(
    model: str, mode: Mode, prompt: str | None, options: VideoOptions
) -> None:
    assert models.check_request(model, mode, prompt, options) == prompt


def test_prompt_is_cleaned_of_control_characters() -> None:
    assert (
        models.check_request("cogvideox-3", Mode.TEXT, "  a\x00 cat\x1b  ", VideoOptions())
        == "a cat"
    )


IMAGE_REFUSALS = [
    ("vidu2-image", Mode.IMAGE, [img(1, 10000)], "less than 4 times"),
    ("viduq1-image", Mode.IMAGE, [img(5000, 1000)], "less than 4 times"),
    ("viduq1-image", Mode.IMAGE, [img(100, 100), img(100, 100)], "takes 1 image"),
    ("viduq1-start-end", Mode.FRAMES, [img(100, 100)] * 3, "takes 1-2 image"),
    ("cogvideox-3", Mode.FRAMES, [img(100, 100)], "takes 2 image"),
    ("viduq1-start-end", Mode.FRAMES, [img(1000, 1000), img(500, 500)], "0.8–1.25"),
    ("vidu2-reference", Mode.REFERENCE, [img(100, 300)], "at least 128×128"),
    ("vidu2-reference", Mode.REFERENCE, [img(200, 200)] * 4, "1-3 image"),
    ("vidu2-reference", Mode.REFERENCE, [], "1-3 image"),
    ("cogvideox-3", Mode.TEXT, [img(200, 200)], "takes 0 image"),
]


@pytest.mark.parametrize(("model", "mode", "images", "words"), IMAGE_REFUSALS)
def test_image_refusals(model: str, mode: Mode, images: list[ImageInfo], words: str) -> None:
    with pytest.raises(InputError) as caught:
        models.check_images(model, mode, images)
    assert words in caught.value.user_message


@pytest.mark.parametrize(
    ("model", "mode", "images"),
    [
        ("viduq1-start-end", Mode.FRAMES, [img(1000, 1000), img(1000, 900)]),
        ("vidu2-reference", Mode.REFERENCE, [img(128, 128), img(511, 128), img(128, 511)]),
        ("cogvideox-3", Mode.IMAGE, [img(400, 100)]),
    ],
)
def test_images_accepted(model: str, mode: Mode, images: list[ImageInfo]) -> None:
    models.check_images(model, mode, images)


def test_every_model_offers_a_mode_and_choices_fit_discord() -> None:
    for mode in models.VIDEO_MODES:
        assert models.models_for(mode), mode
    for name in models.MODELS:
        for option in models.OPTION_FIELDS:
            values = models.allowed_values(name, option)
            assert values is None or 0 < len(values) <= 25  # Discord's choice limit


def test_body_uses_array_for_cogvideox_and_string_for_vidu_image() -> None:
    cog = models.build_body(
        "cogvideox-3",
        Mode.IMAGE,
        None,
        VideoOptions(),
        ["data:x"],
        request_id="r" * 8,
        user_id="1234567",
    )
    vidu = models.build_body(
        "viduq1-image",
        Mode.IMAGE,
        None,
        VideoOptions(),
        ["data:x"],
        request_id="r" * 8,
        user_id="1234567",
    )
    assert cog["image_url"] == ["data:x"]
    assert vidu["image_url"] == "data:x"


def test_provider_user_id_is_at_least_six_characters() -> None:
    assert models.provider_user_id(42) == "000042"
    assert models.provider_user_id(123456789012345678) == "123456789012345678"
