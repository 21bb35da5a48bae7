"""The still-image model table: what glm-image and cogview-4 accept (seed 003), stated once.

Facts and their sources are listed in docs/zai-media-api.md. Validation happens here, before
anything is spent, and every refusal says what to do instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bot.errors import InputError
from bot.i18n import Msg, msg

# Not in seed 003: the sister platform's GLM-Image page gives 1000 characters of input text.
PROMPT_MAX = 1000
# A size as members type it: 1280x1280, 1280 X 1280, 1280×1280, 1280*1280.
_SIZE_RE = re.compile(r"\s*(\d{1,5})\s*[x×*]\s*(\d{1,5})\s*", re.IGNORECASE)


class StillQuality(StrEnum):
    """Seed 003's `quality`: hd is detailed (~20 s), standard is faster (~5-10 s)."""

    HD = "hd"
    STANDARD = "standard"


@dataclass(frozen=True)
class StillModel:
    """One image model: defaults, recommended sizes and the custom-size rule."""

    name: str
    default_quality: StillQuality
    recommended: tuple[str, ...]  # the first is the default size
    min_side: int
    max_side: int
    multiple: int
    max_pixels: int
    typical_seconds: float  # seed 003: hd about 20 s, standard about 5-10 s (status messages)

    @property
    def default_size(self) -> str:
        """The model's default size (seed 003's table)."""
        return self.recommended[0]

    def size_rule(self) -> Msg:
        """The custom-size rule in words, for messages and help."""
        return msg(
            "still.size_rule",
            low=self.min_side,
            high=self.max_side,
            multiple=self.multiple,
            pixels=f"{self.max_pixels:,}",
        )


GLM_IMAGE = StillModel(
    name="glm-image",
    default_quality=StillQuality.HD,
    recommended=(
        "1280x1280",
        "1568x1056",
        "1056x1568",
        "1472x1088",
        "1088x1472",
        "1728x960",
        "960x1728",  # recommended although 960 is below the custom minimum of 1024
    ),
    min_side=1024,
    max_side=2048,
    multiple=32,
    max_pixels=2**22,
    typical_seconds=20.0,
)
COGVIEW_4 = StillModel(
    name="cogview-4-250304",
    default_quality=StillQuality.STANDARD,
    recommended=(
        "1024x1024",
        "768x1344",
        "864x1152",
        "1344x768",
        "1152x864",
        "1440x720",
        "720x1440",
    ),
    min_side=512,
    max_side=2048,
    multiple=16,
    max_pixels=2**21,
    typical_seconds=8.0,
)
STILL_MODELS: dict[str, StillModel] = {m.name: m for m in (GLM_IMAGE, COGVIEW_4)}
DEFAULT_STILL_MODEL = GLM_IMAGE.name


@dataclass(frozen=True)
class StillRequest:
    """A validated still request: everything the provider body needs but the user id."""

    model: str
    prompt: str
    size: str
    quality: StillQuality

    def body(self, user_id: str | None = None) -> dict[str, Any]:
        """The JSON body of POST /images/generations (seed 003's request)."""
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": self.prompt,
            "quality": self.quality.value,
            "size": self.size,
        }
        if user_id:
            body["user_id"] = user_id
        return body


def still_model(name: str | None) -> StillModel:
    """The model called `name` (None: the default), or InputError naming the choices."""
    model = STILL_MODELS.get((name or DEFAULT_STILL_MODEL).strip().lower())
    if model is None:
        choices = ", ".join(STILL_MODELS)
        raise InputError("still.unknown_model", model=repr(name), models=choices)
    return model


def parse_size(text: str) -> tuple[int, int]:
    """`WIDTHxHEIGHT` as two ints, or InputError with an example."""
    match = _SIZE_RE.fullmatch(text)
    if match is None:
        raise InputError("still.not_a_size", size=repr(text))
    return int(match[1]), int(match[2])


def check_size(model: StillModel, text: str | None) -> str:
    """The size to send (the model's default when empty), or InputError saying what fits."""
    if not text or not text.strip():
        return model.default_size
    width, height = parse_size(text)
    size = f"{width}x{height}"
    if size in model.recommended:
        return size
    problem = _custom_size_problem(model, width, height)
    if problem is not None:
        examples = ", ".join(model.recommended[:3])
        raise InputError(
            "still.size_refused",
            size=size,
            model=model.name,
            problem=problem,
            examples=examples,
            rule=model.size_rule(),
        )
    return size


def _custom_size_problem(model: StillModel, width: int, height: int) -> Msg | None:
    """What breaks the model's custom-size rule, or None when the size fits."""
    for side in (width, height):
        if not model.min_side <= side <= model.max_side:
            return msg("still.side_outside", side=side, low=model.min_side, high=model.max_side)
        if side % model.multiple:
            return msg("still.side_multiple", side=side, multiple=model.multiple)
    if width * height > model.max_pixels:
        return msg(
            "still.too_many_pixels", pixels=f"{width * height:,}", limit=f"{model.max_pixels:,}"
        )
    return None


def check_quality(model: StillModel, quality: str | None) -> StillQuality:
    """The quality to send (the model's default when empty), or InputError naming the choices."""
    if not quality:
        return model.default_quality
    try:
        return StillQuality(quality.strip().lower())
    except ValueError:
        choices = " / ".join(q.value for q in StillQuality)
        raise InputError("still.unknown_quality", quality=repr(quality), choices=choices) from None


def check_prompt(prompt: str | None) -> str:
    """A stripped, non-empty prompt of at most PROMPT_MAX characters, or InputError."""
    text = (prompt or "").strip()
    if not text:
        raise InputError("still.no_prompt")
    if len(text) > PROMPT_MAX:
        raise InputError("still.prompt_too_long", length=len(text), limit=PROMPT_MAX)
    return text


def validate_still(
    prompt: str | None,
    model: str | None = None,
    size: str | None = None,
    quality: str | None = None,
) -> StillRequest:
    """Check a member's /image options; the request to send, or InputError (nothing spent)."""
    chosen = still_model(model)
    return StillRequest(
        model=chosen.name,
        prompt=check_prompt(prompt),
        size=check_size(chosen, size),
        quality=check_quality(chosen, quality),
    )


def size_choices(model: str | None, typed: str = "") -> list[str]:
    """Recommended sizes of `model` that start with what the member typed (for autocomplete)."""
    chosen = STILL_MODELS.get((model or DEFAULT_STILL_MODEL).lower(), GLM_IMAGE)
    return [s for s in chosen.recommended if s.startswith(typed.strip().lower())][:25]


def still_values(model: str, option: str) -> tuple[str, ...] | None:
    """Values a still model takes for a /image option (sizes: the recommended ones); None if none."""
    if option == "quality":
        return tuple(q.value for q in StillQuality)
    if option == "size":
        return STILL_MODELS[model].recommended
    return None
