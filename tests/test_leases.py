"""Several engines on one database, as several processes share it: leases, the shared provider
limit, takeover after a holder stops, wake-ups between them.

Two engines in this test process, each with its own Database object on the same database (two
connections, as two processes have), against one fake Z.AI whose concurrency is the shared
limit. The front end is a small listener doing what cogs/delivery.py does: claim the job's
lease, post (counted here), mark it delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from bot.engine import Engine, EngineConfig, JobEvent, JobRequest
from bot.models import Mode
from bot.zai import ZaiClient
from storage.credits import Credits
from storage.db import Database
from storage.jobs import Job, JobStore, NewJob
from storage.leases import Claim, LeaseStore
from storage.moderation import ModerationStore
from storage.notify import Notice
from storage.states import JobState
from tests.conftest import FAST_POLLS, Recorder
from tests.fakes.zai import FakeZai
from tests.pg import pg_schema
from tests.util import eventually, text_job

GUILD, CHANNEL = 1, 2
LIMIT = 3  # the provider's concurrency, shared by every engine
OpenDb = Callable[[], Awaitable[Database]]


class Front(Recorder):
    """The front end of one engine: records events and delivers like cogs/delivery.py."""

    def __init__(self, engine: Engine, posts: Counter[int]) -> None:
        super().__init__()
        self.engine = engine
        self.posts = posts  # shared by every engine's front end: results posted per job

    async def job_event(self, event: JobEvent, job: Job) -> None:
        """Deliver a finished job this engine holds, once; record every event."""
        if event is JobEvent.FINISHED and await self.engine.claim_delivery(job.id):
            current = await self.engine.job(job.id)
            if current is not None and current.state is JobState.SUCCEEDED:
                self.posts[job.id] += 1
                await self.engine.mark_delivered(job.id, None)
        await super().job_event(event, job)


@pytest.fixture
def open_db(database_url: str) -> OpenDb:
    """Open another connection to the test's database (another process would), per backend."""

    async def opener() -> Database:
        return await Database.open(database_url)

    return opener


@contextlib.asynccontextmanager
async def engines(
    open_db: OpenDb, client: ZaiClient, count: int, *, lease_seconds: float = 0.5
) -> AsyncIterator[tuple[list[Engine], list[Front], Counter[int]]]:
    """`count` engines on their own connections, sharing the limit; stopped (released) after."""
    posts: Counter[int] = Counter()
    config = EngineConfig(
        max_concurrent=LIMIT, max_inflight_per_user=50, lease_seconds=lease_seconds
    )
    dbs = [await open_db() for _ in range(count)]
    pairs = [_engine(db, client, config, posts) for db in dbs]
    try:
        yield [e for e, _ in pairs], [f for _, f in pairs], posts
    finally:
        for engine, _ in pairs:
            await engine.close()
        for db in dbs:
            await db.close()


def _engine(
    db: Database, client: ZaiClient, config: EngineConfig, posts: Counter[int]
) -> tuple[Engine, Front]:
    """One engine with a delivering front end."""
    engine = Engine(JobStore(db), Credits(db, 100), client, config, FAST_POLLS)
    front = Front(engine, posts)
    engine.listener = front
    return engine, front


def text(user: int, n: int) -> JobRequest:
    """A text job."""
    return JobRequest(GUILD, CHANNEL, user, "cogvideox-3", Mode.TEXT, f"video {n}")


async def states(db: Database) -> Counter[str]:
    """How many jobs are in each state."""
    return Counter(row[0] for row in await db.fetchall("SELECT state FROM jobs"))


async def _all(db: Database, expected: dict[str, int]) -> bool:
    """Whether the jobs' states are exactly `expected` (counts per state)."""
    return await states(db) == expected


async def ledger(db: Database, job_id: int) -> list[tuple[str, int]]:
    """(reason, delta) of a job's credit ledger."""
    rows = await db.fetchall(
        "SELECT reason, delta FROM credit_ledger WHERE job_id = ? ORDER BY id", (job_id,)
    )
    return [(r[0], r[1]) for r in rows]


