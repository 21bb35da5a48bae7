"""The job store and credit ledger on a real database (SQLite; PostgreSQL with TEST_DATABASE_URL)."""

from __future__ import annotations

import asyncio
import stat
import time
from pathlib import Path

import pytest

from bot.engine import refusal_text
from bot.i18n import render
from storage import sql
from storage.credits import Credits, day_key
from storage.db import Database
from storage.errors import RefusalKind, Refused
from storage.jobs import JobStore, NewJob
from tests.util import text_job

GUILD, USER = 1000, 2000


def new_job(user: int = USER, cost: int = 1, guild: int = GUILD) -> NewJob:
    """A text job for a user."""
    return text_job(user, guild, 3000, cost=cost)


async def test_migrations_set_user_version_and_are_idempotent(db: Database) -> None:
    version = await db.schema_version()
    assert version == len(sql.MIGRATIONS)
    assert await db.migrate() == version
    if db.backend == "sqlite":
        assert (await db.fetchone("PRAGMA journal_mode"))[0] == "wal"


async def test_database_file_is_owner_only(db: Database, db_path: Path) -> None:
    if db.backend != "sqlite":
        pytest.skip("a SQLite file's permissions; PostgreSQL keeps its own files")
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600


async def test_thousand_concurrent_reservations_accept_exactly_the_allowance(db: Database) -> None:
    store = JobStore(db)

    async def attempt() -> bool:
        try:
            await store.create(new_job(), (), allowance=10, max_inflight=10_000)
        except Refused:
            return False
        return True

    results = await asyncio.gather(*(attempt() for _ in range(1000)))
    assert sum(results) == 10
    balance = await Credits(db, 10).balance(GUILD, USER, day_key(time.time()))
    assert balance.used == 10 and balance.left == 0


async def test_inflight_limit_is_enforced_atomically(db: Database) -> None:
    store = JobStore(db)

    async def attempt() -> bool:
        try:
            await store.create(new_job(), (), allowance=100, max_inflight=2)
        except Refused as exc:  # the engine's text for this refusal
            assert exc.kind is RefusalKind.IN_FLIGHT and "in progress" in render(
                "en-US", refusal_text(exc)
            )
            return False
        return True

    results = await asyncio.gather(*(attempt() for _ in range(50)))
    assert sum(results) == 2


async def test_refund_happens_exactly_once(db: Database) -> None:
    store = JobStore(db)
    job = await store.create(new_job(cost=3), (), allowance=10, max_inflight=5)
    outcomes = await asyncio.gather(
        *(store.end(job.id, "failed", "x", "y", refund=True) for _ in range(20))
    )
    assert outcomes.count(True) == 1
    balance = await Credits(db, 10).balance(GUILD, USER, job.credit_day)
    assert balance.used == 0
    total = await db.fetchone("SELECT sum(delta) FROM credit_ledger WHERE job_id = ?", (job.id,))
    assert total[0] == 0


async def test_ledger_matches_usage(db: Database) -> None:
    store = JobStore(db)
    jobs = [await store.create(new_job(), (), allowance=10, max_inflight=10) for _ in range(5)]
    for job in jobs[:2]:
        await store.end(job.id, "failed", "x", "y", refund=True)
    await store.end(jobs[2].id, "failed", "x", "y", refund=False)
    usage = await db.fetchone("SELECT used FROM credit_usage WHERE user_id = ?", (USER,))
    ledger = await db.fetchone("SELECT sum(delta) FROM credit_ledger WHERE user_id = ?", (USER,))
    assert usage[0] == 3 and ledger[0] == -3


async def test_fair_queue_interleaves_users(db: Database) -> None:
    store = JobStore(db)
    greedy = [
        await store.create(new_job(user=1), (), allowance=50, max_inflight=50) for _ in range(10)
    ]
    other = await store.create(new_job(user=2), (), allowance=50, max_inflight=50)
    order = [job.user_id for job in await store.fair_queue(now=1e12, limit=3)]
    assert order == [1, 2, 1]
    assert await store.queue_position(other.id) == 2
    assert await store.queue_position(greedy[-1].id) == 11


@pytest.mark.parametrize("cost", [1, 4])
async def test_reservation_respects_cost(db: Database, cost: int) -> None:
    store = JobStore(db)
    accepted = 0
    for _ in range(12):
        try:
            await store.create(new_job(cost=cost), (), allowance=10, max_inflight=100)
            accepted += 1
        except Refused:
            break
    assert accepted == 10 // cost
