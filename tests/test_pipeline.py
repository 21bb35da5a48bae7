"""One request pipeline: every entry point is quoted once, before any download, and charged
exactly the cost the member confirmed; a charged job is never reported as an error."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.engine import Engine, JobRequest
from bot.models import Mode, VideoOptions
from bot.providers import ProviderName
from tests.fakes.discord import FakeInteraction, FakeMessage
from tests.fakes.media import make_png
from tests.harness import Harness, harness
from tests.test_e2e import _prompt_values, make_it, mention_question, private_text, slash
from tests.test_moderation import admin, spent

NO_CREDITS = "no credits left"
COST = 3


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    """A running bot."""
    async with harness(tmp_path) as running:
        yield running


def pic(h: Harness, n: int = 0) -> dict[str, Any]:
    """A distinct PNG on the fake CDN."""
    return h.attachment(f"p{n}.png", make_png(320 + 2 * n, 240), "image/png")


async def mention(h: Harness, n: int) -> FakeMessage:
    """Mention the bot on a message with n pictures."""
    me = h.discord.bot_user
    pics = [pic(h, i) for i in range(n)]
    sent = await h.discord.user_message(
        h.guild, h.channel, h.alice, f"<@{me.id}> go", attachments=pics, mentions=[me]
    )
    await make_it(h, await mention_question(h))
    return sent


async def bot_reply(h: Harness, text: str) -> FakeMessage:
    """The bot's public reply containing `text`."""
    me = h.discord.bot_user.id
    return await h.discord.wait_for_message(
        lambda m: m.author_id == me and text in m.content, channel=h.channel
    )


async def menu(h: Harness, n: int) -> FakeInteraction:
    """Animate image on a message with n pictures; the modal submitted, the usual model taken."""
    source = await h.discord.user_message(
        h.guild, h.channel, h.bob, "look", attachments=[pic(h, i) for i in range(n)]
    )
    opened = await h.discord.context_menu(h.guild, h.channel, h.alice, "Animate image", source)
    await opened.wait_callback()
    submitted = await h.discord.submit_modal(opened, h.alice, _prompt_values(opened, "move"))
    return await make_it(h, await submitted.wait_response())


# --- issue 10 item 4: rules, credits and slots before any download ------------------------


async def test_member_without_credits_makes_the_bot_download_nothing(h: Harness) -> None:
    await admin(h, "quota set", member=h.alice, credits=0)
    assert NO_CREDITS in await private_text(await slash(h, "image", image=pic(h)))
    frames = await slash(h, "frames", first=pic(h, 1), last=pic(h, 2))
    assert NO_CREDITS in await private_text(frames)
    assert NO_CREDITS in await private_text(await menu(h, 2))
    await mention(h, 3)
    await bot_reply(h, NO_CREDITS)
    assert h.discord.cdn_downloads == [] and h.zai.requests == []


async def test_member_at_the_in_flight_limit_makes_the_bot_download_nothing(
    tmp_path: Path,
) -> None:
    async with harness(tmp_path, max_inflight_per_user=1) as h:
        await admin(h, "approval on", channel=h.guild.channel("mods"))
        first = await slash(h, "text", prompt="held for approval")
        assert "Accepted" in await private_text(first)
        second = await slash(h, "image", image=pic(h))
        assert "in progress" in await private_text(second)
        await mention(h, 1)
        await bot_reply(h, "in progress")
        assert h.discord.cdn_downloads == []


async def test_banned_member_makes_the_bot_download_nothing(h: Harness) -> None:
    await admin(h, "ban", member=h.alice, reason="spam")
    assert "not allowed" in await private_text(await slash(h, "image", image=pic(h)))
    assert h.discord.cdn_downloads == []


async def test_extend_without_credits_does_not_download_the_video(h: Harness) -> None:
    await admin(h, "quota set", member=h.alice, credits=1)
    await slash(h, "text", prompt="a wave")
    result = await h.result_for(h.alice)
    before = list(h.discord.cdn_downloads)
    extend = await h.discord.click(h.guild, h.channel, h.alice, result, "video:extend:1")
    assert NO_CREDITS in await private_text(extend)
    assert h.discord.cdn_downloads == before  # the mp4 was not fetched


async def test_extend_works_in_the_scratch_folder(h: Harness) -> None:
    await slash(h, "text", prompt="a wave")
    result = await h.result_for(h.alice)
    extend = await h.discord.click(h.guild, h.channel, h.alice, result, "video:extend:1")
    assert "Accepted as video #2" in await private_text(extend)
    assert any(name.endswith(".mp4") for name in h.discord.cdn_downloads)
    scratch = h.db_path.parent / "scratch"
    assert scratch.is_dir() and list(scratch.iterdir()) == []  # used, then cleaned


# --- every entry point: the cost confirmed is the cost charged ----------------------------


async def confirm(h: Harness, question_in: Callable[[], Awaitable[FakeMessage]]) -> None:
    """Wait for the cost question, check its figure, and agree."""
    question = await question_in()
    assert f"costs **{COST} credits**" in question.content
    await h.discord.click(h.guild, h.channel, h.alice, question, "cost:spend")


def asked(interaction: FakeInteraction) -> Callable[[], Awaitable[FakeMessage]]:
    """The cost question of an interaction."""
    return lambda: interaction.wait_response(lambda m: "costs **" in m.content)


async def delivered_first(h: Harness) -> FakeMessage:
    """A first video at cost 1, before the costs change; its result message."""
    await slash(h, "image", image=pic(h), prompt="first")
    return await h.result_for(h.alice)


async def via_slash(h: Harness) -> FakeInteraction | None:
    interaction = await slash(h, "image", image=pic(h), prompt="slash")
    await confirm(h, asked(interaction))
    return interaction


