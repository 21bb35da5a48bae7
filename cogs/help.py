"""The text of /video help: what each model takes, and what it costs on this server."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bot.engine import PROVIDER_OPTION
from bot.i18n import Msg, render
from bot.model_facts import ModelFacts, span
from bot.models import Mode
from bot.policy import cost_of
from cogs.common import duration_text, provider_name
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
