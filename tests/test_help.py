"""/video help (issue 12): per model what it takes, this server's models and costs, privately,
in messages that fit Discord's 2000 characters; refusals and an empty /jobs point to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot import models
from bot.model_facts import facts, span
from bot.providers import ProviderName
from cogs.help import pages
from tests.fakes.discord import FakeMessage
from tests.harness import Harness, harness
from tests.test_e2e import private_text, slash
from tests.test_moderation import admin


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    """A running bot (Z.AI only)."""
    async with harness(tmp_path) as running:
        yield running


async def help_messages(h: Harness) -> list[FakeMessage]:
    """Every private message /video help sent, once its last (the costs) arrived."""
    interaction = await slash(h, "help")
    await interaction.wait_response(lambda m: "On this server" in m.content)
    return [m for m in interaction.responses if not m.deleted and not m.loading]


async def test_help_describes_every_model_privately_within_discord_limits(h: Harness) -> None:
    messages = await help_messages(h)
    assert messages and all(m.ephemeral and len(m.content) <= 2000 for m in messages)
    text = "\n".join(m.content for m in messages)
    for model in models.MODELS:
        assert f"**{model}**" in text
    assert "5, 10 s · size 1280x720" in text  # cogvideox-3's durations and sizes
    assert "**vidu2-reference** (Z.AI) · reference" in text
    assert "reference: 1–3 pictures" in text and "at least 128×128" in text
    assert "typically 1 min 30 s" in text  # cogvideox-3's prior until times are learned
    assert "• cogvideox-3: 1" in text
    assert h.zai.submits == []


async def test_help_shows_this_servers_costs_and_models_turned_off(h: Harness) -> None:
    await admin(h, "cost set", model="cogvideox-3", credits=3, option="quality", value="speed")
    await admin(h, "cost set", model="viduq1-text", credits=2)
    await admin(h, "models disable", model="vidu2-image")
    text = "\n".join(m.content for m in await help_messages(h))
    costs = text[text.index("On this server") :]
    # speed is cogvideox-3's default: a member who sets nothing pays the rule's 3.
    assert "• cogvideox-3: 3 (quality=speed: 3)" in costs
    assert "• viduq1-text: 2" in costs
    assert "• vidu2-image" not in costs and "Turned off here: vidu2-image." in costs


async def test_a_refused_option_and_an_empty_jobs_point_to_help(h: Harness) -> None:
    refusal = await private_text(
        await slash(h, "text", prompt="a kite", model="viduq1-text", fps=60)
    )
    assert "`/video help`" in refusal and h.zai.submits == []
    jobs = await h.discord.slash(h.guild, h.channel, h.alice, "jobs")
    assert "`/video help`" in await private_text(jobs)


def test_facts_of_a_gateway_model_come_from_the_catalog() -> None:
    vidu = facts("viduq3t-720p", ProviderName.GATEWAY)
    assert span(vidu.durations) == "1–16" and vidu.resolution == "720p" and vidu.audio
    assert vidu.sizes == () and vidu.defaults == {"duration": 5}


def test_pages_never_exceed_the_limit_and_keep_blocks_whole() -> None:
    blocks = [f"block {n} " + "x" * 700 for n in range(7)]
    out = pages(blocks)
    assert all(len(p) <= 2000 for p in out) and len(out) == 4
    assert "\n".join(out) == "\n".join(blocks)