async def test_two_engines_submit_each_job_once_within_the_shared_limit(
    open_db: OpenDb, zai_client: ZaiClient, fake_zai: FakeZai
) -> None:
    """No job submitted twice, the provider's limit never exceeded by both together (the fake
    refuses past it), every job delivered once, and both engines did work."""
    fake_zai.concurrency = LIMIT
    fake_zai.generation_seconds = 0.05
    async with engines(open_db, zai_client, 2) as (pair, fronts, posts):
        for engine in pair:
            await engine.start()
        jobs = [await pair[n % 2].submit(text(100 + n % 6, n)) for n in range(24)]
        done = {"delivered": len(jobs)}
        await eventually(lambda: _all(pair[0].store.db, done), timeout=60, what="deliveries")
    assert posts == Counter({job.id: 1 for job in jobs})
    request_ids = [body["request_id"] for body in fake_zai.submits]
    assert len(request_ids) == len(set(request_ids)) == len(jobs)
    assert fake_zai.rejected == [] and fake_zai.max_processing <= LIMIT
    assert all(front.of(JobEvent.STARTED) for front in fronts)  # both engines submitted


async def test_a_stopped_engines_jobs_are_taken_over_when_its_leases_run_out(
    open_db: OpenDb, zai_client: ZaiClient, fake_zai: FakeZai
) -> None:
    """An engine stops without giving its leases up (as a killed process): once they run out
    the other polls its tasks and delivers each result once; nothing is submitted again."""
    fake_zai.hold_all = True
    async with engines(open_db, zai_client, 2) as (pair, fronts, posts):
        dead, alive = pair
        await dead.start()
        jobs = [await dead.submit(text(100 + n, n)) for n in range(LIMIT)]
        await eventually(lambda: len(fake_zai.processing()) == LIMIT, what="tasks running")
        await dead.close(release=False)
        await alive.start()
        fake_zai.finish_all()
        await eventually(lambda: sum(posts.values()) == LIMIT, timeout=20, what="takeover")
    assert posts == Counter({job.id: 1 for job in jobs})
    assert len(fake_zai.submits) == LIMIT
    assert {j.id for j in fronts[1].of(JobEvent.FINISHED)} == {j.id for j in jobs}


async def test_a_submit_cut_by_a_dead_holder_is_refunded_never_resent(
    open_db: OpenDb, zai_client: ZaiClient, fake_zai: FakeZai
) -> None:
    """A job left submitting under an expired lease may exist at the provider: the engine that
    takes it over ends it (stated, refunded once) and never sends it."""
    async with engines(open_db, zai_client, 1) as ([engine], [front], _):
        job = await engine.accept(await engine.quote(text(100, 0)))  # not started: queued
        dead = LeaseStore(engine.store.db, "dead-process", seconds=0.2)
        assert await dead.claim_submit(job.id, LIMIT) is Claim.CLAIMED  # then it died
        await engine.start()
        [failed] = await front.wait(JobEvent.FAILED, timeout=10)
        assert await ledger(engine.store.db, job.id) == [("reserve", -1), ("refund", 1)]
    assert failed.id == job.id and failed.error_code == "submit_unconfirmed"
    assert failed.refunded == 1 and fake_zai.submits == []


async def test_a_live_lease_is_respected_and_a_released_one_taken_at_once(
    open_db: OpenDb, zai_client: ZaiClient, fake_zai: FakeZai
) -> None:
    """A job another live process holds is left alone; when it gives its leases up (a clean
    stop) the notice makes the other engine take the job over without waiting."""
    async with engines(open_db, zai_client, 1, lease_seconds=60) as ([engine], [front], _):
        job = await engine.accept(await engine.quote(text(100, 0)))
        other = LeaseStore(engine.store.db, "live-process", seconds=60)
        assert await other.claim_submit(job.id, LIMIT) is Claim.CLAIMED
        await engine.start()
        assert await engine.leases.sweep() == 0
        assert (await engine.job(job.id)).state is JobState.SUBMITTING  # type: ignore[union-attr]
        assert await other.release() == 1
        [failed] = await front.wait(JobEvent.FAILED, timeout=10)  # long before 60 s
    assert failed.error_code == "submit_unconfirmed" and fake_zai.submits == []


