"""The model table: what each Z.AI video model accepts, stated once.

Each model's request body is a pydantic model whose `Literal` fields are the spec's enums
(`tests/fakes/zai_openapi.yaml`); the choices offered to users and the validation messages
are derived from those annotations, so a model's limits live in one place.
"""

from __future__ import annotations

import types
import typing
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bot.errors import InputError
from bot.i18n import msg
from bot.images import ImageInfo
from bot.stills import STILL_MODELS, still_values
from bot.text import strip_invisible

PROMPT_MAX = 512
# Every refusal of an option or mode ends with where to look up what each model takes.
HELP_HINT = "hint.help"  # {text}: the refusal, then the pointer to /video help
MB = 1024 * 1024
# The spec's byte limits, read safely: "no more than 5M" (CogVideoX) and "must be less than
# 50 MB" (Vidu) as strictly under 5,000,000 and 50,000,000 bytes (decimal, the smaller reading).
COG_MAX_BYTES = 5_000_000 - 1
VIDU_MAX_BYTES = 50_000_000 - 1

Movement = Literal["auto", "small", "medium", "large"]
AspectRatio = Literal["16:9", "9:16", "1:1"]


class Mode(StrEnum):
    """The four ways of asking for a video, and a still picture (`/image`, bot/stills.py)."""

    TEXT = "text"
    IMAGE = "image"
    FRAMES = "frames"
    REFERENCE = "reference"
    STILL = "still"


VIDEO_MODES = (Mode.TEXT, Mode.IMAGE, Mode.FRAMES, Mode.REFERENCE)
# Speech to text for spoken prompts (seed 003); priced like a model in the cost table.
ASR_MODEL = "glm-asr-2512"


