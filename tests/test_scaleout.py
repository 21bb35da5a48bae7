"""Two and four real bot processes on one PostgreSQL schema, one killed with SIGKILL at each
failpoint: the others finish its jobs; nothing is lost or doubled. Then shards across
processes: each process's interactions arrive through its own shard, a job is delivered by
whichever process holds it, and a process whose shards are taken is refused at start.

The bots are `python -m tests.procs` children (the real bot, polls scaled down, LEASE_SECONDS=2)
against the fakes of this process. The jobs are written to the database by the test (as the
front end of any process would): every process sees them through NOTIFY. The armed process
is started first and alone until it holds one of them, so it reaches its failpoint; the
others join, and when its leases run out they take its jobs over. Counted afterwards: result
messages per job in the fake Discord, submits per request at the fake Z.AI, ledger rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from storage.db import Database
from storage.jobs import JobStore, NewJob
from tests.fakes.discord import FakeDiscord, FakeGuild, FakeUser
from tests.fakes.zai import FakeZai
from tests.pg import pg_schema
from tests.procs import BotProcess, bot_env, query, start_bot, start_more
from tests.util import eventually

pytestmark = pytest.mark.postgresql

POINTS = ["before_submit", "after_submit", "after_poll", "after_succeeded", "after_download",
          "after_upload"]  # fmt: skip
JOBS = 6
LIMIT = 3  # ZAI_MAX_CONCURRENT_TASKS of every process: shared, counted in the database
LEASE = "2"  # seconds: a dead process's jobs are taken over this long after


@dataclass
class Fleet:
    """The fakes, one guild, the shared database and the running bot processes."""

    discord: FakeDiscord
    zai: FakeZai
    guild: FakeGuild
    url: str
    tmp: Path
    bots: list[BotProcess] = field(default_factory=list)

    def env(self, n: int, **more: str) -> dict[str, str]:
        """Process n's environment: the shared database, its own scratch folder."""
        db_path = self.tmp / f"p{n}" / "bot.db"
        extra = {"LEASE_SECONDS": LEASE, "ZAI_MAX_CONCURRENT_TASKS": str(LIMIT), **more}
        return bot_env(self.discord, self.zai, db_path, self.url, **extra)

    async def start(self, n: int, crash_at: str | None = None, **more: str) -> BotProcess:
        """Start process n (the first alone; the others beside the running ones)."""
        cwd, log = self.tmp / f"cwd{n}", self.tmp / f"bot{n}.log"
        if n == 0:
            cwd.mkdir()
            bot = await start_bot(self.discord, self.env(n, **more), cwd, log, crash_at=crash_at)
        else:
            bot = await start_more(self.discord, self.env(n, **more), cwd, log)
        self.bots.append(bot)
        return bot

    def rows(self, sql: str, *params: object) -> list[dict[str, object]]:
        """Rows of a query on the shared database."""
        return [dict(row) for row in query(self.url, sql, params)]


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    """Fakes up (the provider takes more than the bots' shared limit; a task takes 0.3 s, so
    polls find it running), a fresh schema."""
    with pg_schema() as url:
        async with FakeDiscord() as discord, FakeZai(concurrency=50, generation_seconds=0.3) as zai:
            alice = discord.add_user("alice")
            guild = discord.add_guild(name="Scale", channels=["general"], members=[alice])
            fleet = Fleet(discord, zai, guild, url, tmp_path)
            try:
                yield fleet
            finally:
                for bot in fleet.bots:
                    with contextlib.suppress(Exception):
                        await bot.stop()


async def queue_jobs(fleet: Fleet) -> list[int]:
    """Write JOBS queued jobs (credit reserved), as a front end does."""
    db = await Database.open(fleet.url)
    try:
        store, channel = JobStore(db), fleet.guild.channel("general").id
        jobs = [
            await store.create(_new(fleet.guild.id, channel, n), (), allowance=99, max_inflight=99)
            for n in range(JOBS)
        ]
    finally:
        await db.close()
    return [job.id for job in jobs]


