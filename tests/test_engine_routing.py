"""The engine with several providers (issue 13): routing, fallback, links, progress.

The real engine and database against the reseller fake (Z.AI format, offering cogvideox-2), the
New-API gateway fake and the GeekAI fake; pictures for URL-only providers are published on the
fake CDN, and the gateways fetch and decode them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import httpx
import pytest
from pydantic import SecretStr

from bot.engine import Engine, EngineConfig, JobEvent, JobRequest
from bot.models import Mode
from bot.providers import Picture, ProviderName, VideoRequest
from bot.providers.geekai import GeekaiClient
from bot.providers.newapi import NewApiClient
from bot.providers.routing import Router
from bot.providers.zai_format import ZaiFormatProvider
from bot.zai import ZaiClient
from storage.credits import Credits
from storage.db import Database
from storage.jobs import Job, JobStore
from storage.states import JobState
from tests.conftest import FAST_POLLS, Recorder
from tests.fakes.cdn import FakeCdn
from tests.fakes.geekai import FakeGeekai
from tests.fakes.media import make_png
from tests.fakes.newapi import FakeNewApi
from tests.fakes.reseller import FakeReseller
from tests.fakes.taskapi import Fault
from tests.fakes.zai import Fault as ZaiFault
from tests.util import reason

PNG = make_png(320, 240)


class Watching(Recorder):
    """A recording listener that notes the progress figure at each PROGRESS event."""

    def __init__(self, cdn: FakeCdn, engine: Engine) -> None:
        super().__init__()
        self.cdn = cdn
        self.engine = engine
        self.progress: list[int | None] = []

    async def job_event(self, event: JobEvent, job: Job) -> None:
        """Record, and the progress figure the engine holds at a PROGRESS event."""
        if event is JobEvent.PROGRESS:
            self.progress.append(self.engine.progress_of(job.id))
        await super().job_event(event, job)


class Publishing(Watching):
    """... and publishes pictures on the fake CDN (the Discord front end's role)."""

    async def publish_pictures(self, job: Job, pictures: Sequence[Picture]) -> Sequence[str]:
        """Expiring links on the fake CDN."""
        return await self.cdn.publish(
            VideoRequest(job.model, Mode(job.mode), None, {}, tuple(pictures))
        )


@dataclass
class World:
    """A started engine and the fakes behind it."""

    engine: Engine
    events: Watching
    reseller: FakeReseller
    newapi: FakeNewApi
    geekai: FakeGeekai

    async def ask(self, model: str, mode: Mode, prompt: str | None = "waves") -> Job:
        """Quote and accept a request with the mode's pictures."""
        count = {Mode.TEXT: 0, Mode.IMAGE: 1, Mode.FRAMES: 2, Mode.REFERENCE: 2}[mode]
        request = JobRequest(1, 2, 3, model, mode, prompt, images=(PNG,) * count)
        return await self.engine.submit(request)

    async def ended(self, job: Job, timeout: float = 10.0) -> Job:
        """The job once it finished or failed."""

        def done() -> bool:
            ends = (JobEvent.FINISHED, JobEvent.FAILED)
            return any(ev in ends and j.id == job.id for ev, j in self.events.events)

        async with self.events._changed:
            await asyncio.wait_for(self.events._changed.wait_for(done), timeout)
        final = await self.engine.job(job.id)
        assert final is not None
        return final


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeReseller, FakeNewApi, FakeGeekai, FakeCdn]]:
    """The three APIs and the CDN."""
    async with (
        FakeReseller() as reseller,
        FakeNewApi(fetch_pictures=True, generation_seconds=0.3) as newapi,
        FakeGeekai(fetch_pictures=True) as geekai,
        FakeCdn() as cdn,
    ):
        yield reseller, newapi, geekai, cdn