class _Common(BaseModel):
    """Fields every video request carries (VideoCommonRequest in the spec)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str | None = Field(default=None, max_length=PROMPT_MAX)
    request_id: str = Field(min_length=6, max_length=64)
    user_id: str = Field(min_length=6, max_length=128)


class CogVideoX3Request(_Common):
    """cogvideox-3: text, one start image, or first+last frames (speed quality only)."""

    model: Literal["cogvideox-3"] = "cogvideox-3"
    quality: Literal["speed", "quality"] = "speed"
    with_audio: bool = False
    image_url: list[str] | None = Field(default=None, min_length=1, max_length=2)
    size: (
        Literal[
            "1280x720", "720x1280", "1024x1024", "1920x1080", "1080x1920", "2048x1080", "3840x2160"
        ]
        | None
    ) = None  # unset: short side 1080, long side follows the image
    fps: Literal[30, 60] = 30
    duration: Literal[5, 10] = 5


class ViduQ1TextRequest(_Common):
    """viduq1-text: text to video."""

    model: Literal["viduq1-text"] = "viduq1-text"
    prompt: str = Field(min_length=1, max_length=PROMPT_MAX)
    style: Literal["general", "anime"] = "general"
    duration: Literal[5] = 5
    aspect_ratio: AspectRatio = "16:9"
    size: Literal["1920x1080"] = "1920x1080"
    movement_amplitude: Movement = "auto"


class ViduQ1ImageRequest(_Common):
    """viduq1-image: one image as the first frame."""

    model: Literal["viduq1-image"] = "viduq1-image"
    image_url: str
    duration: Literal[5] = 5
    size: Literal["1920x1080"] = "1920x1080"
    movement_amplitude: Movement = "auto"
    with_audio: bool = False


class Vidu2ImageRequest(ViduQ1ImageRequest):
    """vidu2-image: one image as the first frame, 4 s at 720p."""

    model: Literal["vidu2-image"] = "vidu2-image"  # type: ignore[assignment]
    duration: Literal[4] = 4  # type: ignore[assignment]
    size: Literal["1280x720"] = "1280x720"  # type: ignore[assignment]


class ViduQ1StartEndRequest(_Common):
    """viduq1-start-end: first and last frames."""

    model: Literal["viduq1-start-end"] = "viduq1-start-end"
    image_url: list[str] = Field(min_length=1, max_length=2)  # minItems 1: a start frame alone
    duration: Literal[5] = 5
    size: Literal["1920x1080"] = "1920x1080"
    movement_amplitude: Movement = "auto"
    with_audio: bool = False


class Vidu2StartEndRequest(ViduQ1StartEndRequest):
    """vidu2-start-end: first and last frames, 4 s at 720p."""

    model: Literal["vidu2-start-end"] = "vidu2-start-end"  # type: ignore[assignment]
    duration: Literal[4] = 4  # type: ignore[assignment]
    size: Literal["1280x720"] = "1280x720"  # type: ignore[assignment]


class Vidu2ReferenceRequest(_Common):
    """vidu2-reference: 1 to 3 reference images for consistent subjects."""

    model: Literal["vidu2-reference"] = "vidu2-reference"
    image_url: list[str] = Field(min_length=1, max_length=3)
    duration: Literal[4] = 4
    aspect_ratio: AspectRatio = "16:9"
    size: Literal["1280x720"] = "1280x720"
    movement_amplitude: Movement = "auto"
    with_audio: bool = False


@dataclass(frozen=True)
class ModelSpec:
    """What the bot knows about one model beyond its request schema."""

    name: str
    request: type[_Common]
    modes: frozenset[Mode]
    max_image_bytes: int
    image_formats: frozenset[str]
    typical_seconds: float  # prior for the poll schedule until real durations are seen
    min_image_side: int = 0
    # Vidu's rules (seed 000); cogvideox-3's spec states neither.
    aspect_limit: bool = False  # each image's sides strictly within 1:4..4:1
    similar_frames: bool = False  # first/last frame pixel counts within 0.8..1.25
    frames: tuple[int, int] = (2, 2)  # images in frames mode (min, max)
    # Option values a mode narrows further than the request schema (the spec's prose rules).
    mode_options: tuple[tuple[Mode, str, tuple[Any, ...]], ...] = ()


_VIDU_FORMATS = frozenset({"PNG", "JPEG", "WEBP"})
MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "cogvideox-3",
            CogVideoX3Request,
            frozenset({Mode.TEXT, Mode.IMAGE, Mode.FRAMES}),
            COG_MAX_BYTES,
            frozenset({"PNG", "JPEG"}),
            90.0,
            # "First and last frame mode only supports `speed` mode"
            mode_options=((Mode.FRAMES, "quality", ("speed",)),),
        ),
        ModelSpec(
            "viduq1-text",
            ViduQ1TextRequest,
            frozenset({Mode.TEXT}),
            VIDU_MAX_BYTES,
            _VIDU_FORMATS,
            60.0,
        ),
        ModelSpec(
            "viduq1-image",
            ViduQ1ImageRequest,
            frozenset({Mode.IMAGE}),
            VIDU_MAX_BYTES,
            _VIDU_FORMATS,
            60.0,
            aspect_limit=True,
        ),
        ModelSpec(
            "vidu2-image",
            Vidu2ImageRequest,
            frozenset({Mode.IMAGE}),
            VIDU_MAX_BYTES,
            _VIDU_FORMATS,
            45.0,
            aspect_limit=True,
        ),
        ModelSpec(
            "viduq1-start-end",
            ViduQ1StartEndRequest,
            frozenset({Mode.FRAMES}),
            VIDU_MAX_BYTES,
            _VIDU_FORMATS,
            60.0,
            aspect_limit=True,
            similar_frames=True,
            frames=(1, 2),
        ),
        ModelSpec(
            "vidu2-start-end",
            Vidu2StartEndRequest,
            frozenset({Mode.FRAMES}),
            VIDU_MAX_BYTES,
            _VIDU_FORMATS,
            45.0,
            aspect_limit=True,
            similar_frames=True,
            frames=(1, 2),
        ),
        ModelSpec(
            "vidu2-reference",
            Vidu2ReferenceRequest,
            frozenset({Mode.REFERENCE}),
            VIDU_MAX_BYTES,
            _VIDU_FORMATS,
            60.0,
            min_image_side=128,
            aspect_limit=True,
        ),
    )
}

# The model each way of asking uses when the member does not pick one.
DEFAULT_MODEL: dict[Mode, str] = {
    Mode.TEXT: "cogvideox-3",
    Mode.IMAGE: "cogvideox-3",
    Mode.FRAMES: "cogvideox-3",
    Mode.REFERENCE: "vidu2-reference",
}

IMAGES_PER_MODE: dict[Mode, tuple[int, int]] = {
    Mode.TEXT: (0, 0),
    Mode.IMAGE: (1, 1),
    Mode.FRAMES: (2, 2),
    Mode.REFERENCE: (1, 3),
}


def image_count(model: str, mode: Mode) -> tuple[int, int]:
    """How many images (min, max) a model takes in a mode."""
    return get_spec(model).frames if mode is Mode.FRAMES else IMAGES_PER_MODE[mode]


@dataclass(frozen=True)
class VideoOptions:
    """The user-facing options; None means the model's default."""

    quality: str | None = None
    audio: bool | None = None
    size: str | None = None
    duration: int | None = None
    fps: int | None = None
    style: str | None = None
    aspect_ratio: str | None = None
    movement: str | None = None

    def given(self) -> dict[str, Any]:
        """The options the user actually set."""
        return {
            f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None
        }


