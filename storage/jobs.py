"""The job store: every state change of a job is one guarded statement or transaction."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from typing import Any

from storage import sql
from storage.credits import day_key
from storage.db import Conn, Database, lock_scope, placeholders, sha256_hex
from storage.errors import RefusalKind, Refused
from storage.rows import Job, NewJob, StoredImage, insert_params
from storage.states import UNFINISHED, JobState


class JobStore:
    """Jobs, their inputs and the credit reservation that admits them."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self,
        new: NewJob,
        images: Sequence[StoredImage],
        *,
        allowance: int,
        max_inflight: int,
        guild_cap: int | None = None,
        now: float | None = None,
        inputs_from: int | None = None,
    ) -> Job:
        """Reserve the credit, check in-flight jobs and insert the job, all or nothing.

        `inputs_from`: link that job's stored pictures instead of `images` (a Re-roll); refused
        with PICTURES_GONE if it has none left.
        """
        now = time.time() if now is None else now
        day = day_key(now)

        def admit(conn: Conn) -> Any:
            _admissible(conn, new, day, allowance, max_inflight, guild_cap)
            [(job_id,)] = conn.execute(sql.INSERT_JOB, insert_params(new, day, now)).fetchall()
            if inputs_from is None:
                _store_images(conn, job_id, images, now)
            elif conn.execute(sql.COPY_JOB_INPUTS, (job_id, inputs_from)).rowcount == 0:
                raise Refused(RefusalKind.PICTURES_GONE)
            ledger = (new.guild_id, new.user_id, day, -new.cost, "reserve", job_id, None, now)
            conn.execute(sql.INSERT_LEDGER, ledger)
            return conn.execute(sql.SELECT_JOB, (job_id,)).fetchone()

        return Job.from_row(await self.db.run(admit))

    async def check_admission(
        self,
        new: NewJob,
        *,
        allowance: int,
        max_inflight: int,
        guild_cap: int | None = None,
        now: float | None = None,
    ) -> None:
        """Raise Refused if `create` would refuse this job now; changes nothing.

        The very checks of `create`, rolled back: a request is refused before anything is
        downloaded for it, and still cannot over-spend if two race (create checks again).
        """
        day = day_key(time.time() if now is None else now)

        def probe(conn: Conn) -> None:
            _admissible(conn, new, day, allowance, max_inflight, guild_cap)
            raise _Admissible

        try:
            await self.db.run(probe)
        except _Admissible:
            return

    async def get(self, job_id: int) -> Job | None:
        """One job by id."""
        row = await self.db.fetchone(sql.SELECT_JOB, (job_id,))
        return None if row is None else Job.from_row(row)

    async def user_jobs(self, guild_id: int, user_id: int, limit: int = 10) -> list[Job]:
        """A user's most recent jobs in a guild, newest first."""
        rows = await self.db.fetchall(sql.SELECT_USER_JOBS, (guild_id, user_id, limit))
        return [Job.from_row(r) for r in rows]

    async def inputs(self, job_id: int) -> list[StoredImage]:
        """The stored input images of a job, in order."""
        rows = await self.db.fetchall(sql.SELECT_JOB_INPUTS, (job_id,))
        return [StoredImage(r["mime"], r["width"], r["height"], r["data"]) for r in rows]

    async def input_count(self, job_id: int) -> int:
        """How many stored pictures a job still has (0 once retention or Delete purged them)."""
        return (await self.db.fetchone(sql.COUNT_JOB_INPUTS, (job_id,)))[0]

    async def in_states(self, states: Iterable[JobState]) -> list[Job]:
        """Every job in one of the states."""
        states = tuple(states)
        query = sql.SELECT_JOBS_IN_STATES % placeholders(states)
        return [Job.from_row(r) for r in await self.db.fetchall(query, states)]

    async def cancellable(self, guild_id: int, user_id: int, limit: int = 25) -> list[Job]:
        """A member's jobs not at the provider yet, newest first."""
        rows = await self.db.fetchall(sql.SELECT_CANCELLABLE, (guild_id, user_id, limit))
        return [Job.from_row(r) for r in rows]

    async def pending_approval(self, guild_id: int, limit: int = 25) -> list[Job]:
        """A server's requests waiting for a moderator, oldest first."""
        rows = await self.db.fetchall(sql.SELECT_PENDING_APPROVAL, (guild_id, limit))
        return [Job.from_row(r) for r in rows]

    async def expired_approvals(self, now: float, default_hours: float) -> list[Job]:
        """Requests that waited longer than their server's approval time."""
        params = {"now": now, "default_hours": default_hours}
        return [
            Job.from_row(r) for r in await self.db.fetchall(sql.SELECT_EXPIRED_APPROVALS, params)
        ]

    async def count_active(self) -> int:
        """Jobs holding a provider slot (submitting or processing)."""
        return (await self.db.fetchone(sql.COUNT_ACTIVE))[0]

    async def fair_queue(self, now: float, limit: int) -> list[Job]:
        """Queued jobs ready to submit, in fair order across users."""
        rows = await self.db.fetchall(sql.SELECT_FAIR_QUEUE, (now, limit))
        return [Job.from_row(r) for r in rows]

    async def queue_position(self, job_id: int) -> int:
        """1-based position of a queued job in the fair order."""
        return (await self.db.fetchone(sql.SELECT_QUEUE_POSITION, (job_id,)))[0]

    async def due_polls(self, now: float, limit: int, exclude: Iterable[int] = ()) -> list[Job]:
        """Processing jobs whose next poll is due, most overdue first, except `exclude`."""
        params = (now, json.dumps(list(exclude)), limit)
        rows = await self.db.fetchall(sql.SELECT_DUE_POLLS, params)
        return [Job.from_row(r) for r in rows]

    async def next_wake(self, after: float) -> float | None:
        """The earliest poll or retry time later than `after`."""
        return (await self.db.fetchone(sql.SELECT_NEXT_WAKE, (after, after)))[0]

    async def recent_observations(
        self, limit: int = 500
    ) -> list[tuple[str, dict[str, Any], float, float]]:
        """(model, options, lower, upper) of recent finished jobs, oldest first: each finished
        between `lower` and `upper` seconds after its submit."""
        rows = await self.db.fetchall(sql.SELECT_RECENT_OBSERVATIONS, (limit,))
        return [(r[0], json.loads(r[1]), r[2], r[3]) for r in reversed(rows)]

    async def mark_submitting(self, job_id: int) -> bool:
        """queued → submitting, recorded before the request leaves the process."""
        return await self.db.execute(sql.MARK_SUBMITTING, (time.time(), job_id)) == 1

    async def mark_processing(self, job_id: int, task_id: str, next_poll_at: float) -> bool:
        """submitting → processing with the provider's task id."""
        now = time.time()
        params = (task_id, now, next_poll_at, now, job_id)
        return await self.db.execute(sql.MARK_PROCESSING, params) == 1

    async def requeue(self, job_id: int, at: float, code: str, message: str) -> bool:
        """submitting → queued again, for a submit that surely did not reach the provider."""
        params = (at, code, message[:500], time.time(), job_id)
        return await self.db.execute(sql.MARK_REQUEUED, params) == 1

    async def move(self, job_id: int, provider: str, code: str, message: str) -> bool:
        """submitting → queued at another provider, for a submit the first one surely refused."""
        params = (provider, time.time(), code, message[:500], time.time(), job_id)
        return await self.db.execute(sql.MARK_MOVED, params) == 1

    async def mark_polled(self, job_id: int, next_poll_at: float) -> bool:
        """Count a poll that failed: poll again at `next_poll_at`."""
        return await self.db.execute(sql.MARK_POLLED, (next_poll_at, time.time(), job_id)) == 1

    async def mark_running(self, polls: Sequence[tuple[int, float, float]]) -> None:
        """Record polls that found tasks still running, as (job id, next poll at, polled at),
        in one transaction."""
        now = time.time()
        rows = [(at, polled, now, job_id) for job_id, at, polled in polls]
        await self.db.run(lambda conn: conn.executemany(sql.MARK_RUNNING, rows))

    async def mark_generated(self, job_id: int, task_id: str, url: str) -> bool:
        """submitting → succeeded for a synchronous job (a still): its answer is the result."""
        now = time.time()
        params = (task_id, now, now, url, now, job_id)
        return await self.db.execute(sql.MARK_GENERATED, params) == 1

    async def mark_succeeded(self, job_id: int, video_url: str, cover_url: str | None) -> bool:
        """processing → succeeded with the result links."""
        now = time.time()
        params = (now, video_url, cover_url, now, job_id)
        return await self.db.execute(sql.MARK_SUCCEEDED, params) == 1

    async def mark_delivered(self, job_id: int, message_id: int | None) -> bool:
        """succeeded → delivered, with the result message."""
        now = time.time()
        return await self.db.execute(sql.MARK_DELIVERED, (now, message_id, now, job_id)) == 1

    async def set_delivery_note(self, job_id: int, code: str, note: str) -> None:
        """Why a delivered job reached its requester another way (shown in /jobs)."""
        await self.db.execute(sql.SET_DELIVERY_NOTE, (code, note, time.time(), job_id))

    async def approve(self, job_id: int, moderator_id: int) -> bool:
        """pending_approval → queued."""
        now = time.time()
        return await self.db.execute(sql.APPROVE_JOB, (moderator_id, now, now, job_id)) == 1

    async def set_approval_message(self, job_id: int, message_id: int) -> None:
        """Remember the moderators' approval request message."""
        await self.db.execute(sql.SET_APPROVAL_MESSAGE, (message_id, time.time(), job_id))

    async def set_decided_by(self, job_id: int, moderator_id: int) -> None:
        """Record which moderator decided on a job."""
        await self.db.execute(sql.SET_DECIDED_BY, (moderator_id, job_id))

    async def set_status_message(self, job_id: int, message_id: int) -> None:
        """Remember the status message the front end keeps up to date."""
        await self.db.execute(sql.SET_STATUS_MESSAGE, (message_id, time.time(), job_id))

    async def end(
        self,
        job_id: int,
        state: JobState,
        code: str,
        message: str,
        *,
        refund: bool,
        from_states: Sequence[JobState] = UNFINISHED,
        reason: str = "refund",
        now: float | None = None,
    ) -> bool:
        """Move a job to a final bad state, refunding its credit exactly once if asked."""
        now = time.time() if now is None else now
        query = sql.MARK_ENDED % placeholders(from_states)
        params = (state, code, message[:500], now, int(refund), now, job_id, *from_states)

        def finish(conn: Conn) -> bool:
            if conn.execute(query, params).rowcount != 1:
                return False
            if refund:
                _refund(conn, job_id, now, reason)
            return True

        return await self.db.run(finish)


