"""What each model takes, gathered from the model table and the provider catalog (for /video help)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot import models
from bot.i18n import Msg, msg
from bot.images import format_size
from bot.models import VIDEO_MODES, Mode
from bot.providers import Option, ProviderName, catalog


@dataclass(frozen=True)
class ModelFacts:
    """One model at the provider that makes it: modes, option values and picture rules."""

    name: str
    provider: ProviderName
    modes: tuple[Mode, ...]
    durations: tuple[Any, ...]
    sizes: tuple[Any, ...]  # empty: fixed by the model (`resolution`) or by the picture
    resolution: str | None
    audio: bool
    pictures: tuple[Msg, ...]  # the picture rules, as catalog messages
    defaults: dict[str, Any]  # what it is made with when the member sets nothing (priced so)


def facts(model: str, provider: ProviderName) -> ModelFacts:
    """The facts of a model at a provider (the model table for Z.AI's own, else the catalog)."""
    if provider is ProviderName.ZAI and model in models.MODELS:
        return _table_facts(model)
    return _catalog_facts(catalog.rules_for(provider, model))


def _table_facts(model: str) -> ModelFacts:
    """A Z.AI model from bot/models.py."""
    spec = models.get_spec(model)
    modes = tuple(m for m in VIDEO_MODES if m in spec.modes)
    formats = "/".join(sorted(spec.image_formats))
    rules = [msg("facts.formats", formats=formats, size=format_size(spec.max_image_bytes))]
    rules += [_per_mode(m, models.image_count(model, m)) for m in modes if m != Mode.TEXT]
    if spec.aspect_limit:
        rules.append(Msg("facts.sides"))
    if spec.min_image_side:
        side = spec.min_image_side
        rules.append(msg("facts.at_least", size=f"{side}×{side}"))
    return ModelFacts(
        model,
        ProviderName.ZAI,
        modes,
        models.allowed_values(model, "duration") or (),
        models.allowed_values(model, "size") or (),
        None,
        models.allowed_values(model, "audio") is not None,
        tuple(rules),
        models.default_options(model),
    )


def _catalog_facts(rules: catalog.ModelRules) -> ModelFacts:
    """A gateway model from bot/providers/catalog.py."""
    modes = tuple(m for m in VIDEO_MODES if m in rules.modes)
    formats = "/".join(sorted(rules.image_formats))
    words = [msg("facts.formats", formats=formats, size=format_size(rules.max_image_bytes))]
    words += [_per_mode(m, catalog.PICTURES[m]) for m in modes if m != Mode.TEXT]
    words.append(Msg("facts.sides"))
    return ModelFacts(
        rules.name,
        rules.api,
        modes,
        tuple(rules.options.get(Option.DURATION, ())),
        tuple(rules.options.get(Option.SIZE, ())),
        rules.resolution,
        Option.AUDIO in rules.options,
        tuple(words),
        {str(option): value for option, value in rules.defaults.items()},
    )


def _per_mode(mode: Mode, bounds: tuple[int, int]) -> Msg:
    """`image: 1 picture`, `reference: 1–3 pictures`."""
    low, high = bounds
    if low == high:
        return msg("facts.mode_pictures", mode=mode.value, count=low)
    return msg("facts.mode_pictures_range", mode=mode.value, low=low, high=high)


def span(values: Sequence[Any]) -> str:
    """Values in words: a long run of integers as `1–16`, else joined with commas."""
    if len(values) > 3 and all(isinstance(v, int) for v in values):
        if list(values) == list(range(values[0], values[-1] + 1)):
            return f"{values[0]}–{values[-1]}"
    return ", ".join(str(v) for v in values)


def option_values(
    model: str, provider: ProviderName, option: str, mode: Mode
) -> tuple[tuple[Any, ...] | None, Any]:
    """What a model at a provider accepts for an option in a mode (None: it has no such option,
    () free text or a range) and its default value (None if it has none)."""
    if provider is ProviderName.ZAI and model in models.MODELS:
        values = models.allowed_values(model, option, mode)
        return values, models.default_options(model).get(option)
    rules = catalog.rules_for(provider, model)
    allowed = rules.options.get(Option(option))
    modes = rules.option_modes.get(Option(option))
    if allowed is None or (modes is not None and mode not in modes):
        return None, None
    values = tuple(allowed) if isinstance(allowed, tuple) else ()
    return values, rules.defaults.get(Option(option))