# User-facing option name -> request body field.
OPTION_FIELDS: dict[str, str] = {
    "quality": "quality",
    "audio": "with_audio",
    "size": "size",
    "duration": "duration",
    "fps": "fps",
    "style": "style",
    "aspect_ratio": "aspect_ratio",
    "movement": "movement_amplitude",
}


# The options members set; each one's description is the catalog key opt.<option>.desc.
OPTION_NAMES = (
    "model",
    "quality",
    "audio",
    "size",
    "duration",
    "fps",
    "style",
    "aspect_ratio",
    "movement",
)


def priced_names() -> list[str]:
    """Every model moderators can price and turn off: videos, stills, speech recognition."""
    return [*MODELS, *STILL_MODELS, ASR_MODEL]


def peers(model: str) -> list[str]:
    """The models of the same kind as `model` (still, speech, video), for "use one of" messages."""
    if model in STILL_MODELS:
        return list(STILL_MODELS)
    return [ASR_MODEL] if model == ASR_MODEL else list(MODELS)


def models_for(mode: Mode) -> list[str]:
    """Model names that offer a mode, in table order."""
    return [name for name, spec in MODELS.items() if mode in spec.modes]


def get_spec(model: str) -> ModelSpec:
    """The spec of a model, or a clear error naming the known ones."""
    try:
        return MODELS[model]
    except KeyError:
        raise InputError("model.unknown", model=model, models=", ".join(MODELS)) from None


def allowed_values(model: str, option: str, mode: Mode | None = None) -> tuple[Any, ...] | None:
    """The values a model accepts for a user option (in `mode`, if given); None if it has no
    such option."""
    if model in STILL_MODELS:
        return still_values(model, option)
    if model == ASR_MODEL:
        return None
    spec = get_spec(model)
    field = spec.request.model_fields.get(OPTION_FIELDS[option])
    if field is None:
        return None
    values = _literal_values(field.annotation)
    for limited_mode, name, narrowed in spec.mode_options:
        if mode is limited_mode and name == option:
            values = tuple(v for v in values if v in narrowed)
    return values


def default_options(model: str) -> dict[str, Any]:
    """The option values a Z.AI model is made with when the member sets none (schema defaults)."""
    fields_ = get_spec(model).request.model_fields
    return {
        option: fields_[name].default
        for option, name in OPTION_FIELDS.items()
        if name in fields_ and fields_[name].default is not None
    }


def _literal_values(annotation: Any) -> tuple[Any, ...]:
    """Flatten `Literal[...] | None` (or bool) into its allowed values."""
    if annotation is bool:
        return (True, False)
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        values: list[Any] = []
        for arg in typing.get_args(annotation):
            if arg is not type(None):
                values.extend(_literal_values(arg))
        return tuple(values)
    return ()


def clean_prompt(prompt: str | None) -> str | None:
    """Drop control and invisible characters and outer whitespace; None when nothing is left."""
    if prompt is None:
        return None
    kept = "".join(ch for ch in prompt if ch in "\n\t" or unicodedata.category(ch)[0] != "C")
    kept = strip_invisible(kept).strip()  # e.g. U+034F, variation selectors, tag characters
    return kept or None


def check_request(model: str, mode: Mode, prompt: str | None, options: VideoOptions) -> str | None:
    """Check everything about a request except its images; returns the cleaned prompt."""
    spec = get_spec(model)
    if mode not in spec.modes:
        offered = ", ".join(models_for(mode))
        wrong = msg("model.wrong_mode", model=model, mode=mode.value, models=offered)
        raise InputError(HELP_HINT, text=wrong)
    cleaned = clean_prompt(prompt)
    _check_prompt(spec, mode, prompt, cleaned)
    for option, value in options.given().items():
        _check_option(model, option, value, mode)
    return cleaned


def _check_prompt(spec: ModelSpec, mode: Mode, raw: str | None, cleaned: str | None) -> None:
    """Prompt length and presence rules."""
    if cleaned is not None and len(cleaned) > PROMPT_MAX:
        raise InputError("prompt.too_long", length=len(cleaned), limit=PROMPT_MAX)
    if cleaned is None and mode is Mode.TEXT:
        if raw:
            raise InputError("prompt.invisible")
        raise InputError("prompt.needed", model=spec.name)


