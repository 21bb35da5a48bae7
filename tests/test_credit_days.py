"""Issue 10 item 11: a refund after 00:00 UTC shows in today's /quota; the ledger still balances."""

from __future__ import annotations

import datetime as dt

from storage.credits import Credits, day_key
from storage.db import Database
from storage.jobs import JobStore
from storage.states import JobState
from tests.test_storage import GUILD, USER, new_job

MIDNIGHT = dt.datetime(2026, 12, 1, tzinfo=dt.UTC).timestamp()
BEFORE, AFTER = MIDNIGHT - 60, MIDNIGHT + 60  # 23:59 and 00:01 UTC


async def ledger_balances(db: Database) -> bool:
    """Every (guild, user, day): the ledger's sum equals `granted - used`."""
    rows = await db.fetchall(
        """
        SELECT u.granted - u.used,
               (SELECT coalesce(sum(delta), 0) FROM credit_ledger l
                WHERE l.guild_id = u.guild_id AND l.user_id = u.user_id AND l.day = u.day)
        FROM credit_usage u
        """
    )
    assert rows
    return all(row[0] == row[1] for row in rows)


async def test_a_refund_after_midnight_shows_today(db: Database) -> None:
    store, credits = JobStore(db), Credits(db, 10)
    job = await store.create(new_job(cost=3), (), allowance=10, max_inflight=5, now=BEFORE)
    today = await store.create(new_job(), (), allowance=10, max_inflight=5, now=AFTER)
    assert job.credit_day == day_key(BEFORE) != day_key(AFTER) == today.credit_day
    assert (await credits.balance(GUILD, USER, day_key(AFTER))).left == 9
    ended = [
        await store.end(job.id, JobState.FAILED, "x", "y", refund=True, now=AFTER + t)
        for t in (0, 1)
    ]
    assert ended == [True, False]  # refunded once
    balance = await credits.balance(GUILD, USER, day_key(AFTER))
    assert balance.left == 12 and balance.used == 1 and balance.granted == 3
    yesterday = await credits.balance(GUILD, USER, day_key(BEFORE))
    assert yesterday.used == 3  # the closed day is left as it was
    assert await ledger_balances(db)
    rows = await db.fetchall(
        "SELECT day, delta, reason FROM credit_ledger WHERE job_id = ? ORDER BY id", (job.id,)
    )
    assert [tuple(r) for r in rows] == [
        (day_key(BEFORE), -3, "reserve"),
        (day_key(AFTER), 3, "refund"),
    ]
    guild = await db.fetchall("SELECT day, used FROM guild_usage ORDER BY day")
    assert [tuple(r) for r in guild] == [(day_key(BEFORE), 3), (day_key(AFTER), 1)]


async def test_a_refund_on_the_same_day_releases_the_reservation(db: Database) -> None:
    store, credits = JobStore(db), Credits(db, 10)
    job = await store.create(new_job(cost=2), (), allowance=10, max_inflight=5, now=AFTER)
    assert await store.end(job.id, JobState.FAILED, "x", "y", refund=True, now=AFTER + 5)
    balance = await credits.balance(GUILD, USER, day_key(AFTER))
    assert (balance.used, balance.granted, balance.left) == (0, 0, 10)
    assert await ledger_balances(db)
