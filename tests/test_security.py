"""Security: secrets stay in the process, the database is private, permissions are checked when
used, paid buttons belong to their requester, SQL is parameterised, prompts cannot break limits.
"""

from __future__ import annotations

import ast
import json
import os
import re
import secrets
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

import storage.sql
from storage.db import Database
from storage.moderation import ModerationStore
from tests.fakes.discord import FakeDiscord, FakeGuild, FakeInteraction, Perm
from tests.fakes.zai import FakeZai, Fault
from tests.harness import Harness, harness
from tests.procs import bot_env, query, start_bot
from tests.util import eventually

ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- secrets


@pytest.fixture
async def secret_world(tmp_path: Path) -> AsyncIterator[tuple[FakeDiscord, FakeZai, FakeGuild]]:
    """Fakes whose token and key are long, random and easy to grep for."""
    token = f"MTA-discord-token.{secrets.token_urlsafe(24)}.SECRETSECRET"
    key = f"zai-key-{secrets.token_hex(16)}.SECRETSECRET"
    async with FakeDiscord(token=token) as fake_discord, FakeZai(api_key=key) as fake_zai:
        alice = fake_discord.add_user("alice")
        guild = fake_discord.add_guild(name="Sec", channels=["general"], members=[alice])
        yield fake_discord, fake_zai, guild


async def _video(fake: FakeDiscord, guild: FakeGuild, prompt: str) -> None:
    """alice asks for a text video."""
    alice = next(m.user for m in guild.members.values() if m.user.username == "alice")
    await fake.slash(
        guild, guild.channel("general"), alice, "video", subcommand="text",
        options={"prompt": prompt},
    )  # fmt: skip


async def _until_ended(db_path: Path, count: int) -> None:
    """Wait until `count` jobs reached a final state."""
    sql = (
        "SELECT count(*) FROM jobs WHERE state IN ('delivered','failed','refused','undeliverable')"
    )
    await eventually(lambda: query(db_path, sql)[0][0] >= count, timeout=30, what="jobs to end")


async def _jobs_that_echo_the_key(
    fake_discord: FakeDiscord, fake_zai: FakeZai, guild: FakeGuild, db_path: Path
) -> None:
    """A clean job, a failed one, and provider answers that quote the key back at us."""
    key = fake_zai.api_key
    await _video(fake_discord, guild, "a harbour at dawn")
    await _until_ended(db_path, 1)
    fake_zai.script("submit", Fault.http(500, "500", f"upstream refused 'Bearer {key}'"))
    await _video(fake_discord, guild, "retried after an error that quotes the key")
    await _until_ended(db_path, 2)
    fake_zai.hold_all = True
    await _video(fake_discord, guild, "fails with a message that quotes the key")
    [task] = await eventually(fake_zai.processing, what="the held task")
    fake_zai.fail_task(task.id, f"invalid credentials {key} for this model")
    await _until_ended(db_path, 3)
    fake_zai.script("submit", Fault.http(401, "1001", f"key {key} was revoked"))
    await _video(fake_discord, guild, "refused with the key quoted")
    await _until_ended(db_path, 4)


def _everything_discord_received(fake: FakeDiscord) -> str:
    """Every message (any channel, DMs, ephemerals, edits) and callback, as one text."""
    seen = [
        m.payload() for c in list(fake.channels) for m in fake.messages(c, include_deleted=True)
    ]
    edits = [e.payload for c in list(fake.channels) for m in fake.messages(c) for e in m.edits]
    callbacks = [c.payload for c in fake.callbacks]
    return json.dumps([seen, edits, callbacks], ensure_ascii=False)


def _database_bytes(db_path: Path) -> bytes:
    """The database file and its WAL and shared-memory files, as they are on disk."""
    parts = [
        db_path,
        db_path.with_name(db_path.name + "-wal"),
        db_path.with_name(db_path.name + "-shm"),
    ]
    return b"".join(p.read_bytes() for p in parts if p.exists())


def _fragments(secret: str) -> list[str]:
    """The secret and a distinctive inner piece of it (catches truncated leaks)."""
    return [secret, secret[8:24]]


