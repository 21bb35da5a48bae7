"""The engine end to end against the fake Z.AI and a real database file."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from bot.engine import Engine, EngineConfig, JobEvent, JobRequest
from bot.errors import InputError, QuotaError
from bot.i18n import Msg
from bot.models import Mode, VideoOptions
from bot.zai import ZaiClient
from storage.credits import Credits
from storage.db import Database
from storage.jobs import Job, JobStore
from tests.conftest import FAST_POLLS, Recorder, make_engine
from tests.fakes.media import make_gif, make_png
from tests.fakes.zai import FakeZai, Fault
from tests.util import eventually, reason

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
    assert refused.state == "refused" and "content policy" in reason(refused.error_message)


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
        # Every task is held: exactly the two jobs given the freed slots start, no more.
        await rec.wait(JobEvent.STARTED, count=4)
        await eventually(lambda: len(fake_zai.processing()) == 2, what="freed slots refilled")
        started = [j.id for j in rec.of(JobEvent.STARTED)]
        assert set(started[:2]) == {greedy[0].id, greedy[1].id}
        # Fair: the late member takes one freed slot, greedy's next job the other (not its
        # next two). Jobs started in one pass are claimed in that order, but their submits run
        # concurrently, so their "started" reports may arrive in either order.
        assert set(started[2:]) == {late.id, greedy[2].id}
        fake_zai.hold_all = False
        fake_zai.finish_all()
        await eventually(lambda: not fake_zai.processing() and len(rec.of(JobEvent.FINISHED)) == 6)
        assert fake_zai.max_processing == 2  # the limit held throughout
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
    assert await eng.mark_undeliverable(job.id, Msg("undeliverable.channel_gone"))
    assert not await eng.mark_undeliverable(job.id, Msg("undeliverable.channel_gone"))
    assert (await db.fetchone("SELECT sum(delta) FROM credit_ledger"))[0] == 0


async def test_polls_record_the_interval_the_schedule_learns(
    engine: tuple[Engine, Recorder], fake_zai: FakeZai, db: Database
) -> None:
    """A task still running at a poll leaves last_running_at; its end teaches its shape."""
    eng, rec = engine
    fake_zai.hold_all = True
    job = await eng.submit(text(quality="speed"))
    await eventually(lambda: sum(fake_zai.polls.values()) >= 2, what="two polls")
    await eventually(lambda: _last_running(db, job.id), what="a running poll written")
    fake_zai.finish_all()
    [done] = await rec.wait(JobEvent.FINISHED)
    assert done.last_running_at is not None
    assert done.submitted_at < done.last_running_at < done.finished_at
    assert done.polls >= 3
    learned = eng.schedule.fit("cogvideox-3", {"quality": "speed"})
    assert learned is not None  # learned under its shape, from the recorded interval
    # A restart learns the same interval back from the database.
    again = Engine(JobStore(db), eng.credits, eng.provider, eng.config, eng.schedule.policy)
    again.schedule.observe_many(await again.store.recent_observations())
    recovered = again.schedule.fit("cogvideox-3", {"quality": "speed"})
    assert recovered is not None and recovered.mu == pytest.approx(learned.mu, rel=1e-3)


async def _last_running(db: Database, job_id: int) -> bool:
    """The job's last_running_at is written."""
    row = await db.fetchone("SELECT last_running_at FROM jobs WHERE id = ?", (job_id,))
    return row[0] is not None


async def test_submits_in_flight_are_bounded(
    db: Database, zai_client: ZaiClient, fake_zai: FakeZai
) -> None:
    """However many slots are free, at most submit_concurrency submits are in flight."""
    fake_zai.concurrency = 20
    fake_zai.script("submit", *[Fault.delay(0.2) for _ in range(6)])
    eng, rec = make_engine(
        db, zai_client, submit_concurrency=2, max_concurrent=20, max_inflight_per_user=20
    )
    await eng.start()
    try:
        for n in range(6):
            await eng.submit(text(user=100 + n, prompt=f"video {n}"))
        await rec.wait(JobEvent.FINISHED, count=6, timeout=30)
    finally:
        await eng.close()
    assert fake_zai.max_in_flight["submit"] == 2


class CountingStore(JobStore):
    """The job store, counting scheduler passes (each pass asks for due polls once)."""

    passes = 0

    async def due_polls(
        self, now: float, limit: int, exclude: Iterable[int] = (), owner: str = ""
    ) -> list[Job]:
        """Count, then answer as usual."""
        self.passes += 1
        return await super().due_polls(now, limit, exclude, owner)


async def test_a_poll_answer_does_not_cost_a_scheduler_pass(
    db: Database, zai_client: ZaiClient, fake_zai: FakeZai
) -> None:
    """A poll's answer moves the loop's planned wake-up instead of waking it: about one pass
    per poll (the old loop made two: one to start the poll, one when it was answered)."""
    fake_zai.hold_all = True
    store = CountingStore(db)
    eng = Engine(store, Credits(db, 10), zai_client, EngineConfig(), FAST_POLLS)
    await eng.start()
    try:
        await eng.submit(text())
        await eventually(lambda: sum(fake_zai.polls.values()) >= 3, what="polling")
        passes, polls = store.passes, sum(fake_zai.polls.values())
        await eventually(lambda: sum(fake_zai.polls.values()) >= polls + 20, what="20 polls")
        done = sum(fake_zai.polls.values()) - polls
        assert store.passes - passes <= 1.25 * done + 2
    finally:
        await eng.close()
