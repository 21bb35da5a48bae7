"""Retention: input pictures deleted once no job can use them; old job rows, if asked.

A picture (a `media` row, stored once per content) is kept while any job links it through
`job_inputs`. A job's links go when it ended more than `retention_days` ago, when its result is
deleted (`purge`), or with the job row itself (`history_days`); a picture left with no link is
deleted. Every step is a small transaction in the database thread, so the event loop never
waits on the sweep and other writers wait at most one batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from storage import sql
from storage.db import Conn, Database, placeholders

DAY = 86_400.0


@dataclass(frozen=True)
class RetentionPolicy:
    """How long things are kept, and how much one transaction deletes."""

    retention_days: float = 7.0  # pictures, after the job ended
    history_days: float | None = None  # job rows, after the job ended (None: kept)
    job_batch: int = 500  # jobs per transaction
    media_batch: int = 50  # pictures per transaction (each up to 25 MB of pages to free)


@dataclass
class SweepReport:
    """What a sweep (or a purge) deleted."""

    jobs_released: int = 0  # ended jobs whose picture links were dropped
    jobs_deleted: int = 0  # job rows deleted (HISTORY_DAYS)
    pictures_deleted: int = 0
    bytes_deleted: int = 0
    batches: int = 0  # transactions
    seconds: float = 0.0
    longest_batch: float = 0.0  # the longest time the write lock was held

    def add(self, step: SweepReport) -> None:
        """Count one batch in."""
        self.jobs_released += step.jobs_released
        self.jobs_deleted += step.jobs_deleted
        self.pictures_deleted += step.pictures_deleted
        self.bytes_deleted += step.bytes_deleted
        self.batches += 1
        self.longest_batch = max(self.longest_batch, step.seconds)

    def summary(self) -> str:
        """One line for the operator."""
        return (
            f"pruned: {self.pictures_deleted} picture(s) ({self.bytes_deleted / 1e6:.1f} MB) "
            f"no job can use any more, picture links of {self.jobs_released} ended job(s), "
            f"{self.jobs_deleted} old job row(s); {self.seconds:.2f} s"
        )


Step = Callable[[Conn], tuple[SweepReport, bool]]


class Retention:
    """The sweep and the Delete button's purge."""

    def __init__(self, db: Database, policy: RetentionPolicy | None = None) -> None:
        self.db = db
        self.policy = policy or RetentionPolicy()

    async def sweep(self, now: float) -> SweepReport:
        """Delete what no job can use any more as of `now`, in batches."""
        policy, report = self.policy, SweepReport()
        started = time.perf_counter()
        cutoff = now - policy.retention_days * DAY
        await self._batches(report, lambda c: _release_expired(c, cutoff, policy.job_batch))
        if policy.history_days is not None:
            old = now - policy.history_days * DAY
            await self._batches(report, lambda c: _delete_old_jobs(c, old, policy.job_batch))
        await self._batches(report, lambda c: _delete_unused_media(c, policy.media_batch))
        report.seconds = time.perf_counter() - started
        return report

    async def purge(self, job_id: int) -> SweepReport:
        """Drop an ended job's pictures now, unless another job still links them."""
        report = SweepReport()
        started = time.perf_counter()
        report.add((await self.db.run(lambda c: _purge(c, job_id)))[0])
        report.seconds = time.perf_counter() - started
        return report

    async def _batches(self, report: SweepReport, step: Step) -> None:
        """Run one step as transactions until it has nothing more to do."""
        more = True
        while more:
            done, more = await self.db.run(lambda c: _timed(c, step))
            report.add(done)


def _timed(conn: Conn, step: Step) -> tuple[SweepReport, bool]:
    """Run a step, noting how long it held the write lock."""
    started = time.perf_counter()
    done, more = step(conn)
    done.seconds = time.perf_counter() - started
    return done, more


def _release_expired(conn: Conn, cutoff: float, limit: int) -> tuple[SweepReport, bool]:
    """Drop the picture links of up to `limit` jobs that ended before `cutoff`."""
    jobs = [r[0] for r in conn.execute(sql.SELECT_EXPIRED_INPUT_JOBS, (cutoff, limit))]
    if jobs:
        conn.execute(sql.DELETE_JOB_INPUTS % placeholders(jobs), jobs)
    return SweepReport(jobs_released=len(jobs)), len(jobs) == limit


def _delete_old_jobs(conn: Conn, cutoff: float, limit: int) -> tuple[SweepReport, bool]:
    """Delete up to `limit` job rows that ended before `cutoff`; the ledger rows stay."""
    jobs = [r[0] for r in conn.execute(sql.SELECT_OLD_JOBS, (cutoff, limit))]
    if jobs:
        conn.execute(sql.DELETE_JOB_INPUTS % placeholders(jobs), jobs)
        conn.execute(sql.DETACH_LEDGER % placeholders(jobs), jobs)
        conn.execute(sql.DETACH_CHILDREN % placeholders(jobs), jobs)
        conn.execute(sql.DELETE_JOBS % placeholders(jobs), jobs)
    return SweepReport(jobs_deleted=len(jobs)), len(jobs) == limit


def _delete_unused_media(conn: Conn, limit: int) -> tuple[SweepReport, bool]:
    """Delete up to `limit` pictures that no job links any more."""
    digests = [r[0] for r in conn.execute(sql.SELECT_UNUSED_MEDIA, (limit,))]
    if not digests:
        return SweepReport(), False
    rows = conn.execute(sql.SELECT_MEDIA_SIZES % placeholders(digests), digests).fetchall()
    return _delete_media(conn, rows), len(digests) == limit


def _purge(conn: Conn, job_id: int) -> tuple[SweepReport, bool]:
    """Drop one ended job's links and the pictures nobody else links (one transaction)."""
    if conn.execute(sql.SELECT_FINAL_JOB, (job_id,)).fetchone() is None:
        return SweepReport(), False  # unfinished: it still needs its pictures
    job = [job_id]
    digests = [r[0] for r in conn.execute(sql.SELECT_MEDIA_OF_JOBS % placeholders(job), job)]
    conn.execute(sql.DELETE_JOB_INPUTS % placeholders(job), job)
    if not digests:
        return SweepReport(), False
    query = sql.SELECT_UNUSED_MEDIA_OF % placeholders(digests)
    report = _delete_media(conn, conn.execute(query, digests).fetchall())
    report.jobs_released = 1
    return report, False


def _delete_media(conn: Conn, rows: Sequence[Any]) -> SweepReport:
    """Delete these pictures (rows of sha256, size)."""
    digests = [r[0] for r in rows]
    if digests:
        conn.execute(sql.DELETE_MEDIA % placeholders(digests), digests)
    return SweepReport(pictures_deleted=len(rows), bytes_deleted=sum(r[1] for r in rows))