async def test_tokens_and_keys_never_leave_the_process(
    tmp_path: Path, secret_world: tuple[FakeDiscord, FakeZai, FakeGuild]
) -> None:
    fake_discord, fake_zai, guild = secret_world
    db_path = tmp_path / "data" / "bot.db"
    env = bot_env(fake_discord, fake_zai, db_path, LOG_LEVEL="DEBUG")  # the chattiest logs
    (tmp_path / "cwd").mkdir()
    bot = await start_bot(fake_discord, env, tmp_path / "cwd", tmp_path / "bot.log")
    try:
        await _jobs_that_echo_the_key(fake_discord, fake_zai, guild, db_path)
        live_db = _database_bytes(db_path)  # WAL included, before the checkpoint at close
    finally:
        assert await bot.stop() == 0
    places = {
        "log": bot.log().encode(),
        "database (live)": live_db,
        "database (closed)": _database_bytes(db_path),
        "discord": _everything_discord_received(fake_discord).encode(),
    }
    for secret in (fake_discord.token, fake_zai.api_key):
        for fragment in _fragments(secret):
            leaks = [where for where, data in places.items() if fragment.encode() in data]
            assert leaks == [], f"{fragment[:6]}… found in {leaks}"
    # The paths that quote the key really ran, and their text was kept, scrubbed:
    assert b"job 4" in places["log"] and b"[redacted]" in places["database (closed)"]
    # Shown inert (issue 10 item 6): the brackets are escaped, which Discord displays as typed.
    assert "invalid credentials \\\\[redacted\\\\]" in places["discord"].decode()


# --------------------------------------------------------------------------- the database file


async def test_database_file_is_created_readable_by_its_owner_only(tmp_path: Path) -> None:
    old = os.umask(0)  # even a careless umask must not widen it
    try:
        db = await Database.open(tmp_path / "data" / "bot.db")
        await db.execute(storage.sql.UPSERT_META, ("k", "v"))  # make SQLite write its WAL
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "data").iterdir()}
        await db.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    assert modes == {"bot.db": 0o600, "bot.db-wal": 0o600, "bot.db-shm": 0o600}


# --------------------------------------------------------------------------- permissions


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    """A running bot."""
    async with harness(tmp_path) as running:
        yield running


async def _private(interaction: FakeInteraction) -> str:
    """The interaction's private answer."""
    message = await interaction.wait_response()
    assert message.ephemeral, message.content
    return message.content


async def test_moderator_permission_is_checked_at_every_use(h: Harness) -> None:
    """Revoking Manage Server takes effect at the next command, even if Discord still shows it."""
    stats = await h.discord.slash(h.guild, h.channel, h.mod, "videoadmin", subcommand="stats")
    assert "Manage Server" not in await _private(stats)
    [role] = [r for r in h.guild.roles.values() if r.name == "mod-role"]
    role.permissions &= ~int(Perm.MANAGE_GUILD)
    h.discord.visibility_overrides.add("videoadmin")  # the owner opened it to everyone
    again = await h.discord.slash(h.guild, h.channel, h.mod, "videoadmin", subcommand="stats")
    assert "Manage Server" in await _private(again)


async def test_members_cannot_press_each_others_paid_buttons(h: Harness) -> None:
    await h.discord.slash(
        h.guild, h.channel, h.alice, "video", subcommand="text", options={"prompt": "a fox"}
    )
    result = await h.result_for(h.alice)
    assert h.resources is not None
    before = await h.resources.db.fetchall("SELECT * FROM credit_ledger")
    for action in ("reroll", "extend", "delete"):
        press = await h.discord.click(h.guild, h.channel, h.bob, result, f"video:{action}:1")
        assert "Only" in await _private(press), action
    assert len(h.zai.submits) == 1 and not result.deleted
    assert await h.resources.db.fetchall("SELECT * FROM credit_ledger") == before


# --------------------------------------------------------------------------- SQL

