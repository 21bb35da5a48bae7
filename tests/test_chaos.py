"""Provider faults: random errors, timeouts, slow bodies, lost answers, and a long outage.

Every job still ends: delivered, or (only where the provider may have the task but its answer
was lost) failed as `submit_unconfirmed`, refunded once, the user told. Nothing is lost, no
request is sent twice, Retry-After is honoured and polls stay bounded.
"""

from __future__ import annotations

import contextlib
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from bot.engine import Engine, EngineConfig, JobEvent, JobRequest
from bot.models import Mode
from bot.schedule import PollPolicy
from bot.zai import ZaiClient
from storage.credits import Credits
from storage.db import Database
from storage.jobs import Job, JobStore
from tests.conftest import FAST_POLLS, Recorder
from tests.fakes.zai import FakeZai, Fault, RequestRecord
from tests.harness import Harness, harness
from tests.util import eventually

RETRY_AFTER = 0.3
# A read timeout much shorter than the bot's 60 s, so that `delay` faults become timeouts.
SHORT_TIMEOUT = httpx.Timeout(connect=2.0, read=0.4, write=2.0, pool=10.0)
AMBIGUOUS = ("reset", "accept_then_drop", "timeout")  # the submit's answer is lost
FINAL = ("delivered", "failed", "refused", "undeliverable", "rejected")


def chaos(*, timeouts: bool) -> list[Fault]:
    """What the fake picks from: 429/1302 with Retry-After, 500, reset, slow answers, lost answers."""
    slow = Fault.delay(1.0) if timeouts else Fault.delay(0.2)  # 1 s > the 0.4 s read timeout
    return [
        Fault.http(429, "1302", "rate limit", retry_after=RETRY_AFTER),
        Fault.http(500, "500", "internal error"),
        Fault.reset(),
        slow,
        Fault.slow_body(0.2),
        Fault.accept_then_drop(),
    ]


def generation_times(seed: int, low: float, high: float) -> Callable[[str, dict[str, Any]], float]:
    """Seeded random generation times."""
    rng = random.Random(seed)
    return lambda _model, _body: rng.uniform(low, high)


def lost_answer(record: RequestRecord, timeouts: bool) -> str | None:
    """The kind of a submit fault after which the bot cannot know whether the task exists."""
    fault = record.fault
    if record.kind != "submit" or fault is None:
        return None
    if fault.kind in ("reset", "accept_then_drop"):
        return fault.kind
    return "timeout" if timeouts and fault.kind == "delay" else None


def check_retry_after(log: list[RequestRecord]) -> int:
    """Every request that followed a 429 with Retry-After, for the same job or task, waited."""
    checked = 0
    for index, record in enumerate(log):
        if record.fault is None or record.fault.retry_after is None:
            continue
        later = [r for r in log[index + 1 :] if r.kind == record.kind and r.key == record.key]
        if later:
            assert later[0].at - record.at >= record.fault.retry_after, (record, later[0])
            checked += 1
    return checked


def check_polls_bounded(fake: FakeZai, interval: float) -> None:
    """At most 8 polls in flight, and no task polled faster than the schedule allows."""
    assert fake.max_in_flight["poll"] <= EngineConfig().poll_concurrency
    assert fake.max_in_flight["submit"] <= EngineConfig().max_concurrent
    for task_id in fake.tasks:
        polls = [r for r in fake.request_log if r.kind == "poll" and r.key == task_id]
        if not polls:
            continue
        faulted = sum(r.fault is not None for r in polls)
        span = polls[-1].at - polls[0].at
        assert len(polls) <= faulted + span / interval + 2, (task_id, len(polls), faulted, span)


def no_request_twice(fake: FakeZai) -> None:
    """The provider accepted each request_id at most once."""
    counts = Counter(body["request_id"] for body in fake.submits)
    assert counts and max(counts.values()) == 1


def figures(name: str, jobs: list[Job], fake: FakeZai, extra: str = "") -> None:
    """Print the run's figures (docs/reliability.md quotes them; shown with `pytest -s`)."""
    states = Counter(j.state for j in jobs)
    faults = Counter(f"{kind}:{fault.kind}" for kind, fault in fake.faults_applied)
    print(
        f"\n[{name}] jobs={len(jobs)} requests={len(fake.request_log)} "
        f"faults={sum(faults.values())} {dict(sorted(faults.items()))} "
        f"ends={dict(states)} lost=0 duplicated=0 {extra}"
    )


