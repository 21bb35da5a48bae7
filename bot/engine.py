"""The engine: accepts requests, schedules submits and polls, reports job events.

Data flows one way: validate → reserve credit and queue (one transaction) → submit when a
provider slot is free → poll on the learned schedule → report finished or failed (refunded).
The front end receives events through a `JobListener` and reports delivery back.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from bot import defaults, model_facts, models, stills
from bot.defaults import MemberDefaults
from bot.errors import (
    BotError,
    InputError,
    NotAllowedError,
    ProviderError,
    ProviderErrorKind,
    QuotaError,
)
from bot.failpoints import failpoint
from bot.i18n import DEFAULT_LOCALE, Msg, msg, render
from bot.images import ImageInfo, fit_image, inspect_image
from bot.leases import LeaseKeeper, process_name
from bot.models import Mode, VideoOptions
from bot.moderation import ModeratorActions
from bot.policy import Policy
from bot.provider import MediaProvider, TaskState, TaskStatus, VideoProvider
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
from bot.schedule import PollPolicy, PollSchedule, queue_start_delay
from bot.tasks import spawn
from bot.voice import SpeechAudio
from bot.zai_media import HOTWORDS_MAX, MediaAction, member_message
from storage.credits import Balance, Credits, day_key
from storage.defaults import DefaultsStore
from storage.errors import RefusalKind, Refused
from storage.jobs import Job, JobStore, NewJob, StoredImage
from storage.leases import LeaseStore
from storage.moderation import ModerationStore
from storage.retention import Retention, RetentionPolicy, SweepReport
from storage.states import AT_PROVIDER, CANCELLABLE, UNFINISHED, JobState

log = logging.getLogger(__name__)

T = TypeVar("T")
TRANSCRIPT_MODE = "transcript"  # the job row of a priced transcription (never queued)
HOTWORD_MAX = 50  # characters of one hotword
# Jobs that are not videos, worded for members as what they are when they fail.
_MEDIA_ACTIONS = {Mode.STILL.value: MediaAction.STILL, TRANSCRIPT_MODE: MediaAction.TRANSCRIBE}
# The error code of a private result that could not be sent by direct message (/jobs says why).
DM_FAILED = "dm_failed"
# The cost table's pseudo-option for a price per provider (`cost set model credits provider gateway`).
PROVIDER_OPTION = "provider"


class Origin(StrEnum):
    """How a member asked: every entry point goes through Engine.quote then Engine.accept."""

    SLASH = "slash"
    MENU = "menu"
    MENTION = "mention"
    REROLL = "reroll"
    EXTEND = "extend"
    ANIMATE = "animate"  # a still's Animate button
    VOICE = "voice"  # a spoken prompt, after the member confirmed its transcript


# Re-roll and Extend keep the job's own options; every other way of asking uses the member's
# defaults for what it leaves unset.
KEEPS_ITS_OPTIONS = frozenset({Origin.REROLL, Origin.EXTEND})


PICTURES_GONE = "refuse.pictures_gone"


def refusal_text(exc: Refused) -> Msg:
    """The member's message for a refusal of the store (catalog keys refuse.<kind>)."""
    if exc.kind is RefusalKind.IN_FLIGHT:
        return msg("refuse.in_flight", count=exc.count, limit=exc.limit)
    if exc.kind is RefusalKind.CREDITS:
        return msg("refuse.credits", cost=exc.cost)
    return Msg(f"refuse.{exc.kind.value}")


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


NO_PUBLISHER = "refuse.no_publisher"  # {model}: URL-only provider, nothing to publish with
NO_LINK = "job.no_link"  # {model}: the front end could not publish the pictures