async def world(
    db: Database,
    http: httpx.AsyncClient,
    fakes: tuple[FakeReseller, FakeNewApi, FakeGeekai, FakeCdn],
    *,
    fallback: bool,
    publish: bool = True,
) -> World:
    """An engine routing over the reseller (cogvideox-3, cogvideox-2), the gateway and GeekAI."""
    reseller, newapi, geekai, cdn = fakes
    zai = ZaiClient(http, reseller.base_url, SecretStr(reseller.api_key))
    providers = [
        ZaiFormatProvider(zai, ["cogvideox-3", "cogvideox-2"]),
        NewApiClient(http, newapi.base_url, SecretStr(newapi.api_key)),
        GeekaiClient(http, SecretStr(geekai.api_key), geekai.base_url),
    ]
    router = Router(providers, fallback=fallback)
    engine = Engine(JobStore(db), Credits(db, 10), zai, EngineConfig(), FAST_POLLS, router=router)
    events = (Publishing if publish else Watching)(cdn, engine)
    engine.listener = events
    await engine.start()
    return World(engine, events, reseller, newapi, geekai)


@pytest.fixture
async def on(db, http, fakes) -> AsyncIterator[World]:  # type: ignore[no-untyped-def]
    """Fallback on."""
    w = await world(db, http, fakes, fallback=True)
    yield w
    await w.engine.close()


@pytest.fixture
async def off(db, http, fakes) -> AsyncIterator[World]:  # type: ignore[no-untyped-def]
    """Fallback off (the default)."""
    w = await world(db, http, fakes, fallback=False)
    yield w
    await w.engine.close()


async def test_first_configured_provider_wins_and_is_stored(on: World) -> None:
    job = await on.ask("cogvideox-2", Mode.TEXT)
    assert job.provider == ProviderName.ZAI
    final = await on.ended(job)
    assert final.state is JobState.SUCCEEDED and on.geekai.submits == []
    viduq3 = await on.ended(await on.ask("viduq3p-540p", Mode.IMAGE))
    assert viduq3.provider == ProviderName.GATEWAY and viduq3.state is JobState.SUCCEEDED


REFUSALS = [
    pytest.param(ZaiFault.http(429, "1113", "balance exhausted"), id="balance-1113"),
    pytest.param(ZaiFault.http(429, "1305", "overloaded"), id="overload-1305"),
    pytest.param(ZaiFault.http(503, "503", "unavailable"), id="outage-503"),
]


@pytest.mark.parametrize("fault", REFUSALS)
async def test_a_refused_submit_moves_to_the_next_provider(on: World, fault: ZaiFault) -> None:
    on.reseller.script("submit", fault)
    job = await on.ask("cogvideox-2", Mode.IMAGE)
    final = await on.ended(job)
    assert final.state is JobState.SUCCEEDED and final.provider == ProviderName.GEEKAI
    assert on.reseller.tasks == {} and len(on.geekai.submits) == 1
    assert len(on.geekai.fetched) == 1  # the picture went as a link GeekAI could fetch
    assert final.refunded == 0 and final.cost == 1  # charged once, by the quote
    assert on.events.of(JobEvent.HALTED) == []  # the job moved: nothing to stop


async def test_without_fallback_a_balance_refusal_ends_refunded(off: World) -> None:
    off.reseller.script("submit", ZaiFault.http(429, "1113", "balance exhausted"))
    final = await off.ended(await off.ask("cogvideox-2", Mode.TEXT))
    assert final.state is JobState.FAILED and final.refunded == 1
    assert final.provider == ProviderName.ZAI and off.geekai.submits == []
    assert off.events.of(JobEvent.HALTED)


async def test_a_lost_submit_answer_is_never_moved_nor_resent(on: World) -> None:
    on.reseller.script("submit", ZaiFault.accept_then_drop())
    final = await on.ended(await on.ask("cogvideox-2", Mode.TEXT))
    assert final.state is JobState.FAILED and final.error_code == "submit_unconfirmed"
    assert final.refunded == 1 and final.provider == ProviderName.ZAI
    assert len(on.reseller.tasks) == 1 and on.geekai.submits == []  # one task, never a second


async def test_a_lost_gateway_submit_is_not_resent(on: World) -> None:
    on.newapi.script("submit", Fault.accept_then_drop())
    final = await on.ended(await on.ask("viduq3p-720p", Mode.TEXT))
    assert final.error_code == "submit_unconfirmed" and final.refunded == 1
    assert len(on.newapi.tasks) == 1