# --------------------------------------------------------------------------- engine level


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """A fresh database file."""
    database = await Database.open(tmp_path / "data" / "bot.db")
    yield database
    await database.close()


@contextlib.asynccontextmanager
async def engine_against(
    fake: FakeZai, db: Database, policy: PollPolicy, **config: int
) -> AsyncIterator[tuple[Engine, Recorder]]:
    """An engine with its own HTTP client (short timeouts), started; closed after."""
    async with httpx.AsyncClient(timeout=SHORT_TIMEOUT) as http:
        provider = ZaiClient(http, fake.base_url, SecretStr(fake.api_key))
        engine = Engine(JobStore(db), Credits(db, 100), provider, EngineConfig(**config), policy)
        recorder = Recorder()
        engine.listener = recorder
        await engine.start()
        try:
            yield engine, recorder
        finally:
            await engine.close()


def request(user: int, n: int) -> JobRequest:
    """A text request of `user`."""
    return JobRequest(1, 10, user, "cogvideox-3", Mode.TEXT, f"user {user} video {n}")


async def test_random_provider_faults_lose_nothing_and_send_nothing_twice(db: Database) -> None:
    fake = FakeZai(
        fault_rate=0.2,
        seed=20251121,
        chaos_faults=chaos(timeouts=True),
        generation_seconds=generation_times(5, 0.05, 0.3),
    )
    async with fake:
        async with engine_against(fake, db, FAST_POLLS, max_inflight_per_user=5) as (
            engine,
            recorder,
        ):
            for n in range(5):
                for user in range(100, 112):
                    await engine.submit(request(user, n))
            await eventually(
                lambda: (
                    len(recorder.of(JobEvent.FINISHED)) + len(recorder.of(JobEvent.FAILED)) >= 60
                ),
                timeout=60,
                what="all 60 jobs to end",
            )
            jobs = [j for j in [await engine.store.get(i) for i in range(1, 61)] if j]
    lost = Counter(k for r in fake.request_log if (k := lost_answer(r, timeouts=True)))
    failed = [j for j in jobs if j.state == "failed"]
    assert len(jobs) == 60
    assert {j.state for j in jobs} <= {"succeeded", "failed"}
    assert {j.error_code for j in failed} <= {"submit_unconfirmed"}
    assert len(failed) == sum(lost.values())  # exactly the submits whose answer was lost
    assert all(j.refunded == 1 for j in failed)
    known = {j.task_id for j in jobs if j.task_id}
    assert len(set(fake.tasks) - known) == lost["accept_then_drop"]  # made, answer lost: stated
    no_request_twice(fake)
    assert check_retry_after(fake.request_log) > 0
    check_polls_bounded(fake, FAST_POLLS.interval)
    assert len(fake.faults_applied) >= 20
    figures("engine chaos", jobs, fake, f"submit_unconfirmed={len(failed)} {dict(lost)}")


def scaled(policy: PollPolicy, factor: float) -> PollPolicy:
    """The production policy with every duration multiplied by `factor`."""
    return replace(
        policy,
        interval=policy.interval * factor,
        min_first=policy.min_first * factor,
        max_interval=policy.max_interval * factor,
        prior_low=policy.prior_low * factor,
        prior_high=policy.prior_high * factor,
        retry_base=policy.retry_base * factor,
        retry_max=policy.retry_max * factor,
    )


SCALE = 0.01  # 1 s of test time is 100 s of production time
OLD_SUBMIT_BUDGET = 8  # attempts after which a job used to fail (~3-5 minutes of outage)