SQL_WORDS = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|PRAGMA|WHERE|VALUES|CREATE|DROP|ALTER)\b")
SQL_CALLS = {"execute", "executemany", "executescript", "fetchone", "fetchall"}
SQL_CONSTANTS = {name: value for name, value in vars(storage.sql).items() if isinstance(value, str)}


def _sources() -> Iterator[Path]:
    """Every module of the bot."""
    for folder in ("bot", "cogs", "storage"):
        yield from sorted((ROOT / folder).glob("*.py"))


def _text_of(node: ast.AST) -> str:
    """The SQL text an expression stands for, as far as it is known statically."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_text_of(v) for v in node.values)
    if isinstance(node, ast.Attribute | ast.Name):
        name = node.attr if isinstance(node, ast.Attribute) else node.id
        return SQL_CONSTANTS.get(name, "")
    return ""


def _is_constant_name(node: ast.AST) -> bool:
    """A reference to an SQL constant of storage/sql.py, or len(...) of one (an int)."""
    if isinstance(node, ast.Name | ast.Attribute):
        return (node.id if isinstance(node, ast.Name) else node.attr) in SQL_CONSTANTS
    return isinstance(node, ast.Call) and getattr(node.func, "id", "") == "len"


def _guarded(name: str, function: ast.AST | None) -> bool:
    """`if name not in ALLOWED: raise` appears in the function before use."""
    for node in ast.walk(function) if function is not None else ():
        if (
            isinstance(node, ast.If)
            and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name)
            and node.test.left.id == name
            and isinstance(node.test.ops[0], ast.NotIn)
            and any(isinstance(s, ast.Raise) for s in node.body)
        ):
            return True
    return False


def _problem(node: ast.AST, function: ast.AST | None) -> str | None:
    """Why this expression builds SQL unsafely, or None."""
    if isinstance(node, ast.JoinedStr) and SQL_WORDS.search(_text_of(node)):
        values = [v.value for v in node.values if isinstance(v, ast.FormattedValue)]
        if not all(_is_constant_name(v) for v in values):
            return "f-string SQL with a non-constant value"
    if isinstance(node, ast.BinOp) and SQL_WORDS.search(_text_of(node.left)):
        right = node.right
        if isinstance(right, ast.Call) and getattr(right.func, "id", "") == "placeholders":
            return None  # `?, ?, ?`: the values still travel as parameters
        if isinstance(right, ast.Name) and _guarded(right.id, function):
            return None  # an identifier checked against an allow-list just before
        if isinstance(right, ast.Tuple) and all(_safe_part(e, function) for e in right.elts):
            return None  # several of those
        return "SQL built with % or + from a value"
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
        and SQL_WORDS.search(_text_of(node.func.value))
    ):
        return "SQL built with str.format"
    return None


def _safe_part(node: ast.AST, function: ast.AST | None) -> bool:
    """`placeholders(...)` or an identifier checked against an allow-list before use."""
    if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "placeholders":
        return True
    return isinstance(node, ast.Name) and _guarded(node.id, function)


def _walk(tree: ast.AST) -> Iterator[tuple[ast.AST, ast.AST | None]]:
    """Every node with its enclosing function."""
    stack: list[tuple[ast.AST, ast.AST | None]] = [(tree, None)]
    while stack:
        node, function = stack.pop()
        yield node, function
        inner = node if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) else function
        stack.extend((child, inner) for child in ast.iter_child_nodes(node))


def test_sql_is_parameterised_throughout() -> None:
    problems = []
    for path in _sources():
        for node, function in _walk(ast.parse(path.read_text(), str(path))):
            why = _problem(node, function)
            if why is not None:
                problems.append(f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}: {why}")
    assert problems == []


def test_the_sql_check_finds_what_it_should() -> None:
    """The checker itself: a formatted value is flagged, constants and placeholders are not."""
    bad = [
        'conn.execute(f"SELECT * FROM jobs WHERE id = {job_id}")',
        'conn.execute("DELETE FROM jobs WHERE id = %s" % job_id)',
        'conn.execute("UPDATE jobs SET state = {}".format(state))',
        'conn.execute("SELECT * FROM jobs WHERE prompt = \'" + prompt + "\'")',
        "conn.execute(sql.COPY_INSERT % (table, placeholders(row)))",  # table not checked
    ]
    good = [
        "conn.execute(sql.SELECT_JOB, (job_id,))",
        "conn.execute(sql.SELECT_JOBS_IN_STATES % placeholders(states), states)",
        'conn.execute(f"PRAGMA user_version = {len(sql.MIGRATIONS)}")',
    ]
    for source in bad + good:
        tree = ast.parse(source)
        found = [why for node, fn in _walk(tree) if (why := _problem(node, fn)) is not None]
        assert bool(found) == (source in bad), source


async def test_sql_injection_in_prompts_and_settings_is_inert(h: Harness) -> None:
    prompt = "x'); DROP TABLE jobs; --"
    await h.discord.slash(
        h.guild, h.channel, h.alice, "video", subcommand="text", options={"prompt": prompt}
    )
    await h.result_for(h.alice)
    assert h.resources is not None
    [row] = await h.resources.db.fetchall("SELECT prompt FROM jobs")
    assert row[0] == prompt
    with pytest.raises(ValueError):
        await ModerationStore(h.resources.db).set_setting(1, "daily_cap = 0; DROP TABLE jobs", 1)
    assert len(await h.resources.db.fetchall("SELECT id FROM jobs")) == 1


# --------------------------------------------------------------------------- message limits

NASTY_PROMPTS = [
    "*" * 512,  # every character escaped: twice as long once quoted
    "\\" * 512,
    "<@&1>" * 102,  # role pings, each growing when neutralised
    "@everyone " * 51,
    "a\n" * 256,  # newlines kept by the prompt cleaner
    "👩‍👩‍👧‍👦" * 73,  # 7 code points per family emoji
    "`" * 3 + "x" * 500 + "`" * 3,  # an unclosed code block
]


@pytest.fixture
async def roomy(tmp_path: Path) -> AsyncIterator[Harness]:
    """A bot that lets alice run every nasty prompt at once."""
    async with harness(tmp_path, max_inflight_per_user=10, quota_daily_credits=20) as running:
        yield running


async def test_a_prompt_cannot_break_message_or_embed_limits(roomy: Harness) -> None:
    h = roomy
    for prompt in NASTY_PROMPTS:
        assert len(prompt) <= 512
        await h.discord.slash(
            h.guild, h.channel, h.alice, "video", subcommand="text", options={"prompt": prompt}
        )
    assert h.resources is not None
    db = h.resources.db
    await eventually(
        lambda: _count_delivered(db, len(NASTY_PROMPTS)), timeout=30, what="every video"
    )
    for job_id in range(1, len(NASTY_PROMPTS) + 1):
        [result] = [m for m in h.discord.messages(h.channel) if m.nonce == f"job-{job_id}"]
        details = await h.discord.click(
            h.guild, h.channel, h.alice, result, f"video:details:{job_id}"
        )
        assert f"Video #{job_id}" in await _private(details)
    jobs = await h.discord.slash(h.guild, h.channel, h.alice, "jobs")
    assert "delivered" in await _private(jobs)
    assert h.discord.invalid_requests == [] and _every_message_fits(h)


async def _count_delivered(db: Database, count: int) -> bool:
    """Whether `count` jobs were delivered."""
    rows = await db.fetchall("SELECT id FROM jobs WHERE state = 'delivered'")
    return len(rows) >= count


def _every_message_fits(h: Harness) -> bool:
    """Discord's limits: content 2000, embed description 4096, embed total 6000."""
    for message in h.discord.messages(h.channel):
        assert len(message.content) <= 2000
        for embed in message.embeds:
            assert len(embed.get("description", "")) <= 4096
            assert _embed_size(embed) <= 6000
    return True


def _embed_size(embed: dict[str, Any]) -> int:
    """Characters Discord counts towards an embed's 6000 total."""
    fields = embed.get("fields", [])
    parts = [embed.get("title", ""), embed.get("description", "")]
    parts += [f.get("name", "") + f.get("value", "") for f in fields]
    return sum(len(p) for p in parts)
