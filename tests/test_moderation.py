"""Quotas and moderation: through the loopback Discord where members see it, the store for sums."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.errors import InputError
from bot.policy import cost_of, validate_block
from storage.credits import day_key
from storage.db import Database
from storage.jobs import JobStore
from storage.moderation import CostRule, ModerationStore
from tests.fakes.discord import FakeInteraction, FakeUser
from tests.fakes.zai import Fault
from tests.harness import Harness, harness
from tests.test_storage import new_job
from tests.util import eventually


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    """A running bot."""
    async with harness(tmp_path) as running:
        yield running


async def admin(h: Harness, path: str, user: FakeUser | None = None, **options: Any) -> str:
    """Run `/videoadmin <group> <sub>` (or `/videoadmin <sub>`) and return the private answer."""
    words = path.split()
    group, sub = (words[0], words[1]) if len(words) == 2 else (None, words[0])
    interaction = await h.discord.slash(
        h.guild,
        h.channel,
        user or h.mod,
        "videoadmin",
        group=group,
        subcommand=sub,
        options=options,
    )
    return await answer(interaction)


async def answer(interaction: FakeInteraction) -> str:
    """The private answer of an interaction."""
    message = await interaction.wait_response()
    assert message.ephemeral, message.content
    return message.content + "".join(str(e) for e in message.embeds)


async def ask(
    h: Harness, user: FakeUser | None = None, prompt: str = "a cat", **options: Any
) -> str:
    """Run /video text and return the private answer."""
    options = {"prompt": prompt, **options}
    interaction = await h.discord.slash(
        h.guild, h.channel, user or h.alice, "video", subcommand="text", options=options
    )
    return await answer(interaction)


async def spent(h: Harness) -> int:
    """Credits reserved and not refunded, from the ledger."""
    row = await h.resources.db.fetchone(
        "SELECT coalesce(sum(delta), 0) FROM credit_ledger WHERE reason IN ('reserve', 'refund')"
    )
    return -row[0]


ADMIN_COMMANDS = [
    ("quota set", {"member": "bob", "credits": 3}),
    ("quota grant", {"member": "bob", "credits": 3}),
    ("quota reset", {"member": "bob"}),
    ("quota default", {"credits": 3}),
    ("cost set", {"model": "cogvideox-3", "credits": 2}),
    ("cost list", {}),
    ("cap set", {"credits": 1}),
    ("ban", {"member": "bob", "reason": "x"}),
    ("unban", {"member": "bob"}),
    ("blocklist add", {"pattern": "x"}),
    ("blocklist remove", {"pattern": "x"}),
    ("blocklist list", {}),
    ("approval on", {"channel": "mods"}),
    ("approval off", {}),
    ("approval expiry", {"hours": 12}),
    ("approval pending", {}),
    ("channels allow", {"channel": "mods"}),
    ("channels deny", {"channel": "mods"}),
    ("channels list", {}),
    ("models enable", {"model": "cogvideox-3"}),
    ("models disable", {"model": "cogvideox-3"}),
    ("models list", {}),
    ("stats", {}),
    ("audit", {}),
    ("alerts", {"channel": "mods"}),
]


async def test_non_moderators_cannot_run_any_admin_command(h: Harness) -> None:
    [command] = [c for c in h.discord.commands() if c["name"] == "videoadmin"]
    assert command["default_member_permissions"] == "32"  # Manage Server: hidden from members
    h.discord.visibility_overrides.add("videoadmin")  # a server owner showed it to everyone
    for path, options in ADMIN_COMMANDS:
        resolved = {k: resolve(h, v) for k, v in options.items()}
        text = await admin(h, path, h.alice, **resolved)
        assert "Manage Server" in text, (path, text)
    assert await h.resources.db.fetchall("SELECT * FROM audit_log") == []
    assert await h.resources.db.fetchall("SELECT * FROM bans") == []


def resolve(h: Harness, value: Any) -> Any:
    """Turn 'bob' / 'mods' into the fake's user or channel."""
    if value == "bob":
        return h.bob
    if value == "mods":
        return h.guild.channel("mods")
    return value