async def test_a_gateway_504_is_ambiguous_not_a_fallback(on: World) -> None:
    on.geekai.script("submit", Fault.http(504, "504", "upstream timed out"))
    final = await on.ended(await on.ask("cogvideox", Mode.TEXT))
    assert final.error_code == "submit_unconfirmed" and final.refunded == 1
    assert on.reseller.tasks == {} and on.newapi.submits == []


async def test_a_rate_limit_waits_at_the_same_provider(on: World) -> None:
    on.reseller.script("submit", ZaiFault.http(429, "1302", "too many requests"))
    final = await on.ended(await on.ask("cogvideox-2", Mode.TEXT))
    assert final.state is JobState.SUCCEEDED and final.provider == ProviderName.ZAI
    assert on.geekai.submits == []


async def test_progress_is_reported_and_forgotten(on: World) -> None:
    job = await on.ask("viduq3t-540p", Mode.TEXT)
    final = await on.ended(job)
    assert final.state is JobState.SUCCEEDED
    shown = on.events.progress
    assert shown and all(p is not None and 0 <= p <= 100 for p in shown)
    assert shown == sorted(shown)  # the throttle shows figures in order, never a step back
    assert on.engine.progress_of(job.id) is None


async def test_no_front_end_to_publish_refunds_clearly(db, http, fakes) -> None:  # type: ignore[no-untyped-def]
    w = await world(db, http, fakes, fallback=False, publish=False)
    try:
        final = await w.ended(await w.ask("viduq3p-720p", Mode.IMAGE))
    finally:
        await w.engine.close()
    assert final.error_code == "picture_link_unavailable" and final.refunded == 1
    assert "takes pictures only as links" in reason(final.error_message)
    assert w.newapi.submits == []


async def test_progress_predicts_the_next_poll(db: Database) -> None:
    """With progress, the next poll comes at the predicted finish, within the schedule's
    spacing and its longest gap; without it, the learned schedule."""
    from types import SimpleNamespace

    from bot.provider import TaskState, TaskStatus
    from bot.schedule import PollPolicy

    policy = PollPolicy()
    engine = Engine(JobStore(db), Credits(db, 10), None, policy=policy)  # type: ignore[arg-type]
    job = SimpleNamespace(model="viduq3p-720p", options={})

    def at(progress: int | None) -> float:
        state = TaskState(TaskStatus.PROCESSING, progress=progress)
        return engine._next_delay(job, 30.0, state)  # type: ignore[arg-type]

    assert at(None) == engine.schedule.next_delay("viduq3p-720p", 30.0)
    assert at(75) == pytest.approx(10.0)  # 30 s for 75%: 10 s left, one poll then
    assert at(97) == policy.interval  # nearly done: never sooner than the schedule's spacing
    assert at(10) == policy.max_interval  # far from done: wait, but not past the longest gap
    assert at(2) == engine.schedule.next_delay("viduq3p-720p", 30.0)  # too early to say


async def test_a_blocked_gateway_account_pauses_only_that_provider(off: World) -> None:
    from bot.errors import QuotaError

    off.newapi.script("submit", Fault.http(403, "insufficient_user_quota", "quota exhausted"))
    failed = await off.ended(await off.ask("viduq3p-720p", Mode.TEXT))
    assert failed.state is JobState.FAILED and failed.refunded == 1
    [halted] = off.events.of(JobEvent.HALTED)
    assert halted.provider == ProviderName.GATEWAY and "gateway" in (off.engine.halt_reason or "")
    with pytest.raises(QuotaError):  # new gateway work is refused before anything is spent
        await off.ask("viduq3t-540p", Mode.TEXT)
    other = await off.ended(await off.ask("cogvideox-3", Mode.TEXT))  # Z.AI goes on
    assert other.state is JobState.SUCCEEDED and other.provider == ProviderName.ZAI


async def test_extend_continues_a_gateway_video_in_its_family(on: World) -> None:
    assert on.engine._extend_model("viduq3t-720p") == "viduq3t-720p"  # it animates pictures
    assert on.engine._extend_model("viduq3p-mix-720p") == "viduq3p-540p"  # references only
    assert on.engine._extend_model("cogvideox-flash") == "cogvideox-flash"
    carried = on.engine._carry("viduq3p-540p", {"duration": 12, "aspect_ratio": "9:16"})
    assert carried.duration == 12 and carried.aspect_ratio is None  # image videos follow the frame