class _Admissible(Exception):
    """Rolls back the probe of check_admission: the job would be admitted."""


def _admissible(
    conn: Conn,
    new: NewJob,
    day: str,
    allowance: int,
    max_inflight: int,
    guild_cap: int | None,
) -> None:
    """In-flight slot, the member's credits, the server's cap (reserved, inside a transaction).

    The in-flight count is read, then acted on: on PostgreSQL (READ COMMITTED, several
    processes) a lock per member keeps two admissions of one member from both counting the
    same jobs. The credit and cap reservations are conditional UPDATEs: the row lock and the
    re-check of their WHERE make them safe on their own (docs/scaling.md).
    """
    lock_scope(conn, f"admission:user:{new.user_id}")
    _check_inflight(conn, new.user_id, max_inflight)
    _reserve(conn, new, day, allowance)
    _reserve_guild(conn, new, day, guild_cap)


def _store_images(conn: Conn, job_id: int, images: Sequence[StoredImage], now: float) -> None:
    """Store each picture once per content and link it to the job in order."""
    for position, image in enumerate(images):
        digest = sha256_hex(image.data)
        media = (digest, image.mime, image.width, image.height, now, image.data)
        conn.execute(sql.INSERT_MEDIA, media)
        conn.execute(sql.INSERT_JOB_INPUT, (job_id, position, digest))


