"""Two and four real bot processes on one PostgreSQL schema, one killed with SIGKILL at each
failpoint: the others finish its jobs; nothing is lost or doubled.

The bots are `python -m tests.procs` children (the real bot, polls scaled down, LEASE_SECONDS=2)
against the fakes of this process. The jobs are written to the database by the test (as the
front end of any process would): every process sees them through NOTIFY. The armed process
is started first and alone until it holds one of them, so it reaches its failpoint; the
others join, and when its leases run out they take its jobs over. Counted afterwards: result
messages per job in the fake Discord, submits per request at the fake Z.AI, ledger rows.
"""

from __future__ import annotations

import contextlib
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from storage.db import Database
from storage.jobs import JobStore, NewJob
from tests.fakes.discord import FakeDiscord, FakeGuild
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

    def env(self, n: int) -> dict[str, str]:
        """Process n's environment: the shared database, its own scratch folder."""
        db_path = self.tmp / f"p{n}" / "bot.db"
        extra = {"LEASE_SECONDS": LEASE, "ZAI_MAX_CONCURRENT_TASKS": str(LIMIT)}
        return bot_env(self.discord, self.zai, db_path, self.url, **extra)

    async def start(self, n: int, crash_at: str | None = None) -> BotProcess:
        """Start process n (the first alone; the others beside the running ones)."""
        cwd, log = self.tmp / f"cwd{n}", self.tmp / f"bot{n}.log"
        if n == 0:
            cwd.mkdir()
            bot = await start_bot(self.discord, self.env(n), cwd, log, crash_at=crash_at)
        else:
            bot = await start_more(self.discord, self.env(n), cwd, log)
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
