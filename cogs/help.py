"""The text of /video help: what each model takes, and what it costs on this server."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bot.engine import PROVIDER_OPTION
from bot.model_facts import ModelFacts, span
from bot.models import Mode
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
