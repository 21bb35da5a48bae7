"""The engine: accepts requests, schedules submits and polls, reports job events.

Data flows one way: validate → reserve credit and queue (one transaction) → submit when a
provider slot is free → poll on the learned schedule → report finished or failed (refunded).
The front end receives events through a `JobListener` and reports delivery back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from bot import models
from bot.errors import InputError, ProviderError, ProviderErrorKind, QuotaError
from bot.failpoints import failpoint
from bot.images import ImageInfo, fit_image, inspect_image
from bot.models import Mode, VideoOptions
from bot.moderation import ModeratorActions
from bot.policy import Policy
from bot.provider import TaskState, TaskStatus, VideoProvider
from bot.providers import (
    Picture,
    PictureTransport,
    ProviderName,
    RoutedProvider,
    VideoRequest,
    catalog,
    progress,
    with_links,
)
from bot.providers.routing import Router
from bot.providers.zai_format import ZaiFormatProvider
from bot.schedule import PollPolicy, PollSchedule
from bot.tasks import spawn
from storage.credits import Balance, Credits, day_key
from storage.errors import RefusalKind, Refused
from storage.jobs import Job, JobStore, NewJob, StoredImage
from storage.moderation import ModerationStore
from storage.states import JobState

log = logging.getLogger(__name__)

T = TypeVar("T")
# The cost table's pseudo-option for a price per provider (`cost set model credits provider gateway`).
PROVIDER_OPTION = "provider"


class Origin(StrEnum):
    """How a member asked: every entry point goes through Engine.quote then Engine.accept."""

    SLASH = "slash"
    MENU = "menu"
    MENTION = "mention"
    REROLL = "reroll"
    EXTEND = "extend"


def refusal_text(exc: Refused) -> str:
    """The member's message for a refusal of the store."""
    if exc.kind is RefusalKind.IN_FLIGHT:
        return (
            f"You already have {exc.count} video(s) in progress (the limit is {exc.limit}). "
            "Wait for one to finish, then ask again."
        )
    if exc.kind is RefusalKind.CREDITS:
        return (
            f"You have no credits left for this today (this costs {exc.cost}). "
            "Credits reset at 00:00 UTC; `/quota` shows when."
        )
    return (
        "This server has used all the video credits its moderators allow per day. "
        "Credits reset at 00:00 UTC; try again then."
    )


class JobEvent(StrEnum):
    """What the engine tells the front end."""

    QUEUED = "queued"
    STARTED = "started"
    FINISHED = "finished"
    FAILED = "failed"
    HALTED = "halted"  # the provider account cannot take work (balance, auth): tell moderators
    PENDING_APPROVAL = "pending_approval"  # waiting for a moderator's decision
    PROGRESS = "progress"  # the provider reported a new progress figure (throttled)


class JobListener(Protocol):
    """The front end's side of the engine."""

    async def job_event(self, event: JobEvent, job: Job) -> None:
        """Called (in its own task) for every job event."""
        ...

    async def publish_pictures(self, job: Job, pictures: Sequence[Picture]) -> Sequence[str]:
        """Expiring http(s) links to a job's pictures, for a provider that takes URLs only."""
        ...


NO_PUBLISHER = (
    "{model} takes pictures only as links, and this bot has no way to publish them. "
    "Nothing was charged; pick another model."
)
NO_LINK = (
    "{model} takes pictures only as links, and the bot could not make one for yours. "
    "Your credit was refunded; try again, or pick a model of the bot's main service."
)


@dataclass(frozen=True)
class JobRequest:
    """A user's request as the front end hands it over (images already downloaded)."""

    guild_id: int
    channel_id: int
    user_id: int
    model: str
    mode: Mode
    prompt: str | None
    options: VideoOptions = field(default_factory=VideoOptions)
    images: Sequence[bytes] = ()
    origin: Origin = Origin.SLASH
    parent_job_id: int | None = None
    upload_limit: int | None = None


@dataclass(frozen=True)
class Quote:
    """A request that passed every check that needs no picture; accepting it charges `cost`."""

    request: JobRequest
    prompt: str | None  # cleaned
    cost: int
    state: JobState  # where an accepted job starts: the queue, or the approval queue
    reuse_inputs: bool = False  # a re-roll: the parent job's stored pictures
    provider: ProviderName = ProviderName.ZAI  # the first configured one offering the model