def _check_inflight(conn: Conn, user_id: int, max_inflight: int) -> None:
    """Refuse a user who already has the maximum of unfinished jobs."""
    count = conn.execute(sql.COUNT_USER_UNFINISHED, (user_id,)).fetchone()[0]
    if count >= max_inflight:
        raise Refused(RefusalKind.IN_FLIGHT, count=count, limit=max_inflight)


def _reserve(conn: Conn, new: NewJob, day: str, allowance: int) -> None:
    """Take the job's cost from today's credits, or refuse."""
    conn.execute(sql.ENSURE_USAGE_ROW, (new.guild_id, new.user_id, day))
    params = {
        "cost": new.cost,
        "guild_id": new.guild_id,
        "user_id": new.user_id,
        "day": day,
        "allowance": allowance,
    }
    cursor = conn.execute(sql.RESERVE_CREDITS, params)
    if cursor.rowcount != 1:
        raise Refused(RefusalKind.CREDITS, cost=new.cost)


def _reserve_guild(conn: Conn, new: NewJob, day: str, cap: int | None) -> None:
    """Take the cost from the server's daily cap too, or refuse."""
    conn.execute(sql.ENSURE_GUILD_USAGE_ROW, (new.guild_id, day))
    params = {"cost": new.cost, "guild_id": new.guild_id, "day": day, "cap": cap}
    cursor = conn.execute(sql.RESERVE_GUILD_CREDITS, params)
    if cursor.rowcount != 1:
        raise Refused(RefusalKind.GUILD_CAP, cost=new.cost)


