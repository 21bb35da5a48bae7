"""The engine end to end against the fake Z.AI and a real database file."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.engine import Engine, JobEvent, JobRequest
from bot.errors import InputError, QuotaError
from bot.models import Mode, VideoOptions
from bot.zai import ZaiClient
from storage.db import Database
from storage.jobs import JobStore
from tests.conftest import Recorder, make_engine
from tests.fakes.media import make_gif, make_png
from tests.fakes.zai import FakeZai, Fault
from tests.util import eventually

GUILD, CHANNEL = 10, 20


def text(user: int = 7, prompt: str = "a cat on a skateboard", **options) -> JobRequest:
    """A text-to-video request."""
    return JobRequest(
        GUILD, CHANNEL, user, "cogvideox-3", Mode.TEXT, prompt, VideoOptions(**options)
    )


async def test_text_job_finishes_with_urls(
    engine: tuple[Engine, Recorder], fake_zai: FakeZai
) -> None:
    eng, rec = engine
    job = await eng.submit(text())
    [done] = await rec.wait(JobEvent.FINISHED)
    assert done.id == job.id and done.state == "succeeded"
    assert done.video_url == fake_zai.video_url(done.task_id)
    assert fake_zai.submits[0]["user_id"] == "000007"
    assert fake_zai.submits[0]["request_id"] == job.request_id
    assert [e for e, _ in rec.events][:2] == [JobEvent.QUEUED, JobEvent.STARTED]


async def test_image_job_sends_data_uri(engine: tuple[Engine, Recorder], fake_zai: FakeZai) -> None:
    eng, rec = engine
    request = JobRequest(
        GUILD, CHANNEL, 7, "vidu2-image", Mode.IMAGE, None, images=[make_png(300, 200)]
    )
    await eng.submit(request)
    await rec.wait(JobEvent.FINISHED)
    assert fake_zai.submits[0]["image_url"].startswith("data:image/png;base64,")


async def test_bad_input_spends_nothing_and_sends_nothing(
    engine: tuple[Engine, Recorder], fake_zai: FakeZai, db: Database
) -> None:
    eng, _ = engine
    broken = JobRequest(
        GUILD, CHANNEL, 7, "vidu2-image", Mode.IMAGE, None, images=[make_gif(True)[:40]]
    )
    for request in (text(duration=7), text(prompt="x" * 513), broken):
        with pytest.raises(InputError):
            await eng.submit(request)
    assert fake_zai.requests == []
    assert (await db.fetchone("SELECT count(*) FROM credit_ledger"))[0] == 0


async def test_failed_generation_is_refunded(engine: tuple[Engine, Recorder], db: Database) -> None:
    eng, rec = engine
    job = await eng.submit(text(prompt="FAILME please"))
    [failed] = await rec.wait(JobEvent.FAILED)
    assert failed.id == job.id and failed.state == "failed" and failed.refunded == 1
    assert (await db.fetchone("SELECT sum(delta) FROM credit_ledger"))[0] == 0


async def test_content_filter_is_refused_and_refunded(engine: tuple[Engine, Recorder]) -> None:
    eng, rec = engine
    await eng.submit(text(prompt="BLOCKME"))
    [refused] = await rec.wait(JobEvent.FAILED)
    assert refused.state == "refused" and "content policy" in (refused.error_message or "")


async def test_rate_limited_submit_is_retried_after_retry_after(
    engine: tuple[Engine, Recorder], fake_zai: FakeZai
) -> None:
    eng, rec = engine
    fake_zai.script(
        "submit", Fault.http(429, code="1302", message="slow down", retry_after=0), Fault.http(500)
    )
    await eng.submit(text())
    [done] = await rec.wait(JobEvent.FINISHED)
    assert done.attempts == 3 and len(fake_zai.submits) == 1


async def test_ambiguous_submit_is_never_resent(
    engine: tuple[Engine, Recorder], fake_zai: FakeZai
) -> None:
    eng, rec = engine
    fake_zai.script("submit", Fault.accept_then_drop())
    await eng.submit(text())
    [failed] = await rec.wait(JobEvent.FAILED)
    assert failed.error_code == "submit_unconfirmed" and failed.refunded == 1
    assert len(fake_zai.tasks) == 1  # the provider has it; we did not start a second one


async def test_balance_exhausted_halts_submissions(
    engine: tuple[Engine, Recorder], fake_zai: FakeZai
) -> None:
    eng, rec = engine
    fake_zai.script("submit", Fault.http(429, code="1113", message="insufficient balance"))
    await eng.submit(text())
    await rec.wait(JobEvent.HALTED)
    [failed] = await rec.wait(JobEvent.FAILED)
    assert failed.refunded == 1
    with pytest.raises(QuotaError):
        await eng.submit(text(user=8))


async def test_poll_errors_are_retried(engine: tuple[Engine, Recorder], fake_zai: FakeZai) -> None:
    eng, rec = engine
    fake_zai.script(
        "poll", Fault.http(500), Fault.reset(), Fault.http(429, code="1302", message="x")
    )
    await eng.submit(text())
    [done] = await rec.wait(JobEvent.FINISHED)
    assert done.polls == 4


async def test_concurrency_limit_and_fair_slots(
    db: Database, zai_client: ZaiClient, fake_zai: FakeZai
) -> None:
    fake_zai.hold_all = True
    eng, rec = make_engine(db, zai_client, max_concurrent=2, max_inflight_per_user=20, allowance=20)
    await eng.start()
    try:
        greedy = [await eng.submit(text(user=1)) for _ in range(5)]
        late = await eng.submit(text(user=2))
        await eventually(lambda: len(fake_zai.processing()) == 2, what="two tasks running")
        assert await eng.queue_position(late.id) == 1  # ahead of greedy's other three
        fake_zai.finish_all()
        await eventually(
            lambda: late.id in {j.id for j in rec.of(JobEvent.STARTED)}, what="fair slot"
        )
        assert len(fake_zai.processing()) <= 2
        fake_zai.hold_all = False
        fake_zai.finish_all()
        await eventually(lambda: not fake_zai.processing() and len(rec.of(JobEvent.FINISHED)) == 6)
        starts = [j.user_id for j in rec.of(JobEvent.STARTED)]
        assert starts.index(2) <= 2
        assert len(fake_zai.submits) == len(greedy) + 1
    finally:
        await eng.close()


async def test_restart_resumes_without_resubmitting(
    db_path: Path, zai_client: ZaiClient, fake_zai: FakeZai
) -> None:
    fake_zai.hold_all = True
    first_db = await Database.open(db_path)
    first, _ = make_engine(first_db, zai_client, max_concurrent=2, max_inflight_per_user=5)
    await first.start()
    jobs = [await first.submit(text()) for _ in range(3)]
    await eventually(lambda: len(fake_zai.processing()) == 2, what="two processing")
    await first.close()
    await first_db.close()

    second_db = await Database.open(db_path)
    second, rec = make_engine(second_db, zai_client, max_concurrent=2, max_inflight_per_user=5)
    await second.start()
    try:
        fake_zai.hold_all = False
        fake_zai.finish_all()
        finished = await rec.wait(JobEvent.FINISHED, count=3)
        assert sorted(j.id for j in finished) == sorted(j.id for j in jobs)
        assert len(fake_zai.submits) == 3
        rows = await JobStore(second_db).in_states(("succeeded",))
        assert len(rows) == 3
    finally:
        await second.close()
        await second_db.close()


async def test_job_caught_mid_submit_is_refunded_not_resent(
    db: Database, zai_client: ZaiClient, fake_zai: FakeZai
) -> None:
    eng, rec = make_engine(db, zai_client)
    job = await eng.accept(await eng.quote(text()))  # engine not started: stays queued
    assert await eng.store.mark_submitting(job.id)  # as if the process died right here
    await eng.start()
    try:
        [failed] = await rec.wait(JobEvent.FAILED)
        assert failed.error_code == "submit_unconfirmed" and failed.refunded == 1
        assert fake_zai.submits == []
    finally:
        await eng.close()


async def test_succeeded_but_undelivered_is_reported_again_after_restart(
    db: Database, zai_client: ZaiClient
) -> None:
    eng, rec = make_engine(db, zai_client)
    await eng.start()
    job = await eng.submit(text())
    await rec.wait(JobEvent.FINISHED)
    await eng.close()
    again, rec2 = make_engine(db, zai_client)
    await again.start()
    try:
        [redo] = await rec2.wait(JobEvent.FINISHED)
        assert redo.id == job.id
        assert await again.mark_delivered(job.id, 99)
        assert not await again.mark_delivered(job.id, 99)
    finally:
        await again.close()


async def test_undeliverable_refunds_once(engine: tuple[Engine, Recorder], db: Database) -> None:
    eng, rec = engine
    job = await eng.submit(text())
    await rec.wait(JobEvent.FINISHED)
    assert await eng.mark_undeliverable(job.id, "channel deleted")
    assert not await eng.mark_undeliverable(job.id, "channel deleted")
    assert (await db.fetchone("SELECT sum(delta) FROM credit_ledger"))[0] == 0