async def test_every_admin_command_works_for_moderators_and_is_audited(h: Harness) -> None:
    for path, options in ADMIN_COMMANDS:
        resolved = {k: resolve(h, v) for k, v in options.items()}
        text = await admin(h, path, **resolved)
        assert "Manage Server" not in text, (path, text)
    actions = {r[0] for r in await h.resources.db.fetchall("SELECT action FROM audit_log")}
    assert {
        "quota.set",
        "ban",
        "unban",
        "blocklist.add",
        "approval.on",
        "models.disable",
    } <= actions


REFUSALS = [
    ("ban", {"member": "alice", "reason": "spamming"}, {}, "Reason: spamming"),
    ("blocklist add", {"pattern": "forbidden"}, {"prompt": "a FORBIDDEN cat"}, "do not allow"),
    (
        "blocklist add",
        {"pattern": r"c[a@]t+", "regex": True},
        {"prompt": "a c@ttt"},
        "do not allow",
    ),
    ("channels deny", {"channel": "general"}, {}, "cannot be made in this channel"),
    ("channels allow", {"channel": "mods"}, {}, "Use <#"),
    ("models disable", {"model": "cogvideox-3"}, {}, "turned off"),
    ("cap set", {"credits": 0}, {}, "This server has used all"),
    ("quota set", {"member": "alice", "credits": 0}, {}, "no credits left"),
]


@pytest.mark.parametrize(("path", "setup", "request_options", "words"), REFUSALS)
async def test_rules_refuse_without_submit_or_credit(
    h: Harness, path: str, setup: dict[str, Any], request_options: dict[str, Any], words: str
) -> None:
    resolved = {
        k: h.alice if v == "alice" else h.guild.channel(v) if v in ("general", "mods") else v
        for k, v in setup.items()
    }
    await admin(h, path, **resolved)
    text = await ask(h, **request_options)
    assert words in text, text
    assert h.zai.requests == [] and await spent(h) == 0
    assert h.bot_messages() == []
    refusals = await h.resources.db.fetchall(
        "SELECT action FROM audit_log WHERE action = 'refused'"
    )
    assert len(refusals) == 1


async def test_bad_regex_is_refused_when_added(h: Harness) -> None:
    text = await admin(h, "blocklist add", pattern="(unclosed", regex=True)
    assert "not a valid regular expression" in text
    assert await h.resources.db.fetchall("SELECT * FROM blocklist") == []


async def test_banned_member_existing_jobs_are_unaffected(h: Harness) -> None:
    h.zai.hold_all = True
    await ask(h)
    await eventually(lambda: h.zai.processing(), what="job at the provider")
    await admin(h, "ban", member=h.alice, reason="enough")
    h.zai.hold_all = False
    h.zai.finish_all()
    await h.result_for(h.alice)


async def test_approve_path(h: Harness) -> None:
    await admin(h, "approval on", channel=h.guild.channel("mods"))
    await ask(h, prompt="a kite")
    request = await h.discord.wait_for_message(
        lambda m: "Video request #1" in m.content, channel=h.guild.channel("mods")
    )
    status = next(m for m in h.bot_messages() if "video #1" in m.content)
    assert "waiting for a moderator" in status.content and h.zai.requests == []
    assert await spent(h) == 1  # reserved at request time
    denied = await h.discord.click(
        h.guild, h.guild.channel("mods"), h.alice, request, "approval:approve:1"
    )
    assert "Manage Server" in await answer(denied)
    await h.discord.click(h.guild, h.guild.channel("mods"), h.mod, request, "approval:approve:1")
    await h.result_for(h.alice)
    assert "Approved by" in request.content