def _new(guild: int, channel: int, n: int) -> NewJob:
    """A text job of one of three members."""
    return NewJob(
        guild_id=guild, channel_id=channel, user_id=500 + n % 3, model="cogvideox-3",
        mode="text", prompt=f"scale-out video {n}", options={}, origin="slash", cost=1,
        request_id=uuid.uuid4().hex,
    )  # fmt: skip


def held_by(fleet: Fleet, bot: BotProcess) -> bool:
    """Whether the process holds the lease of some job."""
    rows = fleet.rows("SELECT lease_owner FROM jobs WHERE lease_owner IS NOT NULL")
    return any(f":{bot.pid}:" in str(row["lease_owner"]) for row in rows)


def results(fleet: Fleet) -> Counter[str]:
    """Live result messages per nonce, in every channel and DM."""
    bot_id = fleet.discord.bot_user.id
    return Counter(
        m.nonce
        for channel in list(fleet.discord.channels)
        for m in fleet.discord.messages(channel)
        if m.author_id == bot_id and str(m.nonce).startswith("job-")
    )


@pytest.mark.parametrize("processes", [2, 4])
@pytest.mark.parametrize("point", POINTS)
async def test_a_killed_process_jobs_are_finished_by_the_others_once(
    fleet: Fleet, point: str, processes: int
) -> None:
    armed = await fleet.start(0, crash_at=point)
    job_ids = await queue_jobs(fleet)
    await eventually(lambda: held_by(fleet, armed), timeout=20, what="the armed bot's claim")
    for n in range(1, processes):
        await fleet.start(n)
    assert await armed.wait_exit(30) == -9, armed.log()
    final = ("delivered", "failed")
    await eventually(
        lambda: all(r["state"] in final for r in fleet.rows("SELECT state FROM jobs")),
        timeout=60,
        what="every job to end",
    )
    for bot in fleet.bots[1:]:
        assert await bot.stop() == 0, bot.log()
    check_once(fleet, job_ids)
    assert any("taken over" in bot.log() for bot in fleet.bots[1:])  # the dead one's job


def check_once(fleet: Fleet, job_ids: list[int]) -> None:
    """Each job delivered once (one result message, charged once) or failed after a submit
    that may have arrived (stated, refunded once); no request sent twice; the shared limit
    held at the provider."""
    posted = results(fleet)
    for job in fleet.rows("SELECT * FROM jobs ORDER BY id"):
        ledger = [
            (r["reason"], r["delta"])
            for r in fleet.rows(
                "SELECT reason, delta FROM credit_ledger WHERE job_id = ? ORDER BY id", job["id"]
            )
        ]
        if job["state"] == "delivered":
            assert posted[f"job-{job['id']}"] == 1, job
            assert ledger == [("reserve", -1)] and job["refunded"] == 0, job
        else:
            assert job["error_code"] == "submit_unconfirmed", job
            assert posted[f"job-{job['id']}"] == 0, job
            assert ledger == [("reserve", -1), ("refund", 1)] and job["refunded"] == 1, job
    assert sorted(int(r["id"]) for r in fleet.rows("SELECT id FROM jobs")) == sorted(job_ids)
    requests = Counter(body["request_id"] for body in fleet.zai.submits)
    assert all(count == 1 for count in requests.values()), requests
    assert fleet.zai.rejected == [] and fleet.zai.max_processing <= LIMIT


# --- shards across processes ------------------------------------------------------------------

SHARDS = 2


@pytest.fixture
async def sharded(tmp_path: Path) -> AsyncIterator[tuple[Fleet, list[FakeGuild], FakeUser]]:
    """Fakes up with one guild on each of two shards, a fresh schema; the guilds and alice."""
    with pg_schema() as url:
        async with FakeDiscord() as discord, FakeZai() as zai:
            alice = discord.add_user("alice")
            guilds = [
                discord.add_guild_on_shard(i, SHARDS, name=f"Shard {i}", channels=["general"],
                                           members=[alice])
                for i in range(SHARDS)
            ]  # fmt: skip
            fleet = Fleet(discord, zai, guilds[0], url, tmp_path)
            try:
                yield fleet, guilds, alice
            finally:
                for bot in fleet.bots:
                    with contextlib.suppress(Exception):
                        await bot.stop()


