"""Leases: which process works on a job, so several processes can share one database.

A job in LEASED (submitting, processing, succeeded) carries `lease_owner` and `lease_until`.
Only the holder sends, polls, times out or delivers it; the holder renews its leases while it
runs and gives them up when it stops cleanly; a dead process's leases run out and another takes
its jobs over. Every claim is a guarded UPDATE in a transaction: on PostgreSQL the rows are
locked first with FOR UPDATE SKIP LOCKED, on SQLite BEGIN IMMEDIATE makes the one writer.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from storage import sql
from storage.db import Conn, Database, lock_scope
from storage.notify import Notice
from storage.rows import Job

# Every provider's jobs share one limit (ZAI_MAX_CONCURRENT_TASKS, all providers together), so
# one advisory-lock key serialises the count; a per-provider limit would use one key each.
SLOTS_KEY = "provider-slots"
TAKEOVER_BATCH = 100  # expired leases taken per transaction


class Claim(StrEnum):
    """What became of a claim to submit a queued job."""

    CLAIMED = "claimed"  # now submitting, under this process's lease
    FULL = "full"  # every provider slot is taken (by any process): it stays queued
    GONE = "gone"  # no longer queued (another process took it, or it was cancelled)


@dataclass(frozen=True)
class LeaseStore:
    """One process's leases on the shared jobs table."""

    db: Database
    owner: str  # this process's name in lease_owner (unique per start)
    seconds: float = 60.0  # how long a lease holds without renewal

    @property
    def postgres(self) -> bool:
        """Whether the database is PostgreSQL (row locks exist)."""
        return self.db.backend == "postgresql"

    def _params(self, now: float, **more: Any) -> dict[str, Any]:
        """The named parameters every lease statement takes (a lease expired before `now`)."""
        until = now + self.seconds
        return {"owner": self.owner, "now": now, "until": until, "expired_before": now, **more}

    async def claim_submit(self, job_id: int, limit: int, now: float | None = None) -> Claim:
        """queued → submitting under this lease, if fewer than `limit` jobs are at a provider.

        The count and the claim are one transaction under one lock, so processes together never
        exceed the limit (PostgreSQL: an advisory lock; SQLite: its single writer).
        """
        params = self._params(time.time() if now is None else now, id=job_id)

        def claim(conn: Conn) -> Claim:
            lock_scope(conn, SLOTS_KEY)  # PostgreSQL: an advisory lock; SQLite: one writer
            if self.postgres and conn.execute(sql.LOCK_QUEUED, params).fetchone() is None:
                return Claim.GONE
            if conn.execute(sql.COUNT_ACTIVE).fetchone()[0] >= limit:
                return Claim.FULL
            return Claim.CLAIMED if conn.execute(sql.CLAIM_SUBMIT, params).rowcount else Claim.GONE

        return await self.db.run(claim)

    async def renew(self, now: float | None = None) -> int:
        """Extend every lease this process holds; how many."""
        params = self._params(time.time() if now is None else now)
        return await self.db.run(lambda conn: conn.execute(sql.RENEW_LEASES, params).rowcount)

    async def take_expired(self, now: float | None = None, *, every: bool = False) -> list[Job]:
        """Take over leased jobs whose lease ran out (or was given up); the jobs taken.

        `every`: every other process's lease counts as expired (SQLite at start: the process
        lock proves no other process is alive, so nothing waits for a lease to run out).
        """
        params = self._params(time.time() if now is None else now, limit=TAKEOVER_BATCH)
        if every:
            params["expired_before"] = math.inf
        select = sql.SELECT_EXPIRED_LEASES_LOCKED if self.postgres else sql.SELECT_EXPIRED_LEASES

        def take(conn: Conn) -> list[Any]:
            ids = [row[0] for row in conn.execute(select, params).fetchall()]
            taken = [i for i in ids if conn.execute(sql.TAKE_LEASE, params | {"id": i}).rowcount]
            return [conn.execute(sql.SELECT_JOB, (i,)).fetchone() for i in taken]

        return [Job.from_row(row) for row in await self.db.run(take)]

    async def claim_delivery(self, job_id: int, now: float | None = None) -> bool:
        """Hold a finished job for delivery: this process's, or one whose lease ran out."""
        params = self._params(time.time() if now is None else now, id=job_id)
        return await self.db.run(
            lambda conn: conn.execute(sql.CLAIM_DELIVERY, params).rowcount == 1
        )

    async def claim_ask(
        self, job_id: int, now: float | None = None, *, every: bool = False
    ) -> bool:
        """Claim asking the moderators about a request never asked (False: asked, decided, or
        another live process is asking). `every`: every other process is dead (SQLite)."""
        params = self._params(time.time() if now is None else now, id=job_id)
        if every:
            params["expired_before"] = math.inf
        return await self.db.run(
            lambda conn: conn.execute(sql.CLAIM_APPROVAL_ASK, params).rowcount == 1
        )

    def ask_claim(self, now: float | None = None) -> dict[str, Any]:
        """The lease columns of a new request waiting for approval: its process asks."""
        until = (time.time() if now is None else now) + self.seconds
        return {"lease_owner": self.owner, "lease_until": until}

    async def release(self) -> int:
        """Give up every lease (a clean stop): other processes take the jobs at once."""
        params = self._params(time.time())

        def release(conn: Conn) -> int:
            released = conn.execute(sql.RELEASE_LEASES, params).rowcount
            if released:
                self.db.notifier.send(conn, Notice.LEASES)
            return released

        return await self.db.run(release)
