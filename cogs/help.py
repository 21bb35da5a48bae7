"""The text of /video help: what each model takes, and what it costs on this server."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from discord import app_commands

from bot.defaults import NAMES, OPTION_NAMES, MemberDefaults
from bot.engine import PROVIDER_OPTION
from bot.model_facts import ModelFacts, span
from bot.models import VIDEO_MODES, Mode
from bot.policy import cost_of
from cogs.common import PROVIDER_LABELS, duration_text
from storage.moderation import CostRule

MESSAGE_MAX = 2000


def model_block(facts: ModelFacts, seconds: float) -> str:
    """A model's modes, durations, sizes, audio, pictures and typical time, in a few lines."""
    sizes = span(facts.sizes) if facts.sizes else (facts.resolution or "set by the model")
    audio = "yes" if facts.audio else "no"
    lines = [
        f"**{facts.name}** ({PROVIDER_LABELS.get(facts.provider, facts.provider)}) · "
        + ", ".join(m.value for m in facts.modes),
        f"  {span(facts.durations)} s · size {sizes} · audio {audio} · "
        f"typically {duration_text(seconds)}",
    ]
    if any(m is not Mode.TEXT for m in facts.modes):
        lines.append(f"  pictures: {facts.pictures}")
    return "\n".join(lines)


def costs_block(
    facts: Sequence[ModelFacts], enabled: Mapping[str, bool], rules: list[CostRule]
) -> str:
    """This server's enabled models and their costs (as made with the defaults, and per rule)."""
    lines = ["**On this server** (credits per video; options left unset count at their default)"]
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
        lines.append(f"Turned off here: {', '.join(off)}.")
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

DEFAULTS_HELP = {
    "text": "Your model for /video text",
    "image": "Your model for /video image, and one picture in Animate image or a mention",
    "frames": "Your model for /video frames, and two pictures as first and last frames",
    "reference": "Your model for /video reference",
    "quality": "Your quality, used where the model takes it",
    "audio": "Add AI sound by default, where the model can",
    "size": "Your size, used where the model takes it",
    "duration": "Your length in seconds, used where the model takes it",
    "fps": "Your frame rate, used where the model takes it",
    "private": "Send your videos to you by direct message unless a command says otherwise",
    "reset": "Forget one default, or all of them (the models' own apply again)",
}
RESET_NAMES = {
    "text": "model for text",
    "image": "model for image",
    "frames": "model for frames",
    "reference": "model for reference",
}
RESET_CHOICES = [app_commands.Choice(name="all of them", value="all")] + [
    app_commands.Choice(name=RESET_NAMES.get(name, name), value=name) for name in NAMES
]


def _shown(value: Any) -> str:
    """A default's value as members read it."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def value_label(label: str, modes: Sequence[Mode], own: bool) -> str:
    """An autocomplete choice of /video defaults: the value, where it would be used, if yours."""
    where = ", ".join(m.value for m in modes) or "none of your models"
    return f"{label} · {where}" + (" (yours)" if own else "")


def defaults_block(mine: MemberDefaults, used: Mapping[str, Sequence[Mode]]) -> str:
    """A member's defaults: the model per mode, each option set and where it is used, privacy."""
    models = " · ".join(
        f"{mode.value} **{mine.model_for(mode)}**" + ("" if mine.own_model(mode) else " (usual)")
        for mode in VIDEO_MODES
    )
    lines = [
        "**Your defaults on this server** (what you type in a command wins; what is not set "
        "here is the model's own default)",
        f"Models: {models}",
    ]
    for option, value in mine.options().items():
        where = ", ".join(m.value for m in used.get(option, ()))
        use = f"used in {where}" if where else "fits none of your models now, so it is not used"
        lines.append(f"• {option}: `{_shown(value)}` ({use})")
    unset = [o for o in OPTION_NAMES if o not in mine.options()]
    if unset:
        lines.append(f"Not set (each model's own): {', '.join(unset)}")
    where = "sent to you by direct message" if mine.private else "posted in the channel"
    lines.append(f"Results: {where}.")
    lines.append("Change them with `/video defaults`; forget one with its `reset` option.")
    return "\n".join(lines)