@dataclass(frozen=True)
class EngineConfig:
    """Limits the engine enforces."""

    max_concurrent: int = 5  # ZAI_MAX_CONCURRENT_TASKS
    max_inflight_per_user: int = 2
    poll_concurrency: int = 8  # polls in flight at once: httpx slows down past ~8-16
    max_submit_attempts: int = 20  # ~30 min of backoff: an outage of minutes delays, never fails
    halt_seconds: float = 300.0  # after an account error, wait this long before trying again


def prepare_images(
    model: str, mode: Mode, images: Sequence[bytes], api: ProviderName = ProviderName.ZAI
) -> tuple[StoredImage, ...]:
    """Inspect, check against the model's rules and fit under its byte limit (CPU-bound)."""
    return prepare_pictures(model, mode, images, api)[0]


def prepare_pictures(
    model: str, mode: Mode, images: Sequence[bytes], api: ProviderName = ProviderName.ZAI
) -> tuple[tuple[StoredImage, ...], bool]:
    """prepare_images, and whether an animation was reduced to its first frame."""
    infos: list[ImageInfo] = [inspect_image(data) for data in images]
    if api is ProviderName.ZAI and model in models.MODELS:
        spec = models.get_spec(model)
        models.check_images(model, mode, infos)
        max_bytes, formats = spec.max_image_bytes, spec.image_formats
    else:  # a gateway model (or a reseller's): the catalog's rules at that API
        rules = catalog.rules_for(api, model)
        catalog.check_pictures(rules, mode, infos)
        max_bytes, formats = rules.max_image_bytes, rules.image_formats
    stored = []
    for data in images:
        fitted, mime = fit_image(data, max_bytes=max_bytes, formats=formats)
        info = inspect_image(fitted)
        stored.append(StoredImage(mime, info.width, info.height, fitted))
    return tuple(stored), any(info.animated for info in infos)


