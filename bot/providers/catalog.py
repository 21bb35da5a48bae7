"""The gateway models' rules as data, checked before anything is spent or sent.

Sources (copied facts, nothing is read at run time):
- seed 002 (New-API gateway): viduq3p-540p|720p|1080p, viduq3t-540p|720p|1080p, viduq3p-mix-720p;
  `duration` 1-16, `aspect_ratio`, `image`, `last_image`, `reference_image_urls` (mix models
  only), `extra_body` {audio, seed, bgm}; the resolution is part of the model name.
- seed 004 (GeekAI): cogvideox-flash (free), cogvideox, cogvideox-2; `image`, `image_tail`,
  `negative_prompt`, `with_audio`, `size` (Zhipu's CogVideoX list), `quality`, `fps` 24/30/60,
  `duration`, `watermark`.
- seed 001 (reseller speaking the Z.AI format): cogvideox-2 (and cogvideox-3) with `image_url`,
  `quality`, `with_audio`, `size` (also 720x480, 1280x960, 960x1280), `duration` 5/10, `fps` 30/60.
Phase B merges these rows into bot/models.py's table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.errors import InputError
from bot.i18n import Msg, msg
from bot.images import ImageInfo
from bot.models import Mode, clean_prompt
from bot.providers import Option, ProviderName, VideoRequest

PROMPT_MAX = 512  # Z.AI's limit; the gateways state none, so the bot keeps one rule for all
MB = 1024 * 1024
SEED_RANGE = range(0, 2**31)
NEGATIVE_PROMPT_MAX = 512
BOOL = (True, False)

VIDU_ASPECT_RATIOS = ("16:9", "9:16", "1:1")
VIDU_FORMATS = frozenset({"PNG", "JPEG", "WEBP"})
COG_FORMATS = frozenset({"PNG", "JPEG"})
# Zhipu's CogVideoX sizes as GeekAI (seed 004) and the reseller (seed 001) list them.
COG_SIZES = (
    "720x480",
    "1024x1024",
    "1280x960",
    "960x1280",
    "1920x1080",
    "1080x1920",
    "2048x1080",
    "3840x2160",
)
# Sizes a reseller (seed 001) adds to cogvideox-3 beyond Z.AI's own enum (phase B: widen
# cogvideox-3's sizes when ZAI_BASE_URL is such a reseller, e.g. when ZAI_MODELS has cogvideox-2).
RESELLER_COGVIDEOX3_EXTRA_SIZES = ("720x480", "1280x960", "960x1280")

IMAGE_REF = re.compile(r"@Image(\d+)")

# Pictures each mode takes (the bot's own limit of 3 for references, as for vidu2-reference).
PICTURES: Mapping[Mode, tuple[int, int]] = {
    Mode.TEXT: (0, 0),
    Mode.IMAGE: (1, 1),
    Mode.FRAMES: (2, 2),
    Mode.REFERENCE: (1, 3),
}


@dataclass(frozen=True)
class ModelRules:
    """One model at one API: its modes, option values and picture rules."""

    name: str
    api: ProviderName
    modes: frozenset[Mode]
    options: Mapping[Option, Sequence[Any]]  # allowed values (a range for seeds, () = free text)
    defaults: Mapping[Option, Any] = field(default_factory=dict)
    option_modes: Mapping[Option, frozenset[Mode]] = field(default_factory=dict)  # restrictions
    prompt_modes: frozenset[Mode] = frozenset(Mode)  # modes in which a prompt is required
    image_formats: frozenset[str] = VIDU_FORMATS
    max_image_bytes: int = 50 * MB
    resolution: str | None = None  # fixed by the name (viduq3: "720p")
    typical_seconds: float = 60.0  # prior for the poll schedule until real durations are seen
    free: bool = False


def _vidu(name: str, modes: frozenset[Mode], seconds: float) -> ModelRules:
    """A viduq3 model at the gateway (seed 002)."""
    return ModelRules(
        name=name,
        api=ProviderName.GATEWAY,
        modes=modes,
        options={
            Option.DURATION: tuple(range(1, 17)),
            Option.ASPECT_RATIO: VIDU_ASPECT_RATIOS,
            Option.AUDIO: BOOL,
            Option.SEED: SEED_RANGE,
            Option.BGM: BOOL,
        },
        defaults={Option.DURATION: 5},
        # Image and frames videos take the picture's shape (seed 002: ratio for text and mix).
        option_modes={Option.ASPECT_RATIO: frozenset({Mode.TEXT, Mode.REFERENCE})},
        resolution=name.rsplit("-", 1)[1],
        typical_seconds=seconds,
    )


def _cog(name: str, api: ProviderName, **overrides: Any) -> ModelRules:
    """A CogVideoX model at GeekAI (seed 004) or a Z.AI-format reseller (seed 001)."""
    geekai = api is ProviderName.GEEKAI
    options: dict[Option, Sequence[Any]] = {
        Option.QUALITY: ("speed", "quality"),
        Option.AUDIO: BOOL,
        Option.SIZE: COG_SIZES,
        Option.DURATION: (5, 10),
        Option.FPS: (24, 30, 60) if geekai else (30, 60),
    }
    if geekai:
        options |= {Option.NEGATIVE_PROMPT: (), Option.WATERMARK: BOOL}
    modes = {Mode.TEXT, Mode.IMAGE} | ({Mode.FRAMES} if geekai else set())
    return ModelRules(
        name=name,
        api=api,
        modes=frozenset(modes),
        options=options,
        defaults={Option.DURATION: 5},
        # GeekAI marks `prompt` required; the Z.AI format takes a picture alone.
        prompt_modes=frozenset(Mode) if geekai else frozenset({Mode.TEXT}),
        image_formats=COG_FORMATS,
        max_image_bytes=5 * MB,
        typical_seconds=90.0,
        **overrides,
    )


_VIDU_MODES = frozenset({Mode.TEXT, Mode.IMAGE, Mode.FRAMES})
CATALOG: dict[tuple[ProviderName, str], ModelRules] = {
    (rules.api, rules.name): rules
    for rules in (
        *(_vidu(f"viduq3p-{r}", _VIDU_MODES, 90.0) for r in ("540p", "720p", "1080p")),
        *(_vidu(f"viduq3t-{r}", _VIDU_MODES, 45.0) for r in ("540p", "720p", "1080p")),
        # Only -720p of the mix family appears in seed 002; add others here once confirmed.
        _vidu("viduq3p-mix-720p", frozenset({Mode.REFERENCE}), 90.0),
        _cog("cogvideox-flash", ProviderName.GEEKAI, free=True),
        _cog("cogvideox", ProviderName.GEEKAI),
        _cog("cogvideox-2", ProviderName.GEEKAI),
        _cog("cogvideox-2", ProviderName.ZAI),
    )
}


def models_of(api: ProviderName) -> list[str]:
    """Model names an API offers, in catalog order."""
    return [name for (where, name) in CATALOG if where is api]


def rules_for(api: ProviderName, model: str) -> ModelRules:
    """The rules of a model at an API, or a clear error naming what that API offers."""
    try:
        return CATALOG[(api, model)]
    except KeyError:
        offered = ", ".join(models_of(api))
        raise InputError("model.unknown", model=model, models=offered) from None


def check_request(rules: ModelRules, request: VideoRequest) -> None:
    """Mode, prompt and options of a request (pictures: `check_pictures`)."""
    if request.mode not in rules.modes:
        modes = ", ".join(sorted(m.value for m in rules.modes))
        raise InputError("model.modes_only", model=rules.name, mode=request.mode.value, modes=modes)
    _check_prompt(rules, request)
    for name, value in request.options.items():
        _check_option(rules, request.mode, Option(name), value)


def _check_prompt(rules: ModelRules, request: VideoRequest) -> None:
    """Presence, length and @ImageN references."""
    prompt = request.prompt or ""
    if clean_prompt(prompt) is None and request.mode in rules.prompt_modes:
        raise InputError("prompt.needed", model=rules.name)
    if len(prompt) > PROMPT_MAX:
        raise InputError("prompt.too_long", length=len(prompt), limit=PROMPT_MAX)
    if request.mode is Mode.REFERENCE and request.pictures:  # else: once they are fetched
        check_references(prompt, len(request.pictures))


def check_references(prompt: str | None, count: int) -> None:
    """@Image1…@ImageN in a reference prompt name pictures the member gave."""
    for number in (int(n) for n in IMAGE_REF.findall(prompt or "")):
        if not 1 <= number <= count:
            raise InputError("prompt.bad_reference", number=number, count=count)


def _check_option(rules: ModelRules, mode: Mode, option: Option, value: Any) -> None:
    """One option against the model's allowed values, with a message saying what to pick."""
    allowed = rules.options.get(option)
    if allowed is None:
        raise InputError("option.absent", model=rules.name, option=option.value)
    modes = rules.option_modes.get(option)
    if modes is not None and mode not in modes:
        where = ", ".join(sorted(m.value for m in modes))
        raise InputError(
            "option.modes_only", model=rules.name, option=option.value, modes=where, mode=mode.value
        )
    if _allowed(option, allowed, value):
        return
    raise InputError(_option_message(rules.name, option, allowed))