def shard_env(shard: int) -> dict[str, str]:
    """A process running one shard of SHARDS."""
    return {"SHARD_COUNT": str(SHARDS), "SHARD_IDS": str(shard)}


async def ask(fleet: Fleet, guild: FakeGuild, alice: FakeUser) -> str:
    """alice's /video text in the guild's #general; the interaction's id."""
    interaction = await fleet.discord.slash(
        guild, guild.channel("general"), alice, "video", subcommand="text",
        options={"prompt": f"a lighthouse in {guild.name}"},
    )  # fmt: skip
    return str(interaction.id)


def job_of(fleet: Fleet, guild: FakeGuild) -> dict[str, object] | None:
    """The guild's one job row (None before it exists)."""
    rows = fleet.rows("SELECT id, state, lease_owner FROM jobs WHERE guild_id = ?", guild.id)
    return rows[0] if rows else None


def arrived_at(fleet: Fleet, shard: int) -> set[str]:
    """Ids of the interactions the fake dispatched to a shard's session."""
    events = fleet.discord.gateway.events_of((shard, SHARDS))
    return {data["id"] for event, data in events if event == "INTERACTION_CREATE"}


async def test_shards_in_two_processes_answer_their_own_and_deliver_what_they_hold(
    sharded: tuple[Fleet, list[FakeGuild], FakeUser],
) -> None:
    """SHARD_IDS=0 and =1 in two processes on one schema: each /video arrives at its shard's
    process only; shard 0's process holds its job at the provider and is killed; shard 1's
    takes the lease over and posts into shard 0's channel (REST, a channel it never saw), once.
    A third process asking for shard 1 meanwhile is refused with one line."""
    fleet, (g0, g1), alice = sharded
    fleet.zai.hold_all = True
    first = await fleet.start(0, **shard_env(0))
    asked = [await ask(fleet, g0, alice)]
    held = await eventually(
        lambda: (job := job_of(fleet, g0)) and job["state"] == "processing" and job,
        timeout=20, what="shard 0's job at the provider",
    )  # fmt: skip
    assert f":{first.pid}:" in str(held["lease_owner"])  # the only process: it holds the job
    second = await fleet.start(1, **shard_env(1))
    await fleet.discord.wait_shards_ready(SHARDS)
    asked.append(await ask(fleet, g1, alice))
    await eventually(lambda: job_of(fleet, g1), timeout=20, what="shard 1's job")
    identified = sorted(i["shard"] for i in fleet.discord.gateway.identifies)
    assert identified == [[0, SHARDS], [1, SHARDS]]  # one session per shard, one per process
    for shard, interaction in enumerate(asked):
        assert interaction in arrived_at(fleet, shard) - arrived_at(fleet, 1 - shard)

    await refused_for_shard_1(fleet, second)
    assert await first.kill() == -9
    fleet.zai.hold_all = False
    fleet.zai.finish_all()
    await eventually(
        lambda: [r["state"] for r in fleet.rows("SELECT state FROM jobs")] == ["delivered"] * 2,
        timeout=60, what="both jobs delivered",
    )  # fmt: skip
    assert await second.stop() == 0, second.log()
    check_once(fleet, [int(held["id"]), int(job_of(fleet, g1)["id"])])  # type: ignore[index]
    assert f"job {held['id']} (processing): taken over" in second.log()
    [result] = [
        m for m in fleet.discord.messages(g0.channel("general")) if m.nonce == f"job-{held['id']}"
    ]
    assert result.author_id == fleet.discord.bot_user.id  # posted after its first holder died


async def refused_for_shard_1(fleet: Fleet, running: BotProcess) -> None:
    """`python -m bot` with shard 1, which a live process runs: exit 1, one line, no session."""
    env = fleet.env(2, **shard_env(1))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", cwd=fleet.tmp, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode()
    assert proc.returncode == 1, text
    [line] = [line for line in text.splitlines() if line.startswith("error:")]
    assert line.startswith("error: shard 1 of SHARD_IDS=1 already runs in process "), line
    assert f"(pid {running.pid} on " in line and "(none is free), or stop that process" in line
    assert "Traceback" not in text and len(fleet.discord.gateway.identifies) == SHARDS