async def test_reject_path_after_restart_refunds(h: Harness) -> None:
    await admin(h, "approval on", channel=h.guild.channel("mods"))
    await ask(h, prompt="a storm", model="viduq1-text")
    request = await h.discord.wait_for_message(
        lambda m: "Video request #1" in m.content, channel=h.guild.channel("mods")
    )
    await h.restart()
    click = await h.discord.click(
        h.guild, h.guild.channel("mods"), h.mod, request, "approval:reject:1"
    )
    await click.wait_callback()
    submitted = await h.discord.submit_modal(
        click, h.mod, {click.modal["components"][0]["components"][0]["custom_id"]: "not here"}
    )
    assert "rejected" in await answer(submitted)
    status = next(m for m in h.bot_messages() if "video #1" in m.content)
    await eventually(
        lambda: "Rejected by a moderator: not here" in status.content,
        what="status shows the reason",
    )
    assert await spent(h) == 0 and h.zai.requests == []
    assert "Rejected by" in request.content


async def test_pending_request_is_posted_after_a_crash_before_asking(h: Harness) -> None:
    await admin(h, "approval on", channel=h.guild.channel("mods"))
    engine = h.resources.engine
    engine.listener = None  # as if the process died before the moderators were asked
    job = await engine.accept(await engine.quote(_text_request(h)))
    assert job.state == "pending_approval"
    await h.restart()
    mods = h.guild.channel("mods")
    await h.discord.wait_for_message(
        lambda m: f"Video request #{job.id}" in m.content, channel=mods
    )


def _text_request(h: Harness) -> Any:
    """An engine request as the front end would make it."""
    from bot.engine import JobRequest
    from bot.models import Mode

    return JobRequest(h.guild.id, h.channel.id, h.bob.id, "cogvideox-3", Mode.TEXT, "a tree")


async def test_cost_above_one_is_confirmed_before_spending(h: Harness) -> None:
    await admin(h, "cost set", model="cogvideox-3", credits=3, option="size", value="3840x2160")
    interaction = await h.discord.slash(
        h.guild,
        h.channel,
        h.alice,
        "video",
        subcommand="text",
        options={"prompt": "4k", "size": "3840x2160"},
    )
    question = await interaction.wait_response(lambda m: "costs **3 credits**" in m.content)
    assert await spent(h) == 0 and h.zai.requests == []
    await h.discord.click(h.guild, h.channel, h.alice, question, "cost:spend")
    await interaction.wait_response(lambda m: "Accepted" in m.content)
    await h.result_for(h.alice)
    assert await spent(h) == 3
    cheap = await ask(h, prompt="small")  # 1 credit: no question
    assert "Accepted" in cheap


async def test_cancelled_cost_spends_nothing(h: Harness) -> None:
    await admin(h, "cost set", model="cogvideox-3", credits=2)
    interaction = await h.discord.slash(
        h.guild, h.channel, h.alice, "video", subcommand="text", options={"prompt": "x"}
    )
    question = await interaction.wait_response(lambda m: "costs **2 credits**" in m.content)
    await h.discord.click(h.guild, h.channel, h.alice, question, "cost:cancel")
    await eventually(lambda: "nothing was charged" in question.content)
    assert await spent(h) == 0 and h.zai.requests == []


async def test_guild_cap_counts_every_member(h: Harness) -> None:
    await admin(h, "cap set", credits=2)
    assert "Accepted" in await ask(h, h.alice)
    assert "Accepted" in await ask(h, h.bob)
    assert "This server has used all" in await ask(h, h.alice, prompt="third")
    assert len(h.zai.submits) <= 2


async def test_quota_shows_reset_and_grants(h: Harness) -> None:
    await admin(h, "quota default", credits=2)
    await admin(h, "quota grant", member=h.alice, credits=3)
    quota = await h.discord.slash(h.guild, h.channel, h.alice, "quota")
    text = await answer(quota)
    assert "**5** of 5" in text and "<t:" in text