def known_models() -> list[str]:
    """Every model name of the catalog, once, in catalog order."""
    return list(dict.fromkeys(rules.name for rules in CATALOG.values()))


def allowed_values(model: str, option: str) -> tuple[Any, ...] | None:
    """The values any API's rules allow for a model's option (cost rules); None: no such one."""
    found: list[Any] = []
    known = False
    for rules in CATALOG.values():
        allowed = rules.options.get(Option(option)) if rules.name == model else None
        if allowed is not None:
            known = True
            found += [v for v in allowed if v not in found] if isinstance(allowed, tuple) else []
    return tuple(found) if known else None


def accepts(rules: ModelRules, mode: Mode, option: str, value: Any) -> bool:
    """Whether the model takes `option` = `value` in `mode` (Extend keeps only these)."""
    try:
        _check_option(rules, mode, Option(option), value)
    except (InputError, ValueError):
        return False
    return True


def _allowed(option: Option, allowed: Sequence[Any], value: Any) -> bool:
    """Whether `value` is one of `allowed` (booleans never pass as numbers)."""
    if option is Option.NEGATIVE_PROMPT:
        return isinstance(value, str) and len(value) <= NEGATIVE_PROMPT_MAX
    if isinstance(value, bool) != isinstance(allowed[0], bool):
        return False
    return value in allowed