async def test_a_provider_outage_of_minutes_delays_jobs_but_loses_none(db: Database) -> None:
    """The provider is unreachable for longer than the old retry budget (8 attempts)."""
    policy = scaled(PollPolicy(), SCALE)
    async with FakeZai(generation_seconds=60 * SCALE) as fake:
        async with engine_against(fake, db, policy, max_concurrent=10, max_inflight_per_user=5) as (
            engine,
            recorder,
        ):
            for user in range(1, 6):
                await engine.submit(request(user, 0))
            await recorder.wait(JobEvent.STARTED, 5)
            port = fake.port
            await fake.stop()  # connection refused from now on: polls and submits fail
            for user in range(6, 11):
                await engine.submit(request(user, 0))
            waiting = await eventually(
                lambda: _past_old_budget(engine, range(6, 11)),
                timeout=60,
                what="new jobs to outlast the old retry budget",
            )
            await fake.start(port)
            await recorder.wait(JobEvent.FINISHED, 10, timeout=60)
            jobs = [j for j in [await engine.store.get(i) for i in range(1, 11)] if j]
    assert [j.state for j in jobs] == ["succeeded"] * 10
    assert min(j.attempts for j in waiting) > OLD_SUBMIT_BUDGET
    no_request_twice(fake)
    minutes = _outage_minutes(waiting)
    refused = sum(j.attempts for j in jobs) - len(jobs)
    figures("outage", jobs, fake, f"refused submits={refused} outage~{minutes:.1f} prod. min")


async def _past_old_budget(engine: Engine, job_ids: range) -> list[Job] | None:
    """The jobs, once each one failed more submit attempts than the old budget allowed."""
    jobs = [await engine.store.get(i) for i in job_ids]
    assert all(j is not None and j.state in ("queued", "submitting") for j in jobs), jobs
    done = all(j is not None and j.attempts > OLD_SUBMIT_BUDGET for j in jobs)
    return [j for j in jobs if j is not None] if done else None


def _outage_minutes(jobs: list[Job]) -> float:
    """How long the outage had lasted, in production minutes, when the provider came back."""
    seconds = max(j.updated_at for j in jobs) - min(j.created_at for j in jobs)
    return seconds / SCALE / 60


# --------------------------------------------------------------------------- the whole bot


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    """The real bot against a Z.AI fake that fails 20% of submits, polls and downloads."""
    zai = {
        "fault_rate": 0.2,
        "seed": 7,
        "chaos_faults": chaos(timeouts=False),
        "generation_seconds": generation_times(11, 0.05, 0.3),
    }
    async with harness(tmp_path, zai=zai) as running:
        yield running


async def test_every_job_ends_once_through_the_real_bot(h: Harness) -> None:
    users = [h.alice, h.bob, h.mod]
    for n in range(5):
        user = h.discord.add_user(f"member{n}")
        h.discord.add_member(h.guild, user)
        users.append(user)
    for n in range(3):
        for user in users:
            await h.discord.slash(
                h.guild, h.channel, user, "video", subcommand="text",
                options={"prompt": f"{user.username} #{n}"},
            )  # fmt: skip
    jobs = await _all_ended(h, 3 * len(users))
    lost = Counter(k for r in h.zai.request_log if (k := lost_answer(r, timeouts=False)))
    failed = [j for j in jobs if j.state != "delivered"]
    assert {(j.state, j.error_code, j.refunded) for j in failed} <= {
        ("failed", "submit_unconfirmed", 1)
    }
    assert len(failed) == sum(lost.values())
    for job in jobs:
        posted = [m for m in h.discord.messages(h.channel) if m.nonce == f"job-{job.id}"]
        assert len(posted) == (1 if job.state == "delivered" else 0), job
    for job in failed:
        await eventually(lambda job=job: _told(h, job), what=f"job {job.id}'s refund notice")
    no_request_twice(h.zai)
    assert any(kind == "media" for kind, _ in h.zai.faults_applied)
    figures("bot chaos", jobs, h.zai, f"submit_unconfirmed={len(failed)}")


async def _all_ended(h: Harness, count: int) -> list[Job]:
    """Wait for `count` jobs to reach a final state."""
    assert h.resources is not None
    store = h.resources.engine.store

    async def ended() -> list[Job] | None:
        """All the jobs, once every one is final."""
        jobs = [await store.get(i) for i in range(1, count + 1)]
        done = all(j is not None and j.state in FINAL for j in jobs)
        return [j for j in jobs if j is not None] if done else None

    return await eventually(ended, timeout=90, what=f"{count} jobs to end")


def _told(h: Harness, job: Job) -> bool:
    """The job's status message says the credit was refunded."""
    return any(
        m.nonce == f"status-{job.id}" and "refunded" in m.content
        for m in h.discord.messages(h.channel)
    )