def _check_option(model: str, option: str, value: Any, mode: Mode) -> None:
    """One option against the model's schema; the refusal points to /video help."""
    try:
        _check_value(model, option, value, mode)
    except InputError as exc:
        raise InputError(HELP_HINT, text=exc.text) from None


def _check_value(model: str, option: str, value: Any, mode: Mode) -> None:
    """One option against the model's schema, with a message naming what it supports."""
    allowed = allowed_values(model, option, mode)
    if allowed is None:
        raise InputError("option.absent", model=model, option=option)
    if value in allowed:
        return
    if allowed != allowed_values(model, option):  # the mode narrows it (cogvideox-3 frames)
        shown = ", ".join(f"`{v}`" for v in allowed)
        others = ", ".join(m for m in models_for(mode) if m != model)
        raise InputError(
            "option.mode_narrows",
            model=model,
            mode=mode.value,
            option=option,
            values=shown,
            models=others,
        )
    if option == "duration":
        secs = " / ".join(str(v) for v in allowed)
        raise InputError("option.durations_only", model=model, seconds=secs)
    shown = ", ".join(f"`{v}`" for v in allowed)
    raise InputError("option.values_only", model=model, option=option, values=shown)


def check_images(model: str, mode: Mode, images: Sequence[ImageInfo]) -> None:
    """The model's rules on the number, shape and size of images."""
    spec = get_spec(model)
    low, high = image_count(model, mode)
    if not low <= len(images) <= high:
        want = str(low) if low == high else f"{low}-{high}"
        raise InputError("images.count", model=model, mode=mode.value, want=want, count=len(images))
    for n, info in enumerate(images, start=1):
        _check_shape(spec, n, info)
    if mode is Mode.FRAMES and spec.similar_frames and len(images) == 2:
        first, last = images
        ratio = (first.width * first.height) / (last.width * last.height)
        if not 0.8 <= ratio <= 1.25:
            raise InputError(
                "images.frames_differ",
                first=f"{first.width}×{first.height}",
                last=f"{last.width}×{last.height}",
            )


def _check_shape(spec: ModelSpec, n: int, info: ImageInfo) -> None:
    """Aspect ratio strictly within 1:4..4:1 (Vidu: "less than") and the model's minimum side."""
    if spec.aspect_limit and not 0.25 < info.aspect < 4.0:
        raise InputError(
            "images.too_narrow", n=n, size=f"{info.width}×{info.height}", model=spec.name
        )
    if spec.min_image_side and min(info.width, info.height) < spec.min_image_side:
        side = spec.min_image_side
        raise InputError(
            "images.too_small",
            n=n,
            size=f"{info.width}×{info.height}",
            model=spec.name,
            least=f"{side}×{side}",
        )


def build_body(
    model: str,
    mode: Mode,
    prompt: str | None,
    options: VideoOptions,
    image_uris: Sequence[str],
    *,
    request_id: str,
    user_id: str,
) -> dict[str, Any]:
    """The JSON body for POST /videos/generations, checked by the model's pydantic schema."""
    spec = get_spec(model)
    values: dict[str, Any] = {"request_id": request_id, "user_id": user_id}
    if prompt is not None:
        values["prompt"] = prompt
    for option, value in options.given().items():
        values[OPTION_FIELDS[option]] = value
    if image_uris:
        single = typing.get_origin(spec.request.model_fields["image_url"].annotation) is None
        values["image_url"] = image_uris[0] if single and mode is Mode.IMAGE else list(image_uris)
    return spec.request(**values).model_dump(exclude_none=True)


def provider_user_id(user_id: int) -> str:
    """The Discord user id as Z.AI's `user_id` (6 to 128 characters)."""
    return str(user_id).zfill(6)


def family(model: str) -> str:
    """A model's family: the name up to its first dash (`viduq1-text` → `viduq1`)."""
    return model.split("-", 1)[0]


def extend_model(model: str) -> str:
    """The image-to-video model that continues a video of `model` (the same family if it can)."""
    if Mode.IMAGE in get_spec(model).modes:
        return model
    same = [m for m in models_for(Mode.IMAGE) if family(m) == family(model)]
    return same[0] if same else DEFAULT_MODEL[Mode.IMAGE]


def carry_options(model: str, options: dict[str, Any]) -> VideoOptions:
    """The options of a job that another model also accepts."""
    kept = {k: v for k, v in options.items() if v in (allowed_values(model, k) or ())}
    return VideoOptions(**kept)