def _option_message(model: str, option: Option, allowed: Sequence[Any]) -> Msg:
    """What to pick instead of a refused value."""
    if option is Option.NEGATIVE_PROMPT:
        return msg("option.negative_prompt_long", limit=NEGATIVE_PROMPT_MAX)
    if isinstance(allowed, range):
        return msg(
            "option.range", model=model, option=option.value, low=allowed[0], high=allowed[-1]
        )
    if option is Option.DURATION and len(allowed) > 3:
        return msg("option.duration_range", model=model, low=allowed[0], high=allowed[-1])
    shown = ", ".join(f"`{v}`" for v in allowed)
    return msg("option.values_only", model=model, option=option.value, values=shown)


def check_pictures(rules: ModelRules, mode: Mode, images: Sequence[ImageInfo]) -> None:
    """Number, shape and format of the pictures (before they are published or sent)."""
    low, high = PICTURES[mode]
    if not low <= len(images) <= high:
        want = str(low) if low == high else f"{low}-{high}"
        raise InputError("pictures.count", mode=mode.value, want=want, count=len(images))
    for n, info in enumerate(images, start=1):
        if not 0.25 <= info.aspect <= 4.0:
            raise InputError("pictures.too_narrow", n=n, size=f"{info.width}×{info.height}")


def option_default(rules: ModelRules, option: Option) -> Any:
    """The value sent when the member set none (None: the field is left out)."""
    return rules.defaults.get(option)
