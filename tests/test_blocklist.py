"""Issue 10 items 1-2: blocklist matching is bounded in time, off the loop, on a skeleton."""

from __future__ import annotations

import asyncio

import pytest

from bot import models
from bot.errors import InputError, NotAllowedError
from bot.policy import MAX_ENTRIES, Policy
from storage.db import Database
from storage.moderation import ModerationStore

GUILD, CHANNEL, USER = 1, 2, 3


@pytest.fixture
def policy(db: Database) -> Policy:
    return Policy(ModerationStore(db))


async def check(policy: Policy, prompt: str) -> None:
    await policy.check(GUILD, CHANNEL, USER, "cogvideox-3", models.clean_prompt(prompt))


async def ticking_while(coro) -> tuple[int, BaseException | None]:
    """Run `coro` while another coroutine counts loop turns; (turns, what it raised)."""
    turns = 0
    done = asyncio.Event()

    async def tick() -> None:
        nonlocal turns
        while not done.is_set():
            turns += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(tick())
    try:
        await coro
        raised = None
    except Exception as exc:
        raised = exc
    done.set()
    await ticker
    return turns, raised


async def test_the_reported_regex_is_decided_and_the_loop_keeps_running(policy: Policy) -> None:
    # Stored directly: the entry that froze the bot (Python's `re` backtracks 2^40 times).
    await policy.store.add_block(GUILD, r"(\w+\s?)+$", True, 9)
    turns, raised = await ticking_while(check(policy, "a" * 40 + "!"))
    assert raised is None and turns > 0  # decided (no match) off the loop


async def test_an_undecidable_regex_refuses_the_prompt_and_tells_moderators_once(
    policy: Policy,
) -> None:
    alerts: list[tuple[int, str]] = []

    async def alert(guild_id: int, text: str) -> None:
        alerts.append((guild_id, text))

    policy.alert = alert
    await policy.store.add_block(GUILD, r"(a|aa)+$", True, 9)  # the regex engine backtracks
    for _ in range(2):
        turns, raised = await ticking_while(check(policy, "a" * 60 + "!"))
        assert isinstance(raised, NotAllowedError) and "in time" in raised.user_message
        assert turns > 0
    assert len(alerts) == 1 and "(a|aa)+$" in alerts[0][1].params["pattern"]
    audit = [
        e for e in await policy.store.recent_audit(GUILD, 50) if e.action == "blocklist.timeout"
    ]
    assert len(audit) == 1
    await check(policy, "a harmless prompt")  # decided in time: allowed


@pytest.mark.parametrize("pattern", [r"(a|aa)+$", r"^(\w|\w\w)+$", r"(?:a|a)+$"])
async def test_slow_regexes_are_refused_when_added(policy: Policy, pattern: str) -> None:
    with pytest.raises(InputError, match="too long to check"):
        await policy.add_block(GUILD, pattern, True, 9)
    assert await policy.store.blocklist(GUILD) == []


async def test_entries_and_lengths_are_capped(policy: Policy) -> None:
    with pytest.raises(InputError, match="under 200"):
        await policy.add_block(GUILD, "x" * 201, False, 9)
    for n in range(MAX_ENTRIES):
        await policy.add_block(GUILD, f"word{n}", False, 9)
    with pytest.raises(InputError, match="full"):
        await policy.add_block(GUILD, "one more", False, 9)
    assert len(await policy.store.blocklist(GUILD)) == MAX_ENTRIES


BYPASSES = [
    "nu\u034fde",  # combining grapheme joiner
    "nu\ufe0fde",  # variation selector 16
    "nu\U000e0100de",  # variation selector 17 (supplement)
    "ｎｕｄｅ",  # fullwidth
    "nud\u0435",  # Cyrillic е
    "NU\u200bDE",  # zero-width space, upper case
    "\u039dUDE",  # Greek capital Nu
]


@pytest.mark.parametrize("prompt", BYPASSES)
@pytest.mark.parametrize("is_regex", [False, True])
async def test_invisible_and_look_alike_characters_do_not_bypass(
    policy: Policy, prompt: str, is_regex: bool
) -> None:
    await policy.add_block(GUILD, "nude" if not is_regex else r"\bnu+de\b", is_regex, 9)
    with pytest.raises(NotAllowedError, match="do not allow"):
        await check(policy, f"a {prompt} statue")
    await check(policy, "a nudibranch in the sea")  # whole words only


def test_the_prompt_is_sent_as_typed_minus_invisible_characters() -> None:
    typed = "Ｃafé nu\u034fde\ufe0f \U000e0100пример 👨\u200d👩\u200d👧"
    assert models.clean_prompt(typed) == "Ｃafé nude пример 👨👩👧"


@pytest.fixture
async def h(tmp_path):
    """A running bot (fake Discord and Z.AI)."""
    from tests.harness import harness

    async with harness(tmp_path) as running:
        yield running


async def test_through_the_bot_an_undecided_prompt_is_refused_and_the_alert_posted_once(
    h,
) -> None:
    from tests.test_moderation import admin, ask, spent

    await admin(h, "alerts", channel=h.guild.channel("mods"))
    # Stored as an older version would have (add now refuses it).
    await h.resources.engine.moderation.add_block(h.guild.id, r"(a|aa)+$", True, h.mod.id)
    for member in (h.alice, h.bob):
        assert "in time" in await ask(h, member, prompt="a" * 60 + "!")
    alerts = [m for m in h.discord.messages(h.guild.channel("mods")) if "(a|aa)+$" in m.content]
    assert len(alerts) == 1
    assert h.zai.requests == [] and await spent(h) == 0
    assert "Blocked regex" in await admin(h, "blocklist add", pattern=r"\bnu+de\b", regex=True)
    assert "too long to check" in await admin(h, "blocklist add", pattern=r"(b|bb)+$", regex=True)