def _refund(conn: Conn, job_id: int, now: float, reason: str) -> None:
    """Give a job's credit back where the member sees it: today (see _refund_later)."""
    row = conn.execute(sql.SELECT_JOB, (job_id,)).fetchone()
    if row["credit_day"] != day_key(now):
        _refund_later(conn, row, now, reason)
        return
    params = {
        "cost": row["cost"],
        "guild_id": row["guild_id"],
        "user_id": row["user_id"],
        "day": row["credit_day"],
    }
    conn.execute(sql.RELEASE_CREDITS, params)
    guild = {"cost": row["cost"], "guild_id": row["guild_id"], "day": row["credit_day"]}
    conn.execute(sql.RELEASE_GUILD_CREDITS, guild)
    ledger = (
        row["guild_id"],
        row["user_id"],
        row["credit_day"],
        row["cost"],
        reason,
        job_id,
        None,
        now,
    )
    conn.execute(sql.INSERT_LEDGER, ledger)


def _refund_later(conn: Conn, row: Any, now: float, reason: str) -> None:
    """A credit taken on an earlier UTC day comes back as a grant on today's row.

    Released on its own day it would never show in /quota (that day is over). Lowering today's
    `used` instead could take it below zero and would no longer be what was reserved today. As a
    grant, every day's ledger still sums to its `granted - used`, and the server's usage of the
    earlier day is left as it was (its cap is spent by reservations, not refunds).
    """
    today = day_key(now)
    owner = (row["guild_id"], row["user_id"])
    conn.execute(sql.ENSURE_USAGE_ROW, (*owner, today))
    grant = {"amount": row["cost"], "guild_id": owner[0], "user_id": owner[1], "day": today}
    conn.execute(sql.GRANT_CREDITS, grant)
    conn.execute(sql.INSERT_LEDGER, (*owner, today, row["cost"], reason, row["id"], None, now))