class Engine:
    """One per process: owns the scheduler loop; all state lives in the database."""

    def __init__(
        self,
        store: JobStore,
        credits: Credits,
        provider: VideoProvider,
        config: EngineConfig | None = None,
        policy: PollPolicy | None = None,
        moderation: ModerationStore | None = None,
        router: Router | None = None,
    ) -> None:
        self.store = store
        self.credits = credits
        self.moderation = moderation or ModerationStore(store.db)
        self.moderators: ModeratorActions = self.moderation  # what the Admin cog may use
        self.rules = Policy(self.moderation)
        self.provider = provider
        # Without a router (tests, scripts) the one provider serves the seven Z.AI models.
        self.router = router or Router([ZaiFormatProvider(provider)])  # type: ignore[arg-type]
        self.config = config or EngineConfig()
        typical = {rules.name: rules.typical_seconds for rules in catalog.CATALOG.values()}
        typical |= {name: spec.typical_seconds for name, spec in models.MODELS.items()}
        self._throttles: dict[int, progress.ProgressThrottle] = {}
        self._progress: dict[int, int] = {}  # last progress figure per job in flight
        self.schedule = PollSchedule(policy or PollPolicy(), typical)
        self.listener: JobListener | None = None
        self.halts: dict[str, float] = {}  # provider name -> until when it takes no work
        self.halt_reason: str | None = None
        self._wake = asyncio.Event()
        self._busy: set[int] = set()  # jobs with a submit or poll in flight
        self._submits: set[asyncio.Task[None]] = set()
        self._polls: set[asyncio.Task[None]] = set()
        self._events: set[asyncio.Task[None]] = set()
        self._poll_slots = asyncio.Semaphore(self.config.poll_concurrency)
        self._loop_task: asyncio.Task[None] | None = None
        self._closing = False
        self.last_pass = time.time()  # when the scheduler last looked at the database (/healthz)

    # --- accepting requests ---------------------------------------------------------------

    async def quote(self, request: JobRequest, *, reuse_inputs: bool = False) -> Quote:
        """Validate, apply the server's rules, price, and check credits and slots (no download).

        The one place a request is judged: every entry point asks for a quote first, shows its
        cost if needed, then accepts exactly that quote.
        """
        req = request
        provider, prompt = self._route(req)
        self._refuse_if_halted(provider.name)
        await self.rules.check(req.guild_id, req.channel_id, req.user_id, req.model, prompt)
        priced = req.options.given() | {PROVIDER_OPTION: provider.name.value}
        cost = await self.rules.cost(req.guild_id, req.model, priced)
        settings = await self.moderation.settings(req.guild_id)
        state = JobState.PENDING_APPROVAL if settings.approval_channel_id else JobState.QUEUED
        quote = Quote(req, prompt, cost, state, reuse_inputs, provider.name)
        limits = await self._limits(req)
        await self._refusing(quote, self.store.check_admission(self._new_job(quote), **limits))
        return quote

    def _route(self, req: JobRequest) -> tuple[RoutedProvider, str | None]:
        """The provider for a request (its rules checked) and the cleaned prompt."""
        prompt = models.clean_prompt(req.prompt)
        if req.model in models.MODELS:  # its own wording for an invisible-only prompt
            prompt = models.check_request(req.model, req.mode, req.prompt, req.options)
        provider = self.router.choose(
            VideoRequest(req.model, req.mode, prompt, req.options.given())
        )
        if (
            provider.picture_transport is PictureTransport.URL
            and req.mode is not Mode.TEXT
            and self.listener is None
        ):
            raise InputError(NO_PUBLISHER.format(model=req.model))
        return provider, prompt

    def models_for(self, mode: Mode) -> list[str]:
        """The models some configured provider offers in a mode (what the commands list)."""
        return [m for m in self.router.models() if mode in self.modes_of(m)]

    def modes_of(self, model: str) -> frozenset[Mode]:
        """The modes of a model at the first configured provider offering it."""
        providers = self.router.providers_for(model)
        if not providers:
            return frozenset()
        if providers[0].name is ProviderName.ZAI and model in models.MODELS:
            return models.get_spec(model).modes
        return catalog.rules_for(providers[0].name, model).modes

    def provider_of(self, model: str) -> ProviderName | None:
        """Which provider a new request for `model` goes to."""
        providers = self.router.providers_for(model)
        return providers[0].name if providers else None

    def offered_models(self) -> list[str]:
        """Every model the configured providers offer."""
        return self.router.models()

    def progress_of(self, job_id: int) -> int | None:
        """The last progress figure (0-100) a provider reported for a job in flight."""
        return self._progress.get(job_id)

    async def quote_again(self, job_id: int, user_id: int, origin: Origin) -> Quote:
        """Re-roll (same request and pictures) or Extend (an image job of the same family)."""
        job = await self.job(job_id)
        if job is None:
            raise InputError("That video is no longer known to the bot.")
        reroll = origin is Origin.REROLL
        model = job.model if reroll else self._extend_model(job.model)
        request = JobRequest(
            job.guild_id,
            job.channel_id,
            user_id,
            model,
            Mode(job.mode) if reroll else Mode.IMAGE,
            job.prompt,
            VideoOptions(**job.options) if reroll else self._carry(model, job.options),
            origin=origin,
            parent_job_id=job.id,
            upload_limit=job.upload_limit,
        )
        return await self.quote(request, reuse_inputs=reroll)

    def _extend_model(self, model: str) -> str:
        """The image model that continues a video of `model`: itself, else its family's."""
        if model in models.MODELS:
            return models.extend_model(model)
        if Mode.IMAGE in self.modes_of(model):
            return model
        image_models = self.models_for(Mode.IMAGE)
        same = [m for m in image_models if models.family(m) == models.family(model)]
        return same[0] if same else models.DEFAULT_MODEL[Mode.IMAGE]

    def _carry(self, model: str, options: dict[str, Any]) -> VideoOptions:
        """The options of a job that the Extend model also accepts."""
        if model in models.MODELS:
            return models.carry_options(model, options)
        provider = self.provider_of(model) or ProviderName.ZAI
        rules = catalog.rules_for(provider, model)
        kept = {
            k: v
            for k, v in options.items()
            if catalog.accepts(rules, Mode.IMAGE, k, v) and k in VideoOptions.__dataclass_fields__
        }
        return VideoOptions(**kept)

    async def accept(self, quote: Quote, images: Sequence[bytes] = ()) -> Job:
        """Check the pictures, then reserve the quoted cost and queue the job in one transaction."""
        req = quote.request
        stored = await self._pictures(quote, images)
        limits = await self._limits(req)
        job = await self._refusing(quote, self.store.create(self._new_job(quote), stored, **limits))
        log.info(
            "job %d accepted (%s): %s/%s for user %d",
            job.id,
            job.state,
            job.model,
            job.mode,
            job.user_id,
        )
        failpoint("after_accept")
        pending = job.state is JobState.PENDING_APPROVAL
        self._emit(JobEvent.PENDING_APPROVAL if pending else JobEvent.QUEUED, job)
        self.wake()
        return job

    async def submit(self, request: JobRequest) -> Job:
        """quote + accept with the request's pictures (tests, benchmarks, scripts)."""
        return await self.accept(await self.quote(request), request.images)

    async def _pictures(self, quote: Quote, images: Sequence[bytes]) -> tuple[StoredImage, ...]:
        """The job's pictures: the parent's for a re-roll, else checked and fitted (in a thread)."""
        req = quote.request
        if quote.reuse_inputs and req.parent_job_id is not None:
            return tuple(await self.store.inputs(req.parent_job_id))
        if req.mode is Mode.REFERENCE and req.model not in models.MODELS:
            catalog.check_references(quote.prompt, len(images))
        return await asyncio.to_thread(prepare_images, req.model, req.mode, images, quote.provider)

    @staticmethod
    def _new_job(quote: Quote) -> NewJob:
        """The row the store admits for a quote."""
        req = quote.request
        return NewJob(
            guild_id=req.guild_id,
            channel_id=req.channel_id,
            user_id=req.user_id,
            model=req.model,
            mode=req.mode.value,
            prompt=quote.prompt,
            options=req.options.given(),
            origin=req.origin,
            cost=quote.cost,
            request_id=uuid.uuid4().hex,
            parent_job_id=req.parent_job_id,
            state=quote.state,
            upload_limit=req.upload_limit,
            provider=quote.provider.value,
        )

    async def _limits(self, req: JobRequest) -> dict[str, Any]:
        """What the store admits a member's job within: credits, in-flight slots, server cap."""
        settings = await self.moderation.settings(req.guild_id)
        return {
            "allowance": await self.credits.allowance(req.guild_id, req.user_id),
            "max_inflight": self.config.max_inflight_per_user,
            "guild_cap": settings.daily_cap,
        }

    async def _refusing(self, quote: Quote, admission: Awaitable[T]) -> T:
        """Run a store admission; its refusal becomes the member's message (and is audited)."""
        try:
            return await admission
        except Refused as exc:
            error = QuotaError(refusal_text(exc))
        req = quote.request
        await self.moderation.audit(req.guild_id, req.user_id, "refused", error.user_message)
        raise error

    async def approve(self, job_id: int, moderator_id: int) -> bool:
        """A moderator lets a pending job into the queue."""
        if not await self.store.approve(job_id, moderator_id):
            return False
        job = await self.store.get(job_id)
        if job is not None:
            await self.moderation.audit(
                job.guild_id, moderator_id, "approve", f"job {job_id}", job.user_id
            )
            log.info("job %d approved by %d", job_id, moderator_id)
            self._emit(JobEvent.QUEUED, job)
        self.wake()
        return True

    async def reject(self, job_id: int, moderator_id: int, reason: str) -> bool:
        """A moderator refuses a pending job: refunded, with the reason."""
        text = f"Rejected by a moderator: {reason}. Your credit was refunded."
        ended = await self.store.end(
            job_id,
            JobState.REJECTED,
            "rejected",
            text,
            refund=True,
            from_states=(JobState.PENDING_APPROVAL,),
        )
        job = await self.store.get(job_id)
        if ended and job is not None:
            await self.store.set_decided_by(job_id, moderator_id)
            await self.moderation.audit(
                job.guild_id, moderator_id, "reject", f"job {job_id}: {reason}", job.user_id
            )
            log.info("job %d rejected by %d", job_id, moderator_id)
            await self._emit_job(JobEvent.FAILED, job_id)
        return ended

    @property
    def halted_until(self) -> float:
        """Until when Z.AI (the default provider) takes no new work."""
        return self.halts.get(ProviderName.ZAI, 0.0)

    @halted_until.setter
    def halted_until(self, until: float) -> None:
        self.halts[ProviderName.ZAI] = until

    def _halted(self, provider: str) -> bool:
        """True while a provider's account is blocked (balance, key): its jobs wait."""
        return time.time() < self.halts.get(provider, 0.0)

    def _refuse_if_halted(self, provider: str = ProviderName.ZAI) -> None:
        """Refuse new work plainly while the provider account is blocked."""
        if self._halted(provider):
            raise QuotaError(
                "The bot's video service account cannot take new work right now "
                "(the moderators have been told). Nothing was charged; try again later."
            )

    async def queue_position(self, job_id: int) -> int:
        """1-based place of a queued job in the fair order."""
        return await self.store.queue_position(job_id)

    # --- what the front end reads and records ----------------------------------------------

    async def job(self, job_id: int) -> Job | None:
        """One job by id."""
        return await self.store.get(job_id)

    async def recent_jobs(self, guild_id: int, user_id: int, limit: int = 10) -> list[Job]:
        """A member's latest jobs on a server, newest first."""
        return await self.store.user_jobs(guild_id, user_id, limit)

    async def job_pictures(self, job_id: int) -> list[StoredImage]:
        """The pictures a job was made from, as sent to the provider."""
        return await self.store.inputs(job_id)

    async def balance(self, guild_id: int, user_id: int, now: float) -> Balance:
        """A member's credits today."""
        return await self.credits.balance(guild_id, user_id, day_key(now))

    async def next_in_queue(self, limit: int, horizon: float) -> list[Job]:
        """The queued jobs next in line, including those waiting out a retry within `horizon`."""
        return await self.store.fair_queue(time.time() + horizon, limit)

    def expected_seconds(self, model: str) -> float:
        """How long the model takes, as learned."""
        return self.schedule.expected(model)

    async def set_status_message(self, job_id: int, message_id: int) -> None:
        """Remember the public status message of a job."""
        await self.store.set_status_message(job_id, message_id)

    async def set_approval_message(self, job_id: int, message_id: int) -> None:
        """Remember the moderators' approval request of a job."""
        await self.store.set_approval_message(job_id, message_id)

    async def add_block(self, guild_id: int, pattern: str, is_regex: bool, actor_id: int) -> str:
        """A moderator's blocklist entry, checked for syntax, length and speed; the stored form."""
        return await self.rules.add_block(guild_id, pattern, is_regex, actor_id)

    # --- reports from the front end -------------------------------------------------------

    async def mark_delivered(self, job_id: int, message_id: int | None) -> bool:
        """The video was posted."""
        done = await self.store.mark_delivered(job_id, message_id)
        if done:
            log.info("job %d delivered as message %s", job_id, message_id)
        return done

    async def mark_undeliverable(self, job_id: int, reason: str) -> bool:
        """The video could not be posted anywhere: refund and keep the reason for /jobs."""
        done = await self.store.end(
            job_id,
            JobState.UNDELIVERABLE,
            "undeliverable",
            reason,
            refund=True,
            from_states=(JobState.SUCCEEDED,),
        )
        if done:
            log.warning("job %d undeliverable: %s", job_id, reason)
        return done

    # --- the scheduler --------------------------------------------------------------------

    async def start(self) -> None:
        """Recover jobs left by a previous process, then start the scheduler loop."""
        self._closing = False
        await self._recover()
        self._loop_task = spawn(self._run(), name="engine-scheduler")

    async def close(self, submit_grace: float = 10.0) -> None:
        """Stop the loop; let submits in flight land (a cut submit is ambiguous), drop polls."""
        self._closing = True
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
            self._loop_task = None
        for task in self._polls:
            task.cancel()
        if self._submits:
            await asyncio.wait(self._submits, timeout=submit_grace)
        for task in self._submits:
            task.cancel()
        await asyncio.gather(*self._polls, *self._submits, return_exceptions=True)
        if self._events:  # let the front end finish what it was doing with the database
            await asyncio.wait(self._events, timeout=submit_grace)
        for task in self._events:
            task.cancel()
        await asyncio.gather(*self._events, return_exceptions=True)

    def schedule_models(self) -> list[str]:
        """Every model the poll schedule keeps a history for."""
        return list(dict.fromkeys([*models.MODELS, *(r.name for r in catalog.CATALOG.values())]))

    def wake(self) -> None:
        """Make the scheduler look at the database now."""
        self._wake.set()

    async def _recover(self) -> None:
        """A job caught mid-submit may or may not exist at the provider: never resend it."""
        for model in self.schedule_models():
            self.schedule.learn(model, await self.store.recent_durations(model))
        for job in await self.store.in_states((JobState.SUBMITTING,)):
            await self._end(
                job, ProviderErrorKind.AMBIGUOUS, "submit_unconfirmed", "process stopped mid-submit"
            )
        for job in await self.store.in_states((JobState.SUCCEEDED,)):
            self._emit(JobEvent.FINISHED, job)  # not delivered yet: the front end delivers it
        for job in await self.store.in_states((JobState.PENDING_APPROVAL,)):
            if job.approval_message_id is None:  # died before the moderators were asked
                self._emit(JobEvent.PENDING_APPROVAL, job)

    async def _run(self) -> None:
        """One loop for every job: submit into free slots, start due polls, sleep until next."""
        while not self._closing:
            self._wake.clear()
            try:
                self.last_pass = begun = time.time()
                started = await self._fill_slots() + await self._start_due_polls()
                # Nothing startable now: sleep until the next future time or a wake() (a slot
                # freed, a poll answered); counting blocked due jobs here made the loop spin.
                delay = 0.0 if started else await self._idle_time(begun)
            except Exception:
                log.exception("scheduler pass failed; retrying shortly")
                delay = 1.0
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow the cancel of close().
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    async def _idle_time(self, since: float) -> float:
        """Seconds until the next poll or retry time after `since` (the pass looked at all
        before), or the end of a halt; capped at 60 s."""
        now = time.time()
        at = await self.store.next_wake(since)
        for until in (u for u in self.halts.values() if u > now):
            at = min(at or until, until)
        if at is None:
            return 60.0
        return min(60.0, max(0.0, at - now))

    async def _fill_slots(self) -> int:
        """Submit queued jobs, fairly, while the provider has free slots; how many started."""
        now = time.time()
        if all(self._halted(name) for name in self.router.names()):
            return 0
        free = self.config.max_concurrent - await self.store.count_active()
        if free <= 0:
            return 0
        started = 0
        for job in await self.store.fair_queue(now, free):
            if self._halted(job.provider):
                continue  # its provider's account is blocked; other providers' jobs go on
            if job.id not in self._busy and await self.store.mark_submitting(job.id):
                self._busy.add(job.id)
                self._track(self._submits, spawn(self._submit(job), name=f"submit-job-{job.id}"))
                started += 1
        return started

    async def _start_due_polls(self) -> int:
        """Start a poll task for each due job not already being polled; how many started."""
        limit = self.config.poll_concurrency * 4
        started = 0
        for job in await self.store.due_polls(time.time(), limit):
            if job.id not in self._busy:
                self._busy.add(job.id)
                self._track(self._polls, spawn(self._poll(job), name=f"poll-job-{job.id}"))
                started += 1
        return started

    @staticmethod
    def _track(tasks: set[asyncio.Task[None]], task: asyncio.Task[None]) -> None:
        """Keep a task in a set until it ends, so close() can wait for or cancel it."""
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _submit(self, job: Job) -> None:
        """Send one job to its provider; its state says what happened whatever the outcome."""
        sending = False
        provider = self.router.get(ProviderName(job.provider))
        try:
            if provider is None:
                raise _provider_off(job)
            request = await self._request(job, provider)
            body = await asyncio.to_thread(provider.build_body, request)
            failpoint("before_submit")
            sending = True
            task_id = await provider.submit(body)
            failpoint("after_submit")
        except NoLinkError:
            await self._refuse_no_link(job)
        except ProviderError as exc:
            await self._submit_failed(job, exc, provider, sending=sending)
        except Exception as exc:  # a bug must not leave the job `submitting`, holding a slot
            log.exception("job %d: unexpected error in submit", job.id)
            await self._submit_failed(job, _internal_error(exc, sent=sending))
        else:
            first = time.time() + self.schedule.first_delay(job.model)
            await self.store.mark_processing(job.id, task_id, first)
            log.info("job %d submitted as task %s", job.id, task_id)
            await self._emit_job(JobEvent.STARTED, job.id)
        finally:
            self._busy.discard(job.id)
            self.wake()

    def _neutral(self, job: Job, pictures: tuple[Picture, ...] = ()) -> VideoRequest:
        """A job as the provider-neutral request the adapters build bodies from."""
        return VideoRequest(
            job.model,
            Mode(job.mode),
            job.prompt,
            dict(job.options),
            pictures,
            request_id=job.request_id,
            user_id=models.provider_user_id(job.user_id),
        )

    async def _request(self, job: Job, provider: RoutedProvider) -> VideoRequest:
        """The job with its stored pictures; links published first for a URL-only provider.

        Z.AI takes the pictures inline (data: URIs: Discord links expire and the provider may
        not reach them); the gateways take links only, so the front end publishes them.
        """
        inputs = await self.store.inputs(job.id)
        pictures = tuple(Picture(i.data, i.mime) for i in inputs)
        request = self._neutral(job, pictures)
        if provider.picture_transport is not PictureTransport.URL or not pictures:
            return request
        return await with_links(request, provider, _FrontEndPublisher(self.listener, job))

    async def _refuse_no_link(self, job: Job) -> None:
        """A URL-only provider and no way to publish the pictures: refund, saying so."""
        text = NO_LINK.format(model=job.model)
        if await self.store.end(
            job.id, JobState.FAILED, "picture_link_unavailable", text, refund=True
        ):
            log.warning("job %d: no link could be made for its pictures", job.id)
            await self._emit_job(JobEvent.FAILED, job.id)

    async def _submit_failed(
        self,
        job: Job,
        exc: ProviderError,
        provider: RoutedProvider | None = None,
        *,
        sending: bool = False,
    ) -> None:
        """Move a refused submit to the next provider (fallback on), requeue what can be
        retried safely, end (and refund) the rest."""
        if provider is not None and sending and await self._moved(job, exc, provider):
            return
        retryable = exc.kind is ProviderErrorKind.RETRY
        if retryable and job.attempts + 1 < self.config.max_submit_attempts:
            at = time.time() + self.schedule.retry_delay(job.attempts + 1, exc.retry_after)
            await self.store.requeue(job.id, at, exc.code, exc.message)
            log.warning(
                "job %d submit deferred (%s); retry in %.1fs", job.id, exc, at - time.time()
            )
            return
        if exc.kind in (ProviderErrorKind.ACCOUNT, ProviderErrorKind.AUTH):
            self._halt(job, exc, job.provider)
        ambiguous = exc.kind is ProviderErrorKind.AMBIGUOUS
        log.warning("job %d submit failed: %s", job.id, exc)
        await self._end(job, exc.kind, "submit_unconfirmed" if ambiguous else exc.code, exc.message)

    async def _moved(self, job: Job, exc: ProviderError, provider: RoutedProvider) -> bool:
        """PROVIDER_FALLBACK=on: a submit refused for balance, overload or an outage goes to the
        next provider offering the model (never after an ambiguous one: no double task)."""
        nxt = self.router.fallback_for(self._neutral(job), provider.name, exc)
        if nxt is None or not await self.store.move(job.id, nxt.name.value, exc.code, exc.message):
            return False
        log.warning("job %d moved from %s to %s (%s)", job.id, provider.name, nxt.name, exc)
        return True

    def _halt(self, job: Job, exc: ProviderError, provider: str = ProviderName.ZAI) -> None:
        """Stop submitting to that provider for a while and say so loudly: only an operator can
        fix this."""
        already = self._halted(provider)
        self.halts[provider] = time.time() + self.config.halt_seconds
        if already:  # tell moderators once per outage, not once per failing job
            return
        self.halt_reason = f"{provider}: {exc.kind.value}: {exc.message}"
        log.critical("%s refused work for the account (%s); submissions paused", provider, exc)
        self._emit(JobEvent.HALTED, job)

    async def _end(self, job: Job, kind: ProviderErrorKind, code: str, message: str) -> None:
        """End a job badly with a refund, and report it."""
        state = JobState.REFUSED if kind is ProviderErrorKind.CONTENT_FILTER else JobState.FAILED
        if kind is ProviderErrorKind.BAD_REQUEST:
            log.error(
                "job %d: provider rejected our parameters (bug): %s %s", job.id, code, message
            )
        if kind is ProviderErrorKind.CONTENT_FILTER:
            detail = f"job {job.id}: content filter ({code})"
            await self.moderation.audit(
                job.guild_id, job.user_id, "content_filter", detail, job.user_id
            )
        user_text = ProviderError(kind, code, message).user_message
        if await self.store.end(job.id, state, code, user_text, refund=True):
            log.info("job %d %s (%s): refunded", job.id, state, code)
            await self._emit_job(JobEvent.FAILED, job.id)

    async def _poll(self, job: Job) -> None:
        """Poll one task and move the job on."""
        try:
            provider = self.router.get(ProviderName(job.provider))
            if provider is None:
                await self._end(job, ProviderErrorKind.BAD_REQUEST, "provider_off", OFF_TEXT)
                return
            async with self._poll_slots:
                state = await provider.get_task(job.task_id or "")
            await self._apply_poll(job, state)
        except ProviderError as exc:
            await self._poll_failed(job, exc)
        except Exception as exc:  # a bug must not leave the job due (re-polled in a tight loop)
            log.exception("job %d: unexpected error in poll", job.id)
            await self._poll_failed(job, _internal_error(exc, sent=False))
        finally:
            self._busy.discard(job.id)
            self.wake()

    async def _apply_poll(self, job: Job, state: TaskState) -> None:
        """Record a poll's answer."""
        if state.status is TaskStatus.PROCESSING:
            elapsed = time.time() - (job.submitted_at or time.time())
            await self.store.mark_polled(
                job.id, time.time() + self._next_delay(job, elapsed, state)
            )
            failpoint("after_poll")
            self._report_progress(job, state.progress)
        elif state.status is TaskStatus.SUCCESS:
            self._forget_progress(job.id)
            if await self.store.mark_succeeded(job.id, state.video_url or "", state.cover_url):
                self.schedule.learn(job.model, [time.time() - (job.submitted_at or time.time())])
                log.info("job %d finished after %d polls", job.id, job.polls + 1)
                failpoint("after_succeeded")
                await self._emit_job(JobEvent.FINISHED, job.id)
        else:
            self._forget_progress(job.id)
            reason = state.message or "generation failed"
            if await self.store.end(
                job.id, JobState.FAILED, "generation_failed", reason, refund=True
            ):
                log.info("job %d failed at the provider: %s", job.id, reason)
                await self._emit_job(JobEvent.FAILED, job.id)

    def _next_delay(self, job: Job, elapsed: float, state: TaskState) -> float:
        """The next poll at the finish the provider's progress predicts (within the schedule's
        spacing and its longest gap), else the learned schedule's delay."""
        remaining = progress.remaining_seconds(elapsed, state.progress)
        if remaining is None:
            return self.schedule.next_delay(job.model, elapsed)
        policy = self.schedule.policy
        return min(max(remaining, policy.interval), policy.max_interval)

    def _report_progress(self, job: Job, percent: int | None) -> None:
        """Tell the front end a new progress figure, when the throttle says it is worth an edit."""
        if percent is None:
            return
        self._progress[job.id] = percent
        throttle = self._throttles.setdefault(job.id, progress.ProgressThrottle())
        if throttle.due(percent, time.monotonic()):
            self._emit(JobEvent.PROGRESS, job)

    async def _poll_failed(self, job: Job, exc: ProviderError) -> None:
        """A poll that failed is tried again later: the task is still ours to collect."""
        if exc.status == 404 and job.polls >= 3:
            await self._end(
                job, ProviderErrorKind.BAD_REQUEST, "task_unknown", "the provider lost the task"
            )
            return
        if exc.kind in (ProviderErrorKind.AUTH, ProviderErrorKind.ACCOUNT):
            log.critical("job %d: poll refused by Z.AI (%s); will keep trying", job.id, exc)
        else:
            log.warning("job %d: poll failed (%s); will retry", job.id, exc)
        delay = self.schedule.retry_delay(min(job.polls, 6), exc.retry_after)
        await self.store.mark_polled(job.id, time.time() + delay)

    def _forget_progress(self, job_id: int) -> None:
        """The task ended: its progress figures are no longer needed."""
        self._progress.pop(job_id, None)
        self._throttles.pop(job_id, None)

    # --- events ---------------------------------------------------------------------------

    async def _emit_job(self, event: JobEvent, job_id: int) -> None:
        """Emit an event with the job's current row."""
        job = await self.store.get(job_id)
        if job is not None:
            self._emit(event, job)

    def _emit(self, event: JobEvent, job: Job) -> None:
        """Hand an event to the listener in its own (logged) task."""
        if self.listener is not None:
            task = spawn(
                self.listener.job_event(event, job), name=f"event-{event.value}-job-{job.id}"
            )
            self._track(self._events, task)