async def test_the_provider_limit_is_counted_in_the_database(db: Database) -> None:
    """Claims by different processes together stop at the limit; a claimed job is not claimed
    again."""
    store = JobStore(db)
    jobs = [await store.create(_new(n), (), allowance=10, max_inflight=10) for n in range(3)]
    first, second = LeaseStore(db, "first"), LeaseStore(db, "second")
    assert await first.claim_submit(jobs[0].id, 2) is Claim.CLAIMED
    assert await second.claim_submit(jobs[0].id, 2) is Claim.GONE
    assert await second.claim_submit(jobs[1].id, 2) is Claim.CLAIMED
    assert await first.claim_submit(jobs[2].id, 2) is Claim.FULL
    assert (await store.get(jobs[2].id)).state is JobState.QUEUED  # type: ignore[union-attr]


def _new(n: int) -> NewJob:
    """A queued text job of user n."""
    return text_job(100 + n, GUILD, CHANNEL, request_id=f"request-{n}")


def waiting(n: int, **lease: object) -> NewJob:
    """A request waiting for approval, as a front end created it (its lease columns given)."""
    return NewJob(
        guild_id=GUILD, channel_id=CHANNEL, user_id=300 + n, model="cogvideox-3", mode="text",
        prompt=f"to approve {n}", options={}, origin="slash", cost=1,
        request_id=uuid.uuid4().hex, state=JobState.PENDING_APPROVAL, **lease,  # type: ignore[arg-type]
    )  # fmt: skip


async def test_moderators_are_asked_once_whichever_process_starts(
    open_db: OpenDb, zai_client: ZaiClient, fake_zai: FakeZai
) -> None:
    """Requests never asked (their process died first) are asked once by two engines starting
    together; a claim whose asker died has run out and is asked; a live asker's claim, an asked
    request and a new request (created claimed by its own engine) are left to their asker."""
    db = await open_db()
    store, now = JobStore(db), time.time()
    create = store.create
    never = [await create(waiting(n), (), allowance=9, max_inflight=9) for n in range(3)]
    dead = {"lease_owner": "gone:1:x", "lease_until": now - 1}
    ran_out = await create(waiting(3, **dead), (), allowance=9, max_inflight=9)
    busy = {"lease_owner": "alive:2:y", "lease_until": now + 600}
    asking = await create(waiting(4, **busy), (), allowance=9, max_inflight=9)
    asked = await create(waiting(5), (), allowance=9, max_inflight=9)
    await store.set_approval_message(asked.id, 999)
    await ModerationStore(db).set_setting(GUILD, "approval_channel_id", 77)
    try:
        async with engines(open_db, zai_client, 2, lease_seconds=60) as (pair, fronts, _):
            await asyncio.gather(*(engine.start() for engine in pair))
            new = await pair[0].submit(text(400, 0))
            assert new.state is JobState.PENDING_APPROVAL
            await asyncio.gather(*(engine.close() for engine in pair))  # every event handled
        told = Counter(j.id for front in fronts for j in front.of(JobEvent.PENDING_APPROVAL))
        assert told == Counter({job.id: 1 for job in [*never, ran_out, new]})
        assert new.id in {j.id for j in fronts[0].of(JobEvent.PENDING_APPROVAL)}  # its own
        await store.set_approval_message(new.id, 1000)  # posted: the claim is cleared
        [row] = await db.fetchall("SELECT lease_owner FROM jobs WHERE id = ?", (new.id,))
        assert row[0] is None and asking.id not in told
    finally:
        await db.close()


async def test_notices_stay_within_their_schema() -> None:
    """NOTIFY reaches every listener of the database: the channel is the schema's, so bots (or
    test runs) in other schemas of one database never wake each other. PostgreSQL only."""
    with pg_schema() as one, pg_schema() as other:
        dbs = [await Database.open(url) for url in (one, one, other)]
        heard: list[list[Notice]] = [[] for _ in dbs]
        try:
            for db, box in zip(dbs, heard, strict=True):
                db.notifier.subscribe(box.append)
            # Listening: a new LISTEN connection hands over every kind of notice once.
            await eventually(lambda: all(len(box) == len(Notice) for box in heard))
            for box in heard:
                box.clear()
            await dbs[0].run(lambda conn: dbs[0].notifier.send(conn, Notice.WORK))
            await dbs[2].run(lambda conn: dbs[2].notifier.send(conn, Notice.LEASES))
            # Notices arrive in commit order: once the other schema's own came, ours never will.
            await eventually(lambda: heard == [[Notice.WORK], [Notice.WORK], [Notice.LEASES]])
        finally:
            for db, box in zip(dbs, heard, strict=True):
                db.notifier.unsubscribe(box.append)
                await db.close()
