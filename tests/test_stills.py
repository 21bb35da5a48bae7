"""The still-image model table and its member-facing validation (seed 003's rules)."""

from __future__ import annotations

import pytest

from bot.errors import InputError
from bot.stills import (
    COGVIEW_4,
    GLM_IMAGE,
    PROMPT_MAX,
    STILL_MODELS,
    StillQuality,
    size_choices,
    validate_still,
)


def test_defaults_are_glm_image_hd_1280() -> None:
    request = validate_still("  a kitten on a windowsill ")
    assert (request.model, request.size, request.quality) == ("glm-image", "1280x1280", "hd")
    assert request.prompt == "a kitten on a windowsill"
    assert request.body() == {
        "model": "glm-image",
        "prompt": "a kitten on a windowsill",
        "quality": "hd",
        "size": "1280x1280",
    }
    assert request.body("user-123456")["user_id"] == "user-123456"


def test_cogview_defaults_standard_1024() -> None:
    request = validate_still("a cat", model="cogview-4-250304")
    assert (request.size, request.quality) == ("1024x1024", StillQuality.STANDARD)


def test_seed_table() -> None:
    assert set(STILL_MODELS) == {"glm-image", "cogview-4-250304"}
    assert GLM_IMAGE.recommended == (
        "1280x1280", "1568x1056", "1056x1568", "1472x1088", "1088x1472", "1728x960", "960x1728"
    )  # fmt: skip
    assert (GLM_IMAGE.min_side, GLM_IMAGE.max_side, GLM_IMAGE.multiple) == (1024, 2048, 32)
    assert GLM_IMAGE.max_pixels == 4_194_304
    assert (COGVIEW_4.min_side, COGVIEW_4.max_side, COGVIEW_4.multiple) == (512, 2048, 16)
    assert COGVIEW_4.max_pixels == 2_097_152


ACCEPTED = [
    ("glm-image", "960x1728", "960x1728"),  # recommended though below the custom minimum
    ("glm-image", "1728 X 960", "1728x960"),
    ("glm-image", "1024×2048", "1024x2048"),  # exactly 2^21, custom
    ("glm-image", "2048*2048", "2048x2048"),  # exactly 2^22
    ("glm-image", "1024x1024", "1024x1024"),
    ("cogview-4-250304", "720x1440", "720x1440"),
    ("cogview-4-250304", "512x512", "512x512"),
    ("cogview-4-250304", "2048x1024", "2048x1024"),  # exactly 2^21
    ("cogview-4-250304", "1456x1440", "1456x1440"),  # 2,096,640 pixels: just under
    ("cogview-4-250304", "1280x1296", "1280x1296"),
    ("cogview-4-250304", "", "1024x1024"),
    ("COGVIEW-4-250304", None, "1024x1024"),
]


@pytest.mark.parametrize(("model", "size", "sent"), ACCEPTED)
def test_sizes_accepted(model: str, size: str | None, sent: str) -> None:
    assert validate_still("a cat", model=model, size=size).size == sent


REFUSED = [
    ("glm-image", "1000x1280", "1000 is outside 1024-2048"),
    ("glm-image", "1040x1280", "1040 is not a multiple of 32"),
    ("glm-image", "2080x1280", "2080 is outside 1024-2048"),
    ("glm-image", "960x1280", "960 is outside"),  # 960 only in the listed 1728 pairs
    ("glm-image", "2048x2080", "outside"),
    ("cogview-4-250304", "2048x2048", "4,194,304 pixels is more than 2,097,152"),
    ("cogview-4-250304", "1290x1024", "1290 is not a multiple of 16"),
    ("cogview-4-250304", "500x512", "500 is outside 512-2048"),
    ("cogview-4-250304", "520x512", "520 is not a multiple of 16"),
    ("cogview-4-250304", "1472x1440", "2,119,680 pixels is more than 2,097,152"),
]


@pytest.mark.parametrize(("model", "size", "reason"), REFUSED)
def test_sizes_refused_with_what_to_do(model: str, size: str, reason: str) -> None:
    with pytest.raises(InputError) as caught:
        validate_still("a cat", model=model, size=size)
    message = caught.value.user_message
    assert reason in message
    assert "Pick a listed size" in message and "multiple of" in message


@pytest.mark.parametrize("size", ["big", "1280", "1280x", "x1280", "1280x1280x3", "-5x10"])
def test_unparseable_size(size: str) -> None:
    with pytest.raises(InputError, match="width x height"):
        validate_still("a cat", size=size)


def test_unknown_model_names_the_choices() -> None:
    with pytest.raises(InputError, match="glm-image, cogview-4-250304"):
        validate_still("a cat", model="dall-e-3")


@pytest.mark.parametrize(("quality", "sent"), [("HD", "hd"), (" standard", "standard")])
def test_quality_either_model(quality: str, sent: str) -> None:
    assert validate_still("a cat", model="glm-image", quality=quality).quality == sent
    assert validate_still("a cat", model="cogview-4-250304", quality=quality).quality == sent


def test_bad_quality() -> None:
    with pytest.raises(InputError, match="pick hd / standard"):
        validate_still("a cat", quality="ultra")


@pytest.mark.parametrize("prompt", [None, "", "   \n"])
def test_empty_prompt(prompt: str | None) -> None:
    with pytest.raises(InputError, match="Describe the picture"):
        validate_still(prompt)


def test_prompt_length() -> None:
    assert validate_still("a" * PROMPT_MAX).prompt == "a" * PROMPT_MAX
    with pytest.raises(InputError, match=f"{PROMPT_MAX + 1} characters; .* at most {PROMPT_MAX}"):
        validate_still("a" * (PROMPT_MAX + 1))


def test_size_choices_for_autocomplete() -> None:
    assert size_choices(None) == list(GLM_IMAGE.recommended)
    assert size_choices("cogview-4-250304", "14") == ["1440x720"]
    assert size_choices("glm-image", "10") == ["1056x1568", "1088x1472"]