async def via_menu(h: Harness) -> FakeInteraction | None:
    interaction = await menu(h, 1)
    await confirm(h, asked(interaction))
    return interaction


async def via_mention(h: Harness) -> FakeInteraction | None:
    await mention(h, 1)
    await confirm(h, lambda: bot_reply(h, "costs **"))
    return None


async def via_button(h: Harness, action: str) -> FakeInteraction | None:
    first = h.first  # type: ignore[attr-defined]
    custom_id = f"video:{action}:1"
    interaction = await h.discord.click(h.guild, h.channel, h.alice, first, custom_id)
    await confirm(h, asked(interaction))
    return interaction


ENTRIES: dict[str, Callable[[Harness], Awaitable[FakeInteraction | None]]] = {
    "slash": via_slash,
    "menu": via_menu,
    "mention": via_mention,
    "reroll": lambda h: via_button(h, "reroll"),
    "extend": lambda h: via_button(h, "extend"),
}


async def charged(h: Harness, job_id: int) -> int:
    """Credits the ledger holds for one job (reserved minus refunded)."""
    row = await h.resources.db.fetchone(
        "SELECT -coalesce(sum(delta), 0) FROM credit_ledger WHERE job_id = ?", (job_id,)
    )
    return row[0]


@pytest.mark.parametrize("entry", list(ENTRIES))
async def test_the_cost_confirmed_is_the_cost_charged(h: Harness, entry: str) -> None:
    h.first = await delivered_first(h)  # type: ignore[attr-defined]
    await admin(h, "cost set", model="cogvideox-3", credits=COST)
    interaction = await ENTRIES[entry](h)
    if interaction is not None:
        assert "Accepted as video #2" in await private_text_matching(interaction, "Accepted")
    await h.result_for(h.alice, after=h.first.id)  # type: ignore[attr-defined]
    assert await charged(h, 2) == COST
    assert await spent(h) == 1 + COST


async def test_approval_charges_the_cost_confirmed_once(h: Harness) -> None:
    await admin(h, "cost set", model="cogvideox-3", credits=COST)
    await admin(h, "approval on", channel=h.guild.channel("mods"))
    interaction = await slash(h, "text", prompt="a kite")
    await confirm(h, asked(interaction))
    mods = h.guild.channel("mods")
    request = await h.discord.wait_for_message(
        lambda m: "Video request #1" in m.content, channel=mods
    )
    assert await charged(h, 1) == COST
    await h.discord.click(h.guild, mods, h.mod, request, "approval:approve:1")
    await h.result_for(h.alice)
    assert await charged(h, 1) == COST and await spent(h) == COST


@pytest.mark.parametrize("entry", ["slash", "menu", "mention"])
async def test_a_rule_on_a_default_value_charges_who_left_it_unset(h: Harness, entry: str) -> None:
    # cogvideox-3 makes `quality=speed` unless asked otherwise: the rule applies to it too.
    await admin(h, "cost set", model="cogvideox-3", credits=COST, option="quality", value="speed")
    interaction = await ENTRIES[entry](h)
    if interaction is not None:
        assert "Accepted as video #1" in await private_text_matching(interaction, "Accepted")
    await h.result_for(h.alice)
    assert h.zai.submits[0].get("quality", "speed") == "speed"
    assert await charged(h, 1) == COST and await spent(h) == COST


async def test_a_rule_on_a_default_value_spares_who_picked_another(h: Harness) -> None:
    await admin(h, "cost set", model="cogvideox-3", credits=COST, option="quality", value="speed")
    await slash(h, "text", prompt="a kite", quality="quality")
    await h.result_for(h.alice)
    assert await charged(h, 1) == 1


async def private_text_matching(interaction: FakeInteraction, text: str) -> str:
    """The private message of an interaction that contains `text`."""
    message = await interaction.wait_response(lambda m: text in m.content)
    assert message.ephemeral, message.content
    return message.content


# --- a charged job is never reported as an error ------------------------------------------


@pytest.mark.parametrize("entry", ["slash", "menu", "reroll", "extend"])
async def test_a_charged_job_is_not_reported_as_an_error(h: Harness, entry: str) -> None:
    first = await delivered_first(h)
    h.discord.set_permissions(h.channel, send=False)  # the status message cannot be posted
    if entry == "slash":
        interaction = await slash(h, "text", prompt="again")
    elif entry == "menu":
        interaction = await menu(h, 1)
    else:
        interaction = await h.discord.click(h.guild, h.channel, h.alice, first, f"video:{entry}:1")
    answer = await private_text_matching(interaction, "video #2")
    assert "Accepted as video #2" in answer and "went wrong" not in answer
    assert await charged(h, 2) == 1
    texts = [m.content for m in h.discord.messages(h.channel) if m.ephemeral]
    assert not any("went wrong" in t for t in texts), texts


def test_the_priced_options_are_the_defaults_at_the_provider_under_the_members() -> None:
    def request(model: str, **options: Any) -> JobRequest:
        return JobRequest(1, 2, 3, model, Mode.TEXT, "a kite", VideoOptions(**options))

    zai = Engine._effective_options(request("cogvideox-3", fps=60), ProviderName.ZAI)
    assert zai == {"quality": "speed", "audio": False, "duration": 5, "fps": 60}
    vidu = Engine._effective_options(request("viduq1-text"), ProviderName.ZAI)
    assert vidu["style"] == "general" and vidu["size"] == "1920x1080"
    gateway = Engine._effective_options(request("viduq3t-720p"), ProviderName.GATEWAY)
    assert gateway == {"duration": 5}