class NoLinkError(Exception):
    """No expiring link could be made for a URL-only provider (no front end to publish)."""


@dataclass(frozen=True)
class _FrontEndPublisher:
    """The engine asks the front end to publish a job's pictures (e.g. on its status message)."""

    listener: JobListener | None
    job: Job

    async def publish(self, request: VideoRequest) -> Sequence[str]:
        """One link per picture; NoLinkError when there is no front end, RETRY if it failed."""
        publish = getattr(self.listener, "publish_pictures", None)
        if publish is None:
            raise NoLinkError
        try:
            return list(await publish(self.job, request.pictures))
        except Exception as exc:  # Discord refused or timed out: nothing was sent yet
            log.warning("job %d: could not publish its pictures: %r", self.job.id, exc)
            raise ProviderError(
                ProviderErrorKind.RETRY, "picture_link_failed", "could not publish the pictures"
            ) from exc


OFF_TEXT = "the provider of this job is no longer configured (its key was removed)"


def _provider_off(job: Job) -> ProviderError:
    """A job whose provider was switched off since it was queued (a restart without its key)."""
    log.error("job %d: provider %s is not configured", job.id, job.provider)
    return ProviderError(ProviderErrorKind.BAD_REQUEST, "provider_off", OFF_TEXT)


def _internal_error(exc: Exception, *, sent: bool) -> ProviderError:
    """An unexpected exception as a provider error: ambiguous once a submit may have left."""
    kind = ProviderErrorKind.AMBIGUOUS if sent else ProviderErrorKind.RETRY
    return ProviderError(kind, "internal_error", f"{type(exc).__name__} in the bot")


__all__ = [
    "Engine",
    "EngineConfig",
    "InputError",
    "JobEvent",
    "JobListener",
    "JobRequest",
    "Quote",
]
