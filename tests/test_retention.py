"""Issue 15, retention: pictures stored once per content, shared by Re-rolls, deleted when no job
can use them (RETENTION_DAYS after the job ended, at once on Delete); HISTORY_DAYS; prune; the
migration of version-2 databases. Every time is an injected `now`: nothing sleeps."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.engine import PICTURES_GONE, JobEvent, JobRequest, Origin
from bot.errors import InputError, QuotaError
from bot.models import Mode
from bot.zai import ZaiClient
from storage import sql
from storage.db import Database
from storage.errors import Refused
from storage.jobs import JobStore, NewJob, StoredImage
from storage.retention import DAY, Retention, RetentionPolicy
from storage.states import FINAL, UNFINISHED, JobState
from tests.conftest import make_engine
from tests.fakes.media import make_png
from tests.harness import harness
from tests.test_cli import run_bot
from tests.test_e2e import png, private_text, slash
from tests.util import eventually

NOW = 1_800_000_000.0  # the sweep's clock in these tests
GUILD, USER = 1000, 2000


def picture(tag: str, size: int = 3000) -> StoredImage:
    """A stored picture whose bytes are unique to `tag`."""
    data = (tag.encode() * (size // len(tag) + 1))[:size]
    return StoredImage("image/png", 64, 48, data)


def digest(image: StoredImage) -> str:
    return hashlib.sha256(image.data).hexdigest()


def new_job(mode: str = "image", parent: int | None = None) -> NewJob:
    return NewJob(
        guild_id=GUILD,
        channel_id=3000,
        user_id=USER,
        model="cogvideox-3",
        mode=mode,
        prompt="p",
        options={},
        origin="test",
        cost=1,
        request_id=uuid.uuid4().hex,
        parent_job_id=parent,
    )


async def add_job(
    store: JobStore,
    state: JobState,
    ended_days: float,
    images: tuple[StoredImage, ...] = (),
    *,
    reroll_of: int | None = None,
) -> int:
    """A job in `state` whose last change (its end, if final) was `ended_days` before NOW."""
    limits: dict[str, Any] = {"allowance": 10_000, "max_inflight": 10_000}
    if reroll_of is not None:
        limits["inputs_from"] = reroll_of
    job = await store.create(new_job(parent=reroll_of), images, now=NOW - 40 * DAY, **limits)
    at = NOW - ended_days * DAY
    await store.db.execute(
        "UPDATE jobs SET state = ?, updated_at = ? WHERE id = ?", (state.value, at, job.id)
    )
    return job.id


async def media(db: Database) -> set[str]:
    return {r[0] for r in await db.fetchall("SELECT sha256 FROM media")}


async def ledger_sums(db: Database) -> list[tuple[Any, ...]]:
    query = "SELECT guild_id, user_id, day, sum(delta) FROM credit_ledger GROUP BY 1, 2, 3"
    return [tuple(r) for r in await db.fetchall(query)]


@dataclass
class Case:
    """One job of the table: its state and age, and whether its picture must survive."""

    state: JobState
    ended_days: float
    kept: bool


CASES = [
    *(Case(s, 30, kept=True) for s in UNFINISHED),  # unfinished: kept however old
    *(Case(s, 8, kept=False) for s in FINAL),  # ended more than 7 days ago
    *(Case(s, 6.9, kept=True) for s in FINAL),  # ended less than 7 days ago
    Case(JobState.DELIVERED, 7.0, kept=True),  # exactly 7 days: not yet
]


@pytest.mark.parametrize(
    "policy",
    [RetentionPolicy(), RetentionPolicy(job_batch=2, media_batch=1)],
    ids=["default-batches", "tiny-batches"],
)
async def test_sweep_deletes_exactly_what_no_job_can_use(
    db: Database, policy: RetentionPolicy
) -> None:
    store = JobStore(db)
    alone = {}
    for n, case in enumerate(CASES):
        image = picture(f"alone-{n}")
        alone[await add_job(store, case.state, case.ended_days, (image,))] = (case, image)
    # Shared: a re-roll links its parent's picture; the picture lives as long as either needs it.
    recent_reroll, old_reroll, queued_1, queued_2 = (picture(t) for t in "ABCD")
    parent = await add_job(store, JobState.DELIVERED, 30, (recent_reroll,))
    young = await add_job(store, JobState.DELIVERED, 2, reroll_of=parent)
    both_old = await add_job(store, JobState.DELIVERED, 20, (old_reroll,))
    await add_job(store, JobState.FAILED, 9, reroll_of=both_old)
    waiting = await add_job(store, JobState.DELIVERED, 50, (queued_1, queued_2))
    await add_job(store, JobState.QUEUED, 50, reroll_of=waiting)
    # The same bytes uploaded again by an unrelated job: one row, kept for the recent job.
    same = picture("same")
    await add_job(store, JobState.REFUSED, 100, (same,))
    await add_job(store, JobState.DELIVERED, 1, (same,))
    ledger, jobs = await ledger_sums(db), await db.fetchone("SELECT count(*) FROM jobs")

    report = await Retention(db, policy).sweep(NOW)

    expected = {digest(image) for case, image in alone.values() if case.kept}
    expected |= {digest(recent_reroll), digest(queued_1), digest(queued_2), digest(same)}
    assert await media(db) == expected
    assert digest(old_reroll) not in expected
    for job_id, (case, _) in alone.items():
        assert await store.input_count(job_id) == int(case.kept), case
    assert await store.input_count(parent) == 0 and await store.input_count(young) == 1
    assert len(await store.inputs(young)) == 1 and (await store.inputs(young))[0] == recent_reroll
    deleted = sum(not case.kept for case in CASES) + 1
    assert report.pictures_deleted == deleted and report.bytes_deleted == deleted * 3000
    assert report.jobs_released == sum(not c.kept for c in CASES) + 5 and report.jobs_deleted == 0
    # Job rows and the ledger stay; a second sweep has nothing left to do.
    assert await db.fetchone("SELECT count(*) FROM jobs") == jobs
    assert await ledger_sums(db) == ledger
    again = await Retention(db, policy).sweep(NOW)
    assert (again.pictures_deleted, again.jobs_released) == (0, 0)


async def test_history_days_deletes_old_job_rows_and_keeps_the_ledger(db: Database) -> None:
    store = JobStore(db)
    parent = await add_job(store, JobState.DELIVERED, 40, (picture("p"),))
    child = await add_job(store, JobState.DELIVERED, 3, reroll_of=parent)
    refunded = await add_job(store, JobState.FAILED, 31, (picture("f"),))
    await store.db.execute("UPDATE jobs SET refunded = 1 WHERE id = ?", (refunded,))
    stuck = await add_job(store, JobState.PROCESSING, 90)
    recent = await add_job(store, JobState.REJECTED, 29)
    ledger, rows = await ledger_sums(db), await db.fetchone("SELECT count(*) FROM credit_ledger")

    policy = RetentionPolicy(history_days=30, job_batch=1)
    report = await Retention(db, policy).sweep(NOW)

    left = {r[0] for r in await db.fetchall("SELECT id FROM jobs")}
    assert left == {child, stuck, recent} and report.jobs_deleted == 2
    assert (await store.get(child)).parent_job_id is None  # type: ignore[union-attr]
    assert await store.input_count(child) == 1 and len(await media(db)) == 1  # the child's
    assert await ledger_sums(db) == ledger  # every credit movement is still there
    assert await db.fetchone("SELECT count(*) FROM credit_ledger") == rows
    if db.backend == "sqlite":  # PostgreSQL checks foreign keys on every statement
        assert (await db.fetchone("PRAGMA foreign_key_check")) is None


async def test_delete_purges_unless_another_job_links_the_picture(db: Database) -> None:
    store, retention = JobStore(db), Retention(db)
    shared, own = picture("shared", 5000), picture("own", 4000)
    parent = await add_job(store, JobState.DELIVERED, 0, (shared, own))
    child = await add_job(store, JobState.DELIVERED, 0, reroll_of=parent)
    queued = await add_job(store, JobState.QUEUED, 0, (picture("queued"),))

    first = await retention.purge(parent)
    assert await media(db) == {digest(shared), digest(own), digest(picture("queued"))}
    assert first.pictures_deleted == 0 and await store.input_count(parent) == 0  # #2 links both
    second = await retention.purge(child)
    assert await media(db) == {digest(picture("queued"))}
    assert (second.pictures_deleted, second.bytes_deleted) == (2, 9000)
    assert (await retention.purge(queued)).pictures_deleted == 0  # unfinished: still needed
    assert await store.input_count(queued) == 1


async def test_reroll_links_the_parents_bytes(
    db: Database, zai_client: ZaiClient, fake_zai: Any
) -> None:
    eng, rec = make_engine(db, zai_client)
    await eng.start()
    try:
        request = JobRequest(
            GUILD, 20, 7, "vidu2-image", Mode.IMAGE, None, images=[make_png(300, 200)]
        )
        first = await eng.submit(request)
        await rec.wait(JobEvent.FINISHED)
        await eng.mark_delivered(first.id, 1)
        size = (await db.fetchone("SELECT sum(length(data)) FROM media"))[0]
        quote = await eng.quote_again(first.id, 7, Origin.REROLL)
        second = await eng.accept(quote)
        await rec.wait(JobEvent.FINISHED, 2)
    finally:
        await eng.close()
    assert (await db.fetchone("SELECT count(*), sum(length(data)) FROM media"))[:] == (1, size)
    links = await db.fetchall("SELECT job_id, sha256 FROM job_inputs ORDER BY job_id")
    assert [r[0] for r in links] == [first.id, second.id] and links[0][1] == links[1][1]
    assert fake_zai.submits[1]["image_url"] == fake_zai.submits[0]["image_url"]


async def test_reroll_after_the_pictures_are_gone_is_refused_and_free(
    db: Database, zai_client: ZaiClient
) -> None:
    eng, _ = make_engine(db, zai_client)  # not started: nothing is submitted
    store = eng.store
    gone = await add_job(store, JobState.DELIVERED, 10, (picture("x"),))
    racing = await add_job(store, JobState.DELIVERED, 0, (picture("y"),))
    await eng.sweep(NOW)
    with pytest.raises(InputError) as refused:
        await eng.quote_again(gone, USER, Origin.REROLL)
    assert refused.value.text.key == PICTURES_GONE
    # Purged between the quote (maybe a cost confirmation) and the accept: refused, not charged.
    quote = await eng.quote_again(racing, USER, Origin.REROLL)
    await eng.purge_pictures(racing)
    ledger = await ledger_sums(db)
    with pytest.raises(QuotaError) as late:
        await eng.accept(quote)
    assert late.value.text.key == PICTURES_GONE and await ledger_sums(db) == ledger


async def test_engine_sweeps_in_the_background_and_logs_failures(
    db: Database, zai_client: ZaiClient, caplog: pytest.LogCaptureFixture
) -> None:
    store = JobStore(db)
    await store.create(new_job(), (picture("old"),), allowance=9, max_inflight=9, now=1.0)
    await db.execute("UPDATE jobs SET state = ?, updated_at = 1.0", (JobState.DELIVERED.value,))
    eng, _ = make_engine(db, zai_client, sweep_seconds=0.01)
    real, calls = eng.retention.sweep, []

    async def failing_once(now: float) -> Any:
        calls.append(now)
        if len(calls) == 1:
            raise sqlite3.OperationalError("disk I/O error")
        return await real(now)

    eng.retention.sweep = failing_once  # type: ignore[method-assign]
    caplog.set_level(logging.INFO, logger="bot.engine")
    await eng.start()
    try:
        await eventually(lambda: media_count(db), what="the picture swept")
    finally:
        await eng.close()
    assert "retention sweep failed" in caplog.text and "disk I/O error" in caplog.text
    assert "retention sweep: pruned: 1 picture(s)" in caplog.text


async def media_count(db: Database) -> bool:
    return (await db.fetchone("SELECT count(*) FROM media"))[0] == 0


async def test_delete_button_purges_the_pictures(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        assert h.resources is not None
        db = h.resources.db
        await slash(h, "image", image=png(h), prompt="spin")
        result = await h.result_for(h.alice)
        reroll = await h.discord.click(h.guild, h.channel, h.alice, result, "video:reroll:1")
        assert "Accepted as video #2" in await private_text(reroll)
        second = await h.result_for(h.alice, after=result.id)
        assert (await db.fetchone("SELECT count(*) FROM media"))[0] == 1

        delete = await h.discord.click(h.guild, h.channel, h.alice, result, "video:delete:1")
        assert "deleted" in await private_text(delete)
        assert (await db.fetchone("SELECT count(*) FROM media"))[0] == 1  # #2 still links it
        delete = await h.discord.click(h.guild, h.channel, h.alice, second, "video:delete:2")
        assert "deleted" in await private_text(delete)
        assert (await db.fetchone("SELECT count(*) FROM media"))[0] == 0
        assert (await db.fetchone("SELECT count(*) FROM jobs"))[0] == 2  # rows stay


async def test_prune_cli_sweeps_now_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "data" / "bot.db"
    db = await Database.open(path)
    store = JobStore(db)
    old = await add_job(store, JobState.DELIVERED, 10, (picture("old", 2_000_000),))
    await add_job(store, JobState.DELIVERED, 0, (picture("new"),))
    await db.execute("UPDATE jobs SET updated_at = 1.0 WHERE id = ?", (old,))
    await db.close()
    env = {
        "DISCORD_TOKEN": "discord-token-for-prune",
        "ZAI_API_KEY": "zai-key-for-prune",
        "DATABASE_URL": f"sqlite:///{path}",
    }
    code, out, err = await run_bot(["prune"], tmp_path, env)
    assert (code, err) == (0, "") and out.count("\n") == 1, (out, err)
    assert out.startswith("pruned: 1 picture(s) (2.0 MB)") and "0 old job row(s)" in out
    check = sqlite3.connect(path)
    assert check.execute("SELECT count(*) FROM media").fetchone()[0] == 1
    check.close()
    code, out, _ = await run_bot(["prune"], tmp_path, {**env, "HISTORY_DAYS": "7"})
    assert code == 0 and "1 old job row(s)" in out
    missing = {**env, "DATABASE_URL": f"sqlite:///{tmp_path / 'nope.db'}"}
    code, out, err = await run_bot(["prune"], tmp_path, missing)
    assert code == 1 and "does not exist" in out and "Traceback" not in out + err
    assert not (tmp_path / "nope.db").exists()


# --------------------------------------------------------------------------- migration

MEDIA_MIGRATION = next(i for i, m in enumerate(sql.MIGRATIONS) if "CREATE TABLE media" in m)


def old_database(path: Path, pictures: dict[int, list[bytes]]) -> None:
    """A database at the schema version before media, with pictures the old way (copies)."""
    path.parent.mkdir(parents=True)
    conn = sqlite3.connect(path)
    for script in sql.MIGRATIONS[:MEDIA_MIGRATION]:
        conn.executescript(script)
    for job_id, datas in pictures.items():
        conn.execute(
            "INSERT INTO jobs (id, guild_id, channel_id, user_id, model, mode, options, origin,"
            " cost, credit_day, request_id, state, created_at, updated_at)"
            " VALUES (?, 1, 2, 3, 'cogvideox-3', 'image', '{}', 'slash', 1, '2026-11-01', ?,"
            " ?, 5.0, 6.0)",
            (job_id, f"r{job_id}", JobState.DELIVERED.value),
        )
        for idx, data in enumerate(datas):
            conn.execute(
                "INSERT INTO job_inputs (job_id, idx, mime, width, height, data)"
                " VALUES (?, ?, 'image/png', ?, 9, ?)",
                (job_id, idx, 10 + idx, data),
            )
    conn.execute(f"PRAGMA user_version = {MEDIA_MIGRATION}")
    conn.commit()
    conn.close()


async def test_migration_moves_pictures_into_media_once(tmp_path: Path) -> None:
    a, b, c = make_png(40, 30), make_png(50, 30), make_png(60, 30)
    # Job 2 is a re-roll of job 1 (the old schema copied the bytes); job 3 has two pictures.
    pictures = {1: [a], 2: [a], 3: [b, c], 4: []}
    path = tmp_path / "data" / "bot.db"
    old_database(path, pictures)
    db = await Database.open(path)
    try:
        assert (await db.fetchone("PRAGMA user_version"))[0] == len(sql.MIGRATIONS)
        store = JobStore(db)
        for job_id, datas in pictures.items():
            stored = await store.inputs(job_id)
            assert [s.data for s in stored] == datas
            assert [s.width for s in stored] == [10 + i for i in range(len(datas))]
            assert all(s.mime == "image/png" and s.height == 9 for s in stored)
        assert await media(db) == {hashlib.sha256(x).hexdigest() for x in (a, b, c)}
        created = await db.fetchall("SELECT DISTINCT created_at FROM media")
        assert [r[0] for r in created] == [5.0]
        assert (await db.fetchone("PRAGMA foreign_key_check")) is None
        assert (await db.fetchone("PRAGMA integrity_check"))[0] == "ok"
    finally:
        await db.close()


async def test_concurrent_sweep_and_reroll_never_lose_a_needed_picture(db: Database) -> None:
    """A Re-roll racing the sweep that deletes its parent's picture: linked, or refused."""
    store = JobStore(db)
    parents = [await add_job(store, JobState.DELIVERED, 8, (picture(f"r{n}"),)) for n in range(20)]

    async def reroll(parent: int) -> int | None:
        try:
            job = await store.create(
                new_job(parent=parent), (), allowance=99, max_inflight=99, inputs_from=parent
            )
        except Refused:  # the picture went first
            return None
        return job.id

    rerolls, _ = await asyncio.gather(
        asyncio.gather(*(reroll(p) for p in parents)),
        Retention(db, RetentionPolicy(job_batch=1, media_batch=1)).sweep(NOW),
    )
    for job_id in filter(None, rerolls):
        assert len(await store.inputs(job_id)) == 1  # linked before the sweep: still there