async def test_balance_exhausted_stops_submitting_and_tells_moderators_once(h: Harness) -> None:
    await admin(h, "alerts", channel=h.guild.channel("mods"))
    h.zai.script("submit", Fault.http(429, code="1113", message="insufficient balance"))
    await ask(h)
    status = next(m for m in h.bot_messages() if "video #1" in m.content)
    await eventually(lambda: "refunded" in status.content, what="requester told")
    text = await ask(h, h.bob)
    assert "cannot take new work" in text
    alerts = [
        m for m in h.discord.messages(h.guild.channel("mods")) if "refused new work" in m.content
    ]
    assert len(alerts) == 1
    assert len(h.zai.submits) == 0 and await spent(h) == 0


async def test_content_filter_refusals_show_in_stats(h: Harness) -> None:
    await ask(h, prompt="BLOCKME please")
    await eventually(
        lambda: h.resources.db.fetchone("SELECT count(*) FROM jobs WHERE state = 'refused'"),
        what="refusal",
    )
    await eventually(_refused_count(h), what="refused job")
    text = await admin(h, "stats")
    assert "1 content-filter refusals" in text


def _refused_count(h: Harness) -> Any:
    """A condition: one job refused by the content filter."""

    async def check() -> bool:
        row = await h.resources.db.fetchone("SELECT count(*) FROM jobs WHERE state = 'refused'")
        return row[0] == 1

    return check


# --- the arithmetic, directly against the store ---------------------------------------------


def test_cost_rules_take_the_highest_match() -> None:
    rules = [
        CostRule("cogvideox-3", "", "", 2),
        CostRule("cogvideox-3", "size", "3840x2160", 4),
        CostRule("cogvideox-3", "duration", "10", 3),
    ]
    assert cost_of(rules, "cogvideox-3", {}) == 2
    assert cost_of(rules, "cogvideox-3", {"size": "3840x2160", "duration": 10}) == 4
    assert cost_of(rules, "cogvideox-3", {"duration": 10}) == 3
    assert cost_of(rules, "viduq1-text", {"duration": 10}) == 1


@pytest.mark.parametrize("pattern", ["(", "[a-", "*x", "a{2,1}"])
def test_bad_regexes_are_refused(pattern: str) -> None:
    with pytest.raises(InputError):
        validate_block(pattern, True)


async def test_ledger_always_matches_balances(db: Database) -> None:
    """Random reservations, refunds, grants and resets: sum(ledger) == granted - used, never negative."""
    store, moderation = JobStore(db), ModerationStore(db)
    rng = random.Random(7)
    jobs: list[int] = []

    async def step() -> None:
        user = rng.choice([1, 2, 3])
        action = rng.random()
        if action < 0.5:
            try:
                job = await store.create(
                    new_job(user=user, cost=rng.choice([1, 2])),
                    (),
                    allowance=5,
                    max_inflight=100,
                    guild_cap=40,
                )
                jobs.append(job.id)
            except Exception:  # refusals are part of the workload
                pass
        elif action < 0.75 and jobs:
            await store.end(rng.choice(jobs), "failed", "x", "y", refund=True)
        elif action < 0.9:
            await moderation.grant(1000, user, rng.choice([1, 2]), 9, "grant")
        else:
            await moderation.reset(1000, user, 9)

    for _ in range(20):
        await asyncio.gather(*(step() for _ in range(20)))
    day = day_key(time.time())
    for user in (1, 2, 3):
        usage = await db.fetchone(
            "SELECT used, granted FROM credit_usage WHERE user_id = ? AND day = ?", (user, day)
        )
        ledger = await db.fetchone(
            "SELECT coalesce(sum(delta), 0) FROM credit_ledger WHERE user_id = ?", (user,)
        )
        assert usage[0] >= 0 and ledger[0] == usage[1] - usage[0]
    guild = await db.fetchone("SELECT used FROM guild_usage WHERE guild_id = 1000")
    users = await db.fetchone("SELECT sum(used) FROM credit_usage WHERE guild_id = 1000")
    assert 0 <= guild[0] == users[0] <= 40
