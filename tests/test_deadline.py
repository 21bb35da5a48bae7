"""Issue 10 item 10: a task that never leaves PROCESSING ends `timed_out` at its deadline,
refunded once, the member told; the provider's later answer is never collected."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.engine import Engine, JobEvent, JobRequest
from bot.models import Mode
from bot.schedule import PollPolicy, PollSchedule
from storage.states import JobState
from tests.conftest import Recorder
from tests.fakes.zai import FakeZai, Fault
from tests.harness import Harness, harness
from tests.test_e2e import private_text, slash
from tests.test_moderation import spent
from tests.util import eventually

MODEL = "cogvideox-3"


def test_the_deadline_is_the_floor_or_k_times_the_learned_slow_time() -> None:
    schedule = PollSchedule(PollPolicy(), {MODEL: 60.0})
    assert schedule.deadline(MODEL) == 1800.0  # prior: 3 × 120 s is below the 30-minute floor
    schedule.learn(MODEL, [700.0] * 50)  # a model that has become slow
    fit = schedule.fit(MODEL)
    assert fit is not None
    # 3 × the learned 99th percentile: a little above 3 × 700 s (the fit keeps some spread).
    assert schedule.deadline(MODEL) == 3 * fit.quantile(0.99)
    assert 2100.0 <= schedule.deadline(MODEL) <= 2600.0
    scaled = PollSchedule(PollPolicy().scaled(0.01), {MODEL: 60.0})
    assert scaled.deadline(MODEL) == 18.0


async def _status(h: Harness, words: str) -> str:
    """Wait for the job's status message to contain `words`."""
    found = await eventually(
        lambda: next((m.content for m in h.bot_messages() if words in m.content), None),
        what=f"a status saying {words!r}",
    )
    return str(found)


async def test_a_task_that_never_finishes_times_out_once(tmp_path: Path) -> None:
    # 0.01 minutes = 0.6 s: the production floor scaled down, against a fake that never finishes.
    async with harness(tmp_path, task_deadline_minutes=0.01, zai={"hold_all": True}) as h:
        assert h.resources is not None
        engine, db = h.resources.engine, h.resources.db
        engine.schedule.learn(MODEL, [0.01] * 5)  # learned: fast, so the floor applies
        assert "Accepted" in await private_text(await slash(h, "text", prompt="a slow sunrise"))
        status = await _status(h, "did not finish this video")
        assert "credit was refunded" in status and "⌛" in status
        [task_id] = list(h.zai.tasks)
        row = await db.fetchone("SELECT state, refunded, submitted_at, finished_at FROM jobs")
        assert (row["state"], row["refunded"]) == ("timed_out", 1)
        assert row["finished_at"] - row["submitted_at"] >= 0.6
        assert await spent(h) == 0
        quota = await private_text(await h.discord.slash(h.guild, h.channel, h.alice, "quota"))
        assert "**10** of 10" in quota
        polls = h.zai.polls.get(task_id, 0)
        assert polls >= 1
        # The provider finishes later: the bot never asks again, nothing is posted or charged.
        h.zai.finish(task_id)
        mark = engine.last_pass
        engine.wake()
        await eventually(lambda: engine.last_pass > mark, what="a scheduler pass")
        assert h.zai.polls.get(task_id, 0) == polls
        assert not [m for m in h.bot_messages() if "your video is ready" in m.content]
        reasons = await db.fetchall("SELECT reason FROM credit_ledger ORDER BY id")
        assert [r[0] for r in reasons] == ["reserve", "refund"]
        jobs = await private_text(await h.discord.slash(h.guild, h.channel, h.alice, "jobs"))
        assert "timed_out" in jobs and "did not finish" in jobs


async def test_an_answer_after_the_job_ended_is_logged_and_ignored(
    engine: tuple[Engine, Recorder], fake_zai: FakeZai, caplog: pytest.LogCaptureFixture
) -> None:
    eng, rec = engine
    caplog.set_level(logging.WARNING, logger="bot.engine")
    fake_zai.hold_all = True
    fake_zai.script("poll", Fault.delay(0.5))  # the first poll is still out when the job ends
    job = await eng.submit(JobRequest(1, 2, 3, MODEL, Mode.TEXT, "late"))
    await eventually(lambda: fake_zai.in_flight["poll"] == 1, what="a poll in flight")
    [task_id] = list(fake_zai.tasks)
    fake_zai.finish(task_id)  # the held poll will answer SUCCESS
    ended = await eng.store.end(
        job.id,
        JobState.TIMED_OUT,
        "timed_out",
        "gave up",
        refund=True,
        from_states=(JobState.PROCESSING,),
    )
    assert ended
    await eventually(
        lambda: "came after the job ended; ignored" in caplog.text, what="the log line"
    )
    assert rec.of(JobEvent.FINISHED) == []
    row = await eng.job(job.id)
    assert row is not None and row.state is JobState.TIMED_OUT and row.video_url is None
    total = await eng.store.db.fetchone("SELECT sum(delta) FROM credit_ledger")
    assert total[0] == 0
