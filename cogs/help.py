"""The text of /video help: what each model takes, and what it costs on this server."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.defaults import NAMES, OPTION_NAMES, MemberDefaults
from bot.engine import PROVIDER_OPTION
from bot.i18n import Msg, render
from bot.model_facts import ModelFacts, span
from bot.models import VIDEO_MODES, Mode
from bot.policy import cost_of
from cogs.common import duration_text, provider_name
from cogs.translator import choice
from storage.moderation import CostRule

MESSAGE_MAX = 2000


def model_block(locale: str, facts: ModelFacts, seconds: float) -> str:
    """A model's modes, durations, sizes, audio, pictures and typical time, in a few lines."""
    if facts.sizes:
        sizes: str = span(facts.sizes)
    else:
        sizes = facts.resolution or render(locale, "help.sizes_by_model")
    lines = [
        f"**{facts.name}** ({provider_name(locale, facts.provider)}) · "
        + ", ".join(m.value for m in facts.modes),
        render(
            locale,
            "help.model_line",
            durations=span(facts.durations),
            sizes=sizes,
            audio=Msg("help.yes" if facts.audio else "help.no"),
            typical=duration_text(locale, seconds),
        ),
    ]
    if any(m is not Mode.TEXT for m in facts.modes):
        rules = ", ".join(render(locale, rule) for rule in facts.pictures)
        lines.append(render(locale, "help.pictures", pictures=rules))
    return "\n".join(lines)


def costs_block(
    locale: str,
    facts: Sequence[ModelFacts],
    enabled: Mapping[str, bool],
    rules: list[CostRule],
) -> str:
    """This server's enabled models and their costs (as made with the defaults, and per rule)."""
    lines = [render(locale, "help.costs_head")]
    for model in facts:
        if enabled.get(model.name, True) is False:
            continue
        made_as = model.defaults | {PROVIDER_OPTION: model.provider.value}
        line = f"• {model.name}: {cost_of(rules, model.name, made_as)}"
        extra = [
            f"{r.option}={r.value}: {r.cost}" for r in rules if r.model == model.name and r.option
        ]
        lines.append(line + (f" ({'; '.join(extra)})" if extra else ""))
    off = [m.name for m in facts if enabled.get(m.name, True) is False]
    if off:
        lines.append(render(locale, "help.turned_off", models=", ".join(off)))
    return "\n".join(lines)


def pages(blocks: Sequence[str], limit: int = MESSAGE_MAX) -> list[str]:
    """Blocks packed into messages of at most `limit` characters (a block is never split)."""
    out: list[str] = []
    for block in blocks:
        if out and len(out[-1]) + 1 + len(block) <= limit:
            out[-1] += "\n" + block
        else:
            out.append(block[:limit])
    return out


# --- /video defaults (and "your defaults" in /video help) ---------------------------------

RESET_CHOICES = [choice("choice.reset.all", "all")] + [
    choice(f"choice.reset.{name}", name) for name in NAMES
]


def _shown(locale: str, value: Any) -> str:
    """A default's value as members read it."""
    if isinstance(value, bool):
        return render(locale, "defaults.on" if value else "defaults.off")
    return str(value)


def _modes(locale: str, modes: Sequence[Mode]) -> str:
    """Modes by their localized subcommand names."""
    return ", ".join(render(locale, f"name.cmd.video.{m}") for m in modes)


def value_label(locale: str, label: str, modes: Sequence[Mode], own: bool) -> str:
    """An autocomplete choice of /video defaults: the value, where it would be used, if yours."""
    where = _modes(locale, modes) or render(locale, "defaults.fits_none")
    key = "defaults.value_label_own" if own else "defaults.value_label"
    return render(locale, key, label=label, modes=where)


def defaults_block(locale: str, mine: MemberDefaults, used: Mapping[str, Sequence[Mode]]) -> str:
    """A member's defaults: the model per mode, each option set and where it is used, privacy."""
    models = " · ".join(
        render(
            locale,
            "defaults.model_own" if mine.own_model(mode) else "defaults.model_usual",
            mode=Msg(f"name.cmd.video.{mode}"),
            model=mine.model_for(mode),
        )
        for mode in VIDEO_MODES
    )
    lines = [render(locale, "defaults.head"), render(locale, "defaults.models", models=models)]
    for option, value in mine.options().items():
        where = _modes(locale, used.get(option, ()))
        key = "defaults.option_used" if where else "defaults.option_unused"
        name = Msg(f"name.opt.{option}")
        lines.append(render(locale, key, option=name, value=_shown(locale, value), modes=where))
    unset = [render(locale, f"name.opt.{o}") for o in OPTION_NAMES if o not in mine.options()]
    if unset:
        lines.append(render(locale, "defaults.unset", options=", ".join(unset)))
    lines.append(render(locale, "defaults.results_dm" if mine.private else "defaults.results_here"))
    lines.append(render(locale, "defaults.change"))
    return "\n".join(lines)