@dataclass(frozen=True)
class JobRequest:
    """A user's request as the front end hands it over (images already downloaded)."""

    guild_id: int
    channel_id: int
    user_id: int
    model: str | None  # None: the member's default model for the mode, else the mode's usual
    mode: Mode
    prompt: str | None
    options: VideoOptions = field(default_factory=VideoOptions)  # unset: the member's defaults
    images: Sequence[bytes] = ()
    origin: Origin = Origin.SLASH
    parent_job_id: int | None = None
    upload_limit: int | None = None
    private: bool | None = None  # deliver to the requester's DMs (None: the member's default)


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
    submit_concurrency: int = 8  # submits in flight at once, for the same reason
    max_submit_attempts: int = 20  # ~30 min of backoff: an outage of minutes delays, never fails
    halt_seconds: float = 300.0  # after an account error, wait this long before trying again
    approval_hours: int = 24  # a request nobody decides on expires (a server may set its own)
    approval_sweep_seconds: float = 60.0  # how often the scheduler looks for expired requests
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    sweep_seconds: float = 3600.0  # between retention sweeps (pictures live ≤ this past retention)
    lease_seconds: float = 60.0  # a dead process's jobs are taken over this long after it died
    sole_process: bool = False  # SQLite's process lock is held: every other lease is dead


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
        media: MediaProvider | None = None,
        router: Router | None = None,
    ) -> None:
        self.store = store
        self.media = media  # stills and speech; None: /image and spoken prompts are refused
        self.credits = credits
        self.moderation = moderation or ModerationStore(store.db)
        self.moderators: ModeratorActions = self.moderation  # what the Admin cog may use
        self.member_store = DefaultsStore(store.db)  # members' own defaults (bot/defaults.py)
        self.rules = Policy(self.moderation)
        self.provider = provider
        # Without a router (tests, scripts) the one provider serves the seven Z.AI models.
        self.router = router or Router([ZaiFormatProvider(provider)])  # type: ignore[arg-type]
        self.config = config or EngineConfig()
        typical = {rules.name: rules.typical_seconds for rules in catalog.CATALOG.values()}
        typical |= {name: spec.typical_seconds for name, spec in models.MODELS.items()}
        typical |= {name: m.typical_seconds for name, m in stills.STILL_MODELS.items()}
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
        self._submit_slots = asyncio.Semaphore(self.config.submit_concurrency)
        self._waiting_submits = 0  # submit tasks still queued behind _submit_slots
        self._loop_task: asyncio.Task[None] | None = None
        # Polls that found their task still running, written in batches by one flusher task.
        self._running: list[tuple[int, float, float]] = []
        self._flusher: asyncio.Task[None] | None = None
        # The loop's plan: when it will look again; a poll wakes it only to come sooner.
        self._planned_wake = 0.0
        self._in_pass = False
        self._soonest = math.inf  # earliest next time learned while a pass ran
        self._sleep: asyncio.Timeout | None = None  # the loop's sleep, to bring forward
        self._fill_due = True  # a slot may have freed or a job arrived: look at the queue
        self._backlog = False  # the last pass left due polls for later (too many in flight)
        self._sweep_task: asyncio.Task[None] | None = None
        self.retention = Retention(store.db, self.config.retention)
        leases = LeaseStore(store.db, process_name(), self.config.lease_seconds)
        self.leases = LeaseKeeper(leases, self._took_over, self.wake)
        self._closing = False
        self._last_sweep = 0.0  # when the scheduler last looked for expired approvals
        self.last_pass = time.time()  # when the scheduler last looked at the database (/healthz)

    # --- accepting requests ---------------------------------------------------------------

    async def quote(self, request: JobRequest, *, reuse_inputs: bool = False) -> Quote:
        """Validate, apply the server's rules, price, and check credits and slots (no download).

        The one place a request is judged: every entry point asks for a quote first, shows its
        cost if needed, then accepts exactly that quote.
        """
        request = await self._with_defaults(request)
        self._refuse_missing_option(request)
        prompt, req = self._checked(request)
        # Stills and speech go to the media API (Z.AI's); videos to the first provider offering them.
        provider = None if req.mode is Mode.STILL else self._route(req, prompt)
        name = provider.name if provider is not None else ProviderName.ZAI
        self._refuse_if_halted(name)
        await self._check_rules(req, prompt)
        # Rules on a value apply to the defaults too: price what the provider will make.
        priced = self._effective_options(req, name) | {PROVIDER_OPTION: name.value}
        cost = await self.rules.cost(req.guild_id, req.model, priced)
        settings = await self.moderation.settings(req.guild_id)
        state = JobState.PENDING_APPROVAL if settings.approval_channel_id else JobState.QUEUED
        quote = Quote(req, prompt, cost, state, reuse_inputs, name)
        limits = await self._limits(req)
        await self._refusing(quote, self.store.check_admission(self._new_job(quote), **limits))
        return quote

    def option_values(self, model: str, option: str, mode: Mode) -> tuple[Any, ...] | None:
        """What a configured model accepts for an option in a mode (None: no such option)."""
        provider = self.provider_of(model)
        if provider is None:
            return None
        return model_facts.option_values(model, provider, option, mode)[0]

    def _refuse_missing_option(self, req: JobRequest) -> None:
        """An option the model does not take: name the configured models that do (InputError)."""
        if req.mode not in models.VIDEO_MODES or self.provider_of(req.model) is None:
            return
        for option, value in req.options.given().items():
            if self.option_values(req.model, option, req.mode) is not None:
                continue
            having = [
                m
                for m in self.models_for(req.mode)
                if self.option_values(m, option, req.mode) is not None
            ]
            # Command and option names as the member's client shows them (localized names).
            command = msg(
                "command.path", group=Msg("name.cmd.video"), sub=Msg(f"name.cmd.video.{req.mode}")
            )
            use = msg(
                "option.use",
                command=command,
                model_option=Msg("name.opt.model"),
                model=having[0] if having else "",
                option=Msg(f"name.opt.{option}"),
                value=value,
            )
            where = (
                msg("option.models_having", count=len(having), models=", ".join(having), use=use)
                if having
                else msg("option.no_model_having", command=command)
            )
            raise InputError(
                "option.missing", model=req.model, option=option, command=command, where=where
            )

    # --- members' defaults (bot/defaults.py) ------------------------------------------------

    async def _with_defaults(self, req: JobRequest) -> JobRequest:
        """A video request with what the member left unset taken from their defaults on the
        server, then from the mode's usual model (Re-roll and Extend keep the job's own)."""
        if req.mode not in models.VIDEO_MODES or req.origin in KEEPS_ITS_OPTIONS:
            return req
        mine = await self.member_defaults(req.guild_id, req.user_id)
        model = req.model or mine.model_for(req.mode)
        options = defaults.fill(mine, model, req.mode, req.options, self)
        private = mine.private if req.private is None else req.private
        return replace(req, model=model, options=options, private=private)

    async def _check_rules(self, req: JobRequest, prompt: str | None) -> None:
        """The server's rules; refusing the member's own default model says how to change it."""
        assert req.model is not None  # filled in by _with_defaults
        try:
            await self.rules.check(req.guild_id, req.channel_id, req.user_id, req.model, prompt)
        except NotAllowedError as exc:
            mine = await self.member_defaults(req.guild_id, req.user_id)
            turned_off = (await self.moderation.model_rules(req.guild_id)).get(req.model) is False
            if not turned_off or mine.own_model(req.mode) != req.model:
                raise
            raise NotAllowedError(defaults.turned_off_hint(exc.text, req.mode)) from None

    def takes(self, model: str, option: str, value: Any, mode: Mode) -> bool:
        """Whether a configured model takes option=value in a mode (the table, else the catalog)."""
        provider = self.provider_of(model)
        if provider is None or mode not in self.modes_of(model):
            return False
        if provider is ProviderName.ZAI and model in models.MODELS:
            allowed = models.allowed_values(model, option, mode) or ()
            return any(v == value and type(v) is type(value) for v in allowed)
        return catalog.accepts(catalog.rules_for(provider, model), mode, option, value)

    async def member_defaults(self, guild_id: int, user_id: int) -> MemberDefaults:
        """A member's own defaults on a server."""
        return MemberDefaults(await self.member_store.get(guild_id, user_id))

    async def set_member_defaults(
        self,
        guild_id: int,
        user_id: int,
        changes: dict[str, Any],
        forget: Sequence[str] = (),
    ) -> MemberDefaults:
        """Forget some of a member's defaults and set others, in one go; new values are checked
        together with the rest, and a refusal (InputError, NotAllowedError) stores nothing."""
        mine = (await self.member_defaults(guild_id, user_id)).without(forget).changed(changes)
        if changes:
            defaults.check(mine, self)
            await self._refuse_turned_off_defaults(guild_id, changes)
        await self.member_store.update(guild_id, user_id, changes, forget)
        return mine

    async def _refuse_turned_off_defaults(self, guild_id: int, changes: dict[str, Any]) -> None:
        """A model the server's moderators turned off cannot become a default."""
        for name, mode in defaults.MODEL_NAMES.items():
            model = changes.get(name)
            if model is None:
                continue
            offered = await self.offered_models(guild_id, mode)
            if model not in offered:
                raise NotAllowedError(defaults.turned_off(model, name, offered))

    @staticmethod
    def _checked(req: JobRequest) -> tuple[str | None, JobRequest]:
        """The cleaned prompt and the request with a still's defaults filled in (InputError)."""
        if req.mode is not Mode.STILL:
            if req.model in models.MODELS:  # its own wording for an invisible-only prompt
                return models.check_request(req.model, req.mode, req.prompt, req.options), req
            return models.clean_prompt(req.prompt), req  # the gateway's rules: at routing
        opts = req.options
        still = stills.validate_still(
            models.clean_prompt(req.prompt), req.model, opts.size, opts.quality
        )
        options = VideoOptions(quality=still.quality.value, size=still.size)
        return still.prompt, replace(req, model=still.model, options=options)

    @staticmethod
    def _effective_options(req: JobRequest, provider: ProviderName) -> dict[str, Any]:
        """The member's options over the model's defaults at the provider it goes to."""
        if provider is ProviderName.ZAI and req.model in models.MODELS:
            defaults = models.default_options(req.model)
        elif (provider, req.model) in catalog.CATALOG:
            rules = catalog.rules_for(provider, req.model)
            defaults = {str(option): value for option, value in rules.defaults.items()}
        else:  # stills: their defaults are already filled in by _checked
            defaults = {}
        return defaults | req.options.given()

    def _route(self, req: JobRequest, prompt: str | None) -> RoutedProvider:
        """The provider for a request, its rules checked (InputError)."""
        provider = self.router.choose(
            VideoRequest(req.model, req.mode, prompt, req.options.given())
        )
        if (
            provider.picture_transport is PictureTransport.URL
            and req.mode is not Mode.TEXT
            and self.listener is None
        ):
            raise InputError(NO_PUBLISHER, model=req.model)
        return provider

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

    def routed_models(self) -> list[str]:
        """Every video model the configured providers offer."""
        return self.router.models()

    def progress_of(self, job_id: int) -> int | None:
        """The last progress figure (0-100) a provider reported for a job in flight."""
        return self._progress.get(job_id)

    async def quote_again(self, job_id: int, user_id: int, origin: Origin) -> Quote:
        """Re-roll (same request and pictures) or Extend (an image job of the same family)."""
        job = await self.job(job_id)
        if job is None:
            raise InputError("job.forgotten")
        reroll = origin is Origin.REROLL
        with_pictures = job.mode not in (Mode.TEXT, Mode.STILL)
        if reroll and with_pictures and not await self.store.input_count(job.id):
            raise InputError(PICTURES_GONE)
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
            private=job.private,
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
        stored, first_frame_only = await self._pictures(quote, images)
        limits = await self._limits(req)
        new = self._new_job(quote, first_frame_only=first_frame_only)
        if new.state is JobState.PENDING_APPROVAL:  # created claimed: no other process asks
            new = replace(new, **self.leases.store.ask_claim())
        if self._links_parent(quote):  # a Re-roll links the parent's pictures: no bytes copied
            limits["inputs_from"] = req.parent_job_id
        job = await self._refusing(quote, self.store.create(new, stored, **limits))
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

    async def _pictures(
        self, quote: Quote, images: Sequence[bytes]
    ) -> tuple[tuple[StoredImage, ...], bool]:
        """The job's new pictures, checked and fitted (in a thread), and whether an animation was
        reduced to its first frame. None for a still, nor for a re-roll: it links its parent's
        stored pictures (and keeps the parent's flag)."""
        req = quote.request
        if req.mode is Mode.STILL:
            return (), False
        if quote.reuse_inputs:
            parent = await self.store.get(req.parent_job_id) if req.parent_job_id else None
            return (), parent is not None and parent.first_frame_only
        if req.mode is Mode.REFERENCE and req.model not in models.MODELS:
            catalog.check_references(quote.prompt, len(images))
        return await asyncio.to_thread(
            prepare_pictures, req.model, req.mode, images, quote.provider
        )

    @staticmethod
    def _links_parent(quote: Quote) -> bool:
        """A re-roll of a job made from pictures: it uses the parent's stored ones."""
        req = quote.request
        with_pictures = req.mode not in (Mode.TEXT, Mode.STILL)
        return quote.reuse_inputs and req.parent_job_id is not None and with_pictures

    @staticmethod
    def _new_job(quote: Quote, *, first_frame_only: bool = False) -> NewJob:
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
            first_frame_only=first_frame_only,
            provider=quote.provider.value,
            private=bool(req.private),
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
        text = msg("job.rejected", reason=reason).encode()
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

    # --- cancelling and expiring before the provider ---------------------------------------

    async def cancel(self, job_id: int, user_id: int) -> Job:
        """The requester cancels a job not at the provider yet: refunded exactly once.

        One guarded statement decides, so a double click or a race with the submit ends the
        job (and refunds it) once, or not at all.
        """
        job = await self.store.get(job_id)
        if job is None:
            raise InputError("cancel.no_such_job", id=job_id)
        if job.user_id != user_id:
            raise NotAllowedError("cancel.not_yours", id=job_id)
        text = Msg("job.cancelled").encode()
        if not await self.store.end(
            job_id, JobState.CANCELLED, "cancelled", text, refund=True, from_states=CANCELLABLE
        ):
            raise InputError(_not_cancellable(await self.store.get(job_id) or job))
        await self.moderation.audit(job.guild_id, user_id, "cancel", f"job {job_id}", user_id)
        log.info("job %d cancelled by its requester", job_id)
        await self._emit_job(JobEvent.FAILED, job_id)
        return job

    async def cancellable_jobs(self, guild_id: int, user_id: int) -> list[Job]:
        """A member's jobs on a server that can still be cancelled, newest first (at most 25)."""
        return await self.store.cancellable(guild_id, user_id)

    async def pending_approvals(self, guild_id: int) -> list[Job]:
        """A server's requests waiting for a moderator, oldest first (at most 25)."""
        return await self.store.pending_approval(guild_id)

    async def approval_hours(self, guild_id: int) -> int:
        """How long a request waits for a moderator on this server before it expires."""
        own = (await self.moderation.settings(guild_id)).approval_hours
        return own or self.config.approval_hours

    async def expire_approvals(self, now: float | None = None) -> int:
        """End (refunded, member told) every request nobody decided on in time; how many."""
        now = time.time() if now is None else now
        ended = 0
        for job in await self.store.expired_approvals(now, self.config.approval_hours):
            hours = await self.approval_hours(job.guild_id)
            text = msg("job.approval_expired", count=hours).encode()
            if await self.store.end(
                job.id,
                JobState.EXPIRED,
                "approval_expired",
                text,
                refund=True,
                from_states=(JobState.PENDING_APPROVAL,),
            ):
                ended += 1
                log.info("job %d: approval expired after %d hours; refunded", job.id, hours)
                await self._emit_job(JobEvent.FAILED, job.id)
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
            raise QuotaError("refuse.halted")

    async def queue_position(self, job_id: int) -> int:
        """1-based place of a queued job in the fair order."""
        return await self.store.queue_position(job_id)

    async def queue_eta(self, job: Job, position: int) -> float:
        """When a queued job is expected to start: its place, the free slots, the learned times."""
        now = time.time()
        busy = [
            (j.submitted_at or now) + self.expected_seconds(j.model, j.options) - now
            for j in await self.store.in_states(AT_PROVIDER)
        ]
        per_job = self.expected_seconds(job.model, job.options)
        return now + queue_start_delay(position, busy, self.config.max_concurrent, per_job)

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

    def expected_seconds(self, model: str, options: dict[str, Any] | None = None) -> float:
        """How long the model takes for these options, as learned."""
        return self.schedule.expected(model, options or {})

    async def set_status_message(self, job_id: int, message_id: int) -> None:
        """Remember the public status message of a job."""
        await self.store.set_status_message(job_id, message_id)

    async def set_approval_message(self, job_id: int, message_id: int) -> None:
        """Remember the moderators' approval request of a job."""
        await self.store.set_approval_message(job_id, message_id)

    async def add_block(self, guild_id: int, pattern: str, is_regex: bool, actor_id: int) -> str:
        """A moderator's blocklist entry, checked for syntax, length and speed; the stored form."""
        return await self.rules.add_block(guild_id, pattern, is_regex, actor_id)

    async def offered_models(self, guild_id: int, mode: Mode) -> list[str]:
        """The models of a mode this server's moderators have not turned off, in table order."""
        rules = await self.moderation.model_rules(guild_id)
        return [m for m in self.models_for(mode) if rules.get(m, True)]

    async def add_hotword(self, guild_id: int, word: str, actor_id: int) -> str:
        """A moderator's speech-recognition hotword, within the seed's 100; the stored form."""
        clean = " ".join((models.clean_prompt(word) or "").split())
        if not clean or len(clean) > HOTWORD_MAX:
            raise InputError("hotwords.bad_word", limit=HOTWORD_MAX)
        words = await self.moderation.hotwords(guild_id)
        if clean not in words and len(words) >= HOTWORDS_MAX:
            raise InputError("hotwords.full", limit=HOTWORDS_MAX)
        await self.moderation.add_hotword(guild_id, clean, actor_id)
        return clean

    # --- spoken prompts -------------------------------------------------------------------

    async def transcribe(
        self, guild_id: int, channel_id: int, user_id: int, audio: SpeechAudio
    ) -> str:
        """Speech to text under the server's rules: ban, channel, model, cost, blocklist.

        Free unless a moderator priced ASR_MODEL; a priced transcription is charged like a job
        (a `transcript` row) and refunded once if it fails.
        """
        self._refuse_if_halted()
        if self.media is None:
            raise InputError("voice.unavailable")
        await self.rules.check(guild_id, channel_id, user_id, models.ASR_MODEL, None)
        cost = await self.rules.cost(guild_id, models.ASR_MODEL, {}, default=0)
        charge = await self._charge_transcript(guild_id, channel_id, user_id, cost)
        try:
            text = await self._speech_to_text(guild_id, audio)
        except BaseException as exc:
            if charge is not None:
                await self.store.end(
                    charge.id, JobState.FAILED, "transcribe_failed", str(exc)[:200], refund=True
                )
            raise
        if charge is not None:
            await self.store.mark_generated(charge.id, "transcript", "")
            await self.store.mark_delivered(charge.id, None)
        await self.rules.check(guild_id, channel_id, user_id, models.ASR_MODEL, text)
        return text

    async def _speech_to_text(self, guild_id: int, audio: SpeechAudio) -> str:
        """The transcript, cleaned; member-worded errors for the provider's refusals."""
        assert self.media is not None
        hotwords = await self.moderation.hotwords(guild_id)
        try:
            transcript = await self.media.transcribe(
                audio.path, mime=audio.format.mime, hotwords=hotwords
            )
        except ProviderError as exc:
            log.warning("transcription failed: %s", exc)
            raise BotError(member_message(MediaAction.TRANSCRIBE, exc)) from None
        text = models.clean_prompt(transcript.text)
        if not text:
            raise InputError("voice.no_words")
        return text

    async def _charge_transcript(
        self, guild_id: int, channel_id: int, user_id: int, cost: int
    ) -> Job | None:
        """A priced transcription's row, charged and in a provider slot; None when free."""
        if cost <= 0:
            return None
        request = JobRequest(
            guild_id, channel_id, user_id, models.ASR_MODEL, Mode.TEXT, None, origin=Origin.VOICE
        )
        quote = Quote(request, None, cost, JobState.SUBMITTING)
        new = replace(self._new_job(quote), mode=TRANSCRIPT_MODE)
        return await self._refusing(
            quote, self.store.create(new, (), **await self._limits(request))
        )

    # --- reports from the front end -------------------------------------------------------

    async def claim_delivery(self, job_id: int) -> bool:
        """Hold a finished job's lease for its delivery (False: another process delivers it)."""
        return await self.leases.claim_delivery(job_id)

    def made_here(self, job_id: int) -> bool:
        """Whether this process finished the job (so no other can have posted its result)."""
        return job_id in self.leases.made_here

    async def mark_delivered(self, job_id: int, message_id: int | None) -> bool:
        """The video was posted."""
        self.leases.delivered(job_id)
        done = await self.store.mark_delivered(job_id, message_id)
        if done:
            log.info("job %d delivered as message %s", job_id, message_id)
        return done

    async def set_delivery_note(self, job_id: int, note: Msg) -> None:
        """Why a private result did not reach the requester's DMs (shown in /jobs)."""
        await self.store.set_delivery_note(job_id, DM_FAILED, note.encode())

    async def mark_undeliverable(self, job_id: int, reason: Msg) -> bool:
        """The video could not be posted anywhere: refund and keep the reason for /jobs."""
        self.leases.delivered(job_id)
        done = await self.store.end(
            job_id,
            JobState.UNDELIVERABLE,
            "undeliverable",
            reason.encode(),
            refund=True,
            from_states=(JobState.SUCCEEDED,),
        )
        if done:
            log.warning("job %d undeliverable: %s", job_id, render(DEFAULT_LOCALE, reason))
        return done

    # --- the scheduler --------------------------------------------------------------------

    async def start(self) -> None:
        """Take over jobs left by stopped processes, then start the scheduler and sweep loops."""
        self._closing = False
        self.schedule.observe_many(await self.store.recent_observations())
        await self.leases.start(sole_process=self.config.sole_process)
        await self._ask_again()
        self._loop_task = spawn(self._run(), name="engine-scheduler")
        self._sweep_task = spawn(self._sweep_loop(), name="engine-retention")

    async def close(self, submit_grace: float = 10.0, *, release: bool = True) -> None:
        """Stop the loops; let submits in flight land (a cut submit is ambiguous), drop polls.

        The leases are given up, so other processes take the jobs over at once; `release=False`
        leaves them to run out, as a killed process does (tests of the takeover).
        """
        self._closing = True
        for loop_task in (self._loop_task, self._sweep_task):
            if loop_task is not None:
                loop_task.cancel()
                await asyncio.gather(loop_task, return_exceptions=True)
        self._loop_task = self._sweep_task = None
        for task in self._polls:
            task.cancel()
        if self._flusher is not None:  # let a batch of poll results land (losing it is harmless)
            await asyncio.gather(self._flusher, return_exceptions=True)
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
        await self.leases.close(release=release)  # after the submits: a cut one is ambiguous

    def wake(self) -> None:
        """Make the scheduler look at the database now (a job arrived or a slot freed)."""
        self._fill_due = True
        self._wake.set()

    def _note_next(self, at: float) -> None:
        """A job's next poll time was written outside a pass: wake only if it precedes the plan."""
        if at >= self._planned_wake:
            return
        if self._in_pass:  # the pass computes its sleep after this: let it include `at`
            self._soonest = min(self._soonest, at)
        elif self._sleep is not None and not self._sleep.expired():
            # Bring the sleep forward: no pass is needed until then.
            self._planned_wake = at
            loop = asyncio.get_running_loop()
            self._sleep.reschedule(loop.time() + max(0.0, at - time.time()))
        else:
            self._wake.set()

    async def _took_over(self, job: Job) -> None:
        """A job whose holder stopped is now ours: a submit that may have arrived is never
        resent (ended, refunded); a result is delivered; a task is polled."""
        if job.state is JobState.SUBMITTING:
            await self._end(
                job,
                ProviderErrorKind.AMBIGUOUS,
                "submit_unconfirmed",
                "process stopped mid-submit",  # not for members
                from_states=(JobState.SUBMITTING,),
            )
        elif job.state is JobState.SUCCEEDED:
            self._emit(JobEvent.FINISHED, job)  # not delivered yet: the front end delivers it
        else:
            self._note_next(job.next_poll_at or time.time())

    async def _ask_again(self) -> None:
        """Requests whose moderators were never asked (the process died first): each asked by
        one process, the one whose claim wins (a live asker's claim is left alone)."""
        every = self.config.sole_process
        for job in await self.store.in_states((JobState.PENDING_APPROVAL,)):
            if job.approval_message_id is None and await self.leases.store.claim_ask(
                job.id, every=every
            ):
                self._emit(JobEvent.PENDING_APPROVAL, job)

    async def _run(self) -> None:
        """One loop for every job: submit into free slots, start due polls, sleep until next."""
        while not self._closing:
            self._wake.clear()
            self._in_pass, self._soonest, self._planned_wake = True, math.inf, math.inf
            try:
                self.last_pass = begun = time.time()
                if begun - self._last_sweep >= self.config.approval_sweep_seconds:
                    self._last_sweep = begun
                    await self.expire_approvals(begun)
                if self._fill_due:  # only a freed slot, a new job or a timed wake-up can submit
                    self._fill_due = False
                    await self._fill_slots()
                await self._start_due_polls()
                # Sleep until the next future time, or a wake(): a slot freed, a job arrived, a
                # poll's next time comes first, or polls left due found room.
                delay = await self._idle_time(begun)
            except Exception:
                log.exception("scheduler pass failed; retrying shortly")
                delay = 1.0
            self._in_pass = False
            now = time.time()
            delay = max(0.0, min(delay, self._soonest - now))
            self._planned_wake = now + delay
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow the cancel of close().
            try:
                async with asyncio.timeout(delay) as self._sleep:
                    await self._wake.wait()
            except TimeoutError:
                self._fill_due = True  # a queued job's retry time may have come
            finally:
                self._sleep = None

    async def _idle_time(self, since: float) -> float:
        """Seconds until the next poll or retry time after `since` (the pass looked at all
        before), or the end of a halt; capped at 60 s."""
        now = time.time()
        at = await self.store.next_wake(since, self.leases.owner)
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
        # Jobs waiting for a submit slot hold a provider slot too (they are not marked yet).
        active = await self.store.count_active() + self._waiting_submits
        free = self.config.max_concurrent - active
        if free <= 0:
            return 0
        started = 0
        for job in await self.store.fair_queue(now, free):
            if self._halted(job.provider):
                continue  # its provider's account is blocked; other providers' jobs go on
            if job.id not in self._busy:
                self._busy.add(job.id)
                self._waiting_submits += 1
                self._track(self._submits, spawn(self._submit(job), name=f"submit-job-{job.id}"))
                started += 1
        return started

    async def _start_due_polls(self) -> int:
        """Start a poll task for each due job not already being polled; how many started.

        At most twice `poll_concurrency` poll tasks exist; when due polls are left over, the
        polls in flight wake the loop once half of them are done (`_poll`).
        """
        limit = 2 * self.config.poll_concurrency - len(self._polls)
        if limit <= 0:
            self._backlog = True
            return 0
        jobs = await self.store.due_polls(time.time(), limit, self._busy, self.leases.owner)
        self._backlog = len(jobs) >= limit
        started = 0
        for job in jobs:
            if job.id in self._busy:
                continue
            if time.time() >= self._deadline(job):  # its polls were brought forward to this
                await self._time_out(job)
            else:
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
        """Send one job to the provider; its state says what happened whatever the outcome.

        At most `submit_concurrency` submits are in flight (httpx slows down past ~8-16); a job
        waiting for its turn is still queued, so a shutdown meanwhile leaves it queued.
        """
        waiting = True
        try:
            async with self._submit_slots:
                # Counted as waiting until the claim is committed: on PostgreSQL a concurrent
                # count_active may run on another connection before it and not see it yet.
                claimed = not self._closing and await self.leases.claim_submit(
                    job.id, self.config.max_concurrent
                )
                waiting = False
                self._waiting_submits -= 1
                if claimed:
                    await (self._send_still(job) if job.mode == Mode.STILL else self._send(job))
        finally:
            if waiting:  # cancelled in the queue
                self._waiting_submits -= 1
            self._busy.discard(job.id)
            self.wake()

    async def _send(self, job: Job) -> None:
        """The submit itself, for a job the store has just marked as submitting."""
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
            now = time.time()
            first = now + self.schedule.first_delay(job.model, job.options)
            first = min(first, now + self._budget(job))
            await self.store.mark_processing(job.id, task_id, first)
            log.info("job %d submitted as task %s", job.id, task_id)
            await self._emit_job(JobEvent.STARTED, job.id)

    async def _send_still(self, job: Job) -> None:
        """Make one still inside a provider slot: the answer is the picture, nothing to poll."""
        sending = False
        try:
            failpoint("before_submit")
            sending = True
            result = await self._generate_still(job)
            failpoint("after_submit")
        except ProviderError as exc:
            await self._submit_failed(job, exc)
        except Exception as exc:  # as for videos: never leave the job `submitting`
            log.exception("job %d: unexpected error in still submit", job.id)
            await self._submit_failed(job, _internal_error(exc, sent=sending))
        else:
            if await self.store.mark_generated(job.id, result.created_id, result.url):
                self.leases.made_here.add(job.id)
                log.info("job %d: still made", job.id)
                await self._emit_job(JobEvent.FINISHED, job.id)

    async def _generate_still(self, job: Job) -> _Still:
        """POST the still's request; its link (valid 30 days: delivery downloads it at once)."""
        if self.media is None:
            raise ProviderError(ProviderErrorKind.BAD_REQUEST, "no_media", "no media provider")
        options = job.options
        request = stills.validate_still(
            job.prompt, job.model, options.get("size"), options.get("quality")
        )
        result = await self.media.generate_still(request, models.provider_user_id(job.user_id))
        return _Still(f"still-{result.created or 0}", result.url)

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
        text = msg(NO_LINK, model=job.model).encode()
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

    async def _end(
        self,
        job: Job,
        kind: ProviderErrorKind,
        code: str,
        message: str,
        from_states: Sequence[JobState] = UNFINISHED,
    ) -> None:
        """End a job badly with a refund (if it is still in `from_states`), and report it."""
        state = JobState.REFUSED if kind is ProviderErrorKind.CONTENT_FILTER else JobState.FAILED
        if kind is ProviderErrorKind.BAD_REQUEST:
            log.error(
                "job %d: provider rejected our parameters (bug): %s %s", job.id, code, message
            )
        if kind is ProviderErrorKind.CONTENT_FILTER:
            detail = f"job {job.id}: content filter ({code})"  # not for members
            await self.moderation.audit(
                job.guild_id, job.user_id, "content_filter", detail, job.user_id
            )
        error = ProviderError(kind, code, message)
        action = _MEDIA_ACTIONS.get(job.mode)
        user_text = member_message(action, error) if action else error.text
        if await self.store.end(
            job.id, state, code, user_text.encode(), refund=True, from_states=from_states
        ):
            log.info("job %d %s (%s): refunded", job.id, state, code)
            await self._emit_job(JobEvent.FAILED, job.id)

    async def _poll(self, job: Job) -> None:
        """Poll one task and move the job on."""
        handed = False  # the job stays busy until the flusher has written its next poll time
        settled = False  # its next step is recorded (or it ended): no pass needed for it
        try:
            provider = self.router.get(ProviderName(job.provider))
            if provider is None:
                await self._end(job, ProviderErrorKind.BAD_REQUEST, "provider_off", OFF_TEXT)
                settled = True
                return
            async with self._poll_slots:
                sent = time.time()
                state = await provider.get_task(job.task_id or "")
            handed = await self._apply_poll(job, state, sent)
            settled = True
        except ProviderError as exc:
            await self._poll_failed(job, exc)
            settled = True
        except Exception as exc:  # a bug must not leave the job due (re-polled in a tight loop)
            log.exception("job %d: unexpected error in poll", job.id)
            await self._poll_failed(job, _internal_error(exc, sent=False))
            settled = True
        finally:
            if not handed:
                self._busy.discard(job.id)
            # An unexpected error left the job due; or polls were left due for lack of room:
            # start more once half of these are done.
            backlog = self._backlog and len(self._polls) <= self.config.poll_concurrency
            if not settled or backlog:
                self._wake.set()

    async def _apply_poll(self, job: Job, state: TaskState, sent: float) -> bool:
        """Record a poll's answer (sent at `sent`); True if it was handed to the flusher."""
        now = time.time()
        submitted = job.submitted_at or now
        if state.status is TaskStatus.PROCESSING:
            delay = self._next_delay(job, now - submitted, state)
            at = self._due(job, now + delay)
            self._running.append((job.id, at, sent))
            if self._flusher is None:
                self._flusher = spawn(self._flush_running(), name="engine-poll-writes")
            self._report_progress(job, state.progress)
            return True
        if state.status is TaskStatus.SUCCESS:
            self._forget_progress(job.id)
            if await self.store.mark_succeeded(job.id, state.video_url or "", state.cover_url):
                self.leases.made_here.add(job.id)
                # It finished after the last poll that found it running, before this answer.
                lower = job.last_running_at - submitted if job.last_running_at else 0.0
                self.schedule.observe(job.model, job.options, lower, now - submitted)
                log.info("job %d finished after %d polls", job.id, job.polls + 1)
                failpoint("after_succeeded")
                self.wake()  # a slot freed
                await self._emit_job(JobEvent.FINISHED, job.id)
            else:  # the job ended meanwhile (e.g. timed out): its credit is back already
                log.warning("job %d: the video came after the job ended; ignored", job.id)
        else:
            self._forget_progress(job.id)
            reason = state.message or "generation failed"  # not for members
            if await self.store.end(
                job.id, JobState.FAILED, "generation_failed", reason, refund=True
            ):
                log.info("job %d failed at the provider: %s", job.id, reason)
                self.wake()  # a slot freed
                await self._emit_job(JobEvent.FAILED, job.id)
        return False

    async def _flush_running(self) -> None:
        """Write the polls that found tasks still running, all waiting ones per transaction."""
        try:
            while self._running:
                batch, self._running = self._running, []
                try:
                    await self.store.mark_running(batch)
                except Exception:
                    log.exception("writing %d poll results failed; they poll again", len(batch))
                finally:  # written or not (then polled again as still due), they are free
                    for job_id, _, _ in batch:
                        self._busy.discard(job_id)
                failpoint("after_poll")
                self._note_next(min(at for _, at, _ in batch))
        finally:
            self._flusher = None

    def _next_delay(self, job: Job, elapsed: float, state: TaskState) -> float:
        """The next poll at the finish the provider's progress predicts (within the schedule's
        spacing and its longest gap), else the learned schedule's delay."""
        remaining = progress.remaining_seconds(elapsed, state.progress)
        if remaining is None:
            return self.schedule.next_delay(job.model, elapsed, job.options)
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
                job,
                ProviderErrorKind.BAD_REQUEST,
                "task_unknown",
                "the provider lost the task",  # not for members
            )
            self.wake()  # a slot freed
            return
        if exc.kind in (ProviderErrorKind.AUTH, ProviderErrorKind.ACCOUNT):
            log.critical("job %d: poll refused by Z.AI (%s); will keep trying", job.id, exc)
        else:
            log.warning("job %d: poll failed (%s); will retry", job.id, exc)
        delay = self.schedule.retry_delay(min(job.polls, 6), exc.retry_after)
        at = self._due(job, time.time() + delay)
        await self.store.mark_polled(job.id, at)
        self._note_next(at)

    # --- task deadlines -------------------------------------------------------------------

    def _budget(self, job: Job) -> float:
        """Seconds the provider gets for the job's task (per model, from the learned times)."""
        return self.schedule.deadline(job.model, job.options)

    def _deadline(self, job: Job) -> float:
        """When the job's task is given up."""
        return (job.submitted_at or job.created_at) + self._budget(job)

    def _due(self, job: Job, at: float) -> float:
        """A poll time, brought forward to the deadline: the job ends on time, not a poll late."""
        return min(at, self._deadline(job))

    async def _time_out(self, job: Job) -> None:
        """The task outlived its deadline: end the job, refund it once, tell the member. The
        provider is not asked again; a video it makes later is never collected."""
        minutes = max(1, round(self._budget(job) / 60))
        text = msg("job.timed_out", count=minutes).encode()
        done = await self.store.end(
            job.id,
            JobState.TIMED_OUT,
            "timed_out",
            text,
            refund=True,
            from_states=(JobState.PROCESSING,),
        )
        if done:
            log.warning(
                "job %d: task %s passed its deadline; timed out, refunded", job.id, job.task_id
            )
            await self._emit_job(JobEvent.FAILED, job.id)

    # --- retention ------------------------------------------------------------------------

    async def sweep(self, now: float | None = None) -> SweepReport:
        """Delete the pictures (and, with HISTORY_DAYS, job rows) no job can use any more."""
        return await self.retention.sweep(time.time() if now is None else now)

    async def purge_pictures(self, job_id: int) -> SweepReport:
        """The Delete button: an ended job's pictures go now, unless another job links them."""
        report = await self.retention.purge(job_id)
        if report.pictures_deleted:
            log.info("job %d deleted: %s", job_id, report.summary())
        return report

    async def _sweep_loop(self) -> None:
        """Sweep at start and then every `sweep_seconds`; a failed sweep is logged and retried."""
        while not self._closing:
            try:
                report = await self.sweep()
                if report.pictures_deleted or report.jobs_deleted:
                    log.info("retention sweep: %s", report.summary())
            except Exception:
                log.exception("retention sweep failed; trying again at the next interval")
            await asyncio.sleep(self.config.sweep_seconds)

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


@dataclass(frozen=True)
class _Still:
    """A made still: an id for the logs and its link."""

    created_id: str
    url: str


def _not_cancellable(job: Job) -> Msg:
    """Why a job can no longer be cancelled, for its requester."""
    if job.state in AT_PROVIDER or job.state is JobState.SUCCEEDED:
        return msg("cancel.at_provider", id=job.id)
    if job.state is JobState.DELIVERED:
        return msg("cancel.delivered", id=job.id)
    return msg("cancel.ended", id=job.id, state=Msg(f"state.{job.state.value}"))


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


OFF_TEXT = (
    "the provider of this job is no longer configured (its key was removed)"  # not for members
)


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
