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
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from bot import models
from bot.errors import InputError, ProviderError, ProviderErrorKind, QuotaError
from bot.failpoints import failpoint
from bot.images import ImageInfo, fit_image, inspect_image, to_data_uri
from bot.models import Mode, VideoOptions
from bot.policy import Policy
from bot.provider import TaskState, TaskStatus, VideoProvider
from bot.schedule import PollPolicy, PollSchedule
from bot.tasks import spawn
from storage.credits import Credits
from storage.jobs import Job, JobStore, NewJob, StoredImage
from storage.moderation import ModerationStore

log = logging.getLogger(__name__)


class JobEvent(StrEnum):
    """What the engine tells the front end."""

    QUEUED = "queued"
    STARTED = "started"
    FINISHED = "finished"
    FAILED = "failed"
    HALTED = "halted"  # the provider account cannot take work (balance, auth): tell moderators
    PENDING_APPROVAL = "pending_approval"  # waiting for a moderator's decision


class JobListener(Protocol):
    """The front end's side of the engine."""

    async def job_event(self, event: JobEvent, job: Job) -> None:
        """Called (in its own task) for every job event."""
        ...


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
    origin: str = "slash"
    parent_job_id: int | None = None
    upload_limit: int | None = None


@dataclass(frozen=True)
class Prepared:
    """A request that passed every check; accepting it only costs a credit."""

    request: JobRequest
    prompt: str | None
    images: tuple[StoredImage, ...]
    cost: int


@dataclass(frozen=True)
class EngineConfig:
    """Limits the engine enforces."""

    max_concurrent: int = 5  # ZAI_MAX_CONCURRENT_TASKS
    max_inflight_per_user: int = 2
    poll_concurrency: int = 8  # polls in flight at once: httpx slows down past ~8-16
    submit_concurrency: int = 8  # submits in flight at once, for the same reason
    max_submit_attempts: int = 20  # ~30 min of backoff: an outage of minutes delays, never fails
    halt_seconds: float = 300.0  # after an account error, wait this long before trying again


def prepare_images(model: str, mode: Mode, images: Sequence[bytes]) -> tuple[StoredImage, ...]:
    """Inspect, check against the model's rules and fit under its byte limit (CPU-bound)."""
    spec = models.get_spec(model)
    infos: list[ImageInfo] = [inspect_image(data) for data in images]
    models.check_images(model, mode, infos)
    stored = []
    for data in images:
        fitted, mime = fit_image(data, max_bytes=spec.max_image_bytes, formats=spec.image_formats)
        info = inspect_image(fitted)
        stored.append(StoredImage(mime, info.width, info.height, fitted))
    return tuple(stored)


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
    ) -> None:
        self.store = store
        self.credits = credits
        self.moderation = moderation or ModerationStore(store.db)
        self.rules = Policy(self.moderation)
        self.provider = provider
        self.config = config or EngineConfig()
        typical = {name: spec.typical_seconds for name, spec in models.MODELS.items()}
        self.schedule = PollSchedule(policy or PollPolicy(), typical)
        self.listener: JobListener | None = None
        self.halted_until = 0.0
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
        self._closing = False

    # --- accepting requests ---------------------------------------------------------------

    async def cost_for(self, guild_id: int, model: str, options: VideoOptions) -> int:
        """Credits a request costs on this server (the moderators' cost table)."""
        return await self.rules.cost(guild_id, model, options.given())

    async def check_policy(self, request: JobRequest) -> None:
        """The moderators' rules: ban, channel, model, blocklist (refusals are audited)."""
        self._refuse_if_halted()
        prompt = models.clean_prompt(request.prompt)
        await self.rules.check(
            request.guild_id, request.channel_id, request.user_id, request.model, prompt
        )

    async def prepare(self, request: JobRequest) -> Prepared:
        """Every check that needs no credit: prompt, options, images (in a thread)."""
        prompt = models.check_request(request.model, request.mode, request.prompt, request.options)
        images = await asyncio.to_thread(
            prepare_images, request.model, request.mode, request.images
        )
        cost = await self.cost_for(request.guild_id, request.model, request.options)
        return Prepared(request, prompt, images, cost)

    async def accept(self, prepared: Prepared) -> Job:
        """Check the rules, reserve the credit and queue the job in one transaction."""
        req = prepared.request
        await self.check_policy(req)
        settings = await self.moderation.settings(req.guild_id)
        state = "pending_approval" if settings.approval_channel_id else "queued"
        new = NewJob(
            guild_id=req.guild_id,
            channel_id=req.channel_id,
            user_id=req.user_id,
            model=req.model,
            mode=req.mode.value,
            prompt=prepared.prompt,
            options=req.options.given(),
            origin=req.origin,
            cost=prepared.cost,
            request_id=uuid.uuid4().hex,
            parent_job_id=req.parent_job_id,
            state=state,
            upload_limit=req.upload_limit,
        )
        allowance = await self.credits.allowance(req.guild_id, req.user_id)
        try:
            job = await self.store.create(
                new,
                prepared.images,
                allowance=allowance,
                max_inflight=self.config.max_inflight_per_user,
                guild_cap=settings.daily_cap,
            )
        except QuotaError as exc:
            await self.moderation.audit(req.guild_id, req.user_id, "refused", exc.user_message)
            raise
        log.info(
            "job %d accepted (%s): %s/%s for user %d",
            job.id,
            state,
            job.model,
            job.mode,
            job.user_id,
        )
        failpoint("after_accept")
        self._emit(
            JobEvent.PENDING_APPROVAL if state == "pending_approval" else JobEvent.QUEUED, job
        )
        self.wake()
        return job

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
            job_id, "rejected", "rejected", text, refund=True, from_states=("pending_approval",)
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

    async def submit(self, request: JobRequest) -> Job:
        """prepare + accept."""
        return await self.accept(await self.prepare(request))

    async def resubmit(self, job_id: int, user_id: int, *, origin: str) -> Job:
        """A new job with the same model, prompt, options and images (re-roll)."""
        job = await self.store.get(job_id)
        if job is None:
            raise InputError("That video is no longer known to the bot.")
        request = JobRequest(
            job.guild_id,
            job.channel_id,
            user_id,
            job.model,
            Mode(job.mode),
            job.prompt,
            VideoOptions(**job.options),
            origin=origin,
            parent_job_id=job.id,
            upload_limit=job.upload_limit,
        )
        images = tuple(await self.store.inputs(job.id))
        cost = await self.cost_for(job.guild_id, job.model, request.options)
        return await self.accept(Prepared(request, job.prompt, images, cost))

    def _refuse_if_halted(self) -> None:
        """Refuse new work plainly while the provider account is blocked."""
        if time.time() < self.halted_until:
            raise QuotaError(
                "The bot's video service account cannot take new work right now "
                "(the moderators have been told). Nothing was charged; try again later."
            )

    async def queue_position(self, job_id: int) -> int:
        """1-based place of a queued job in the fair order."""
        return await self.store.queue_position(job_id)

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
            "undeliverable",
            "undeliverable",
            reason,
            refund=True,
            from_states=("succeeded",),
        )
        if done:
            log.warning("job %d undeliverable: %s", job_id, reason)
        return done

    async def fail(self, job_id: int, code: str, message: str, *, state: str = "failed") -> bool:
        """End an unfinished job with a refund (used by moderation and cancellations)."""
        ended = await self.store.end(job_id, state, code, message, refund=True)
        if ended:
            self.wake()  # it may have held a provider slot
            await self._emit_job(JobEvent.FAILED, job_id)
        return ended

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

    async def _recover(self) -> None:
        """A job caught mid-submit may or may not exist at the provider: never resend it."""
        self.schedule.observe_many(await self.store.recent_observations())
        for job in await self.store.in_states(("submitting",)):
            await self._end(
                job, ProviderErrorKind.AMBIGUOUS, "submit_unconfirmed", "process stopped mid-submit"
            )
        for job in await self.store.in_states(("succeeded",)):
            self._emit(JobEvent.FINISHED, job)  # not delivered yet: the front end delivers it
        for job in await self.store.in_states(("pending_approval",)):
            if job.approval_message_id is None:  # died before the moderators were asked
                self._emit(JobEvent.PENDING_APPROVAL, job)

    async def _run(self) -> None:
        """One loop for every job: submit into free slots, start due polls, sleep until next."""
        while not self._closing:
            self._wake.clear()
            self._in_pass, self._soonest, self._planned_wake = True, math.inf, math.inf
            try:
                begun = time.time()
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
        at = await self.store.next_wake(since)
        if self.halted_until > now:
            at = min(at or self.halted_until, self.halted_until)
        if at is None:
            return 60.0
        return min(60.0, max(0.0, at - now))

    async def _fill_slots(self) -> int:
        """Submit queued jobs, fairly, while the provider has free slots; how many started."""
        now = time.time()
        if now < self.halted_until:
            return 0
        # Jobs waiting for a submit slot hold a provider slot too (they are not marked yet).
        active = await self.store.count_active() + self._waiting_submits
        free = self.config.max_concurrent - active
        if free <= 0:
            return 0
        started = 0
        for job in await self.store.fair_queue(now, free):
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
        jobs = await self.store.due_polls(time.time(), limit, self._busy)
        self._backlog = len(jobs) >= limit
        started = 0
        for job in jobs:
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
        """Send one job to the provider; its state says what happened whatever the outcome.

        At most `submit_concurrency` submits are in flight (httpx slows down past ~8-16); a job
        waiting for its turn is still 'queued', so a shutdown meanwhile leaves it queued.
        """
        waiting = True
        try:
            async with self._submit_slots:
                waiting = False
                self._waiting_submits -= 1
                if not self._closing and await self.store.mark_submitting(job.id):
                    await self._send(job)
        finally:
            if waiting:  # cancelled in the queue
                self._waiting_submits -= 1
            self._busy.discard(job.id)
            self.wake()

    async def _send(self, job: Job) -> None:
        """The submit itself, for a job marked 'submitting'."""
        try:
            body = await self._body(job)
            failpoint("before_submit")
            task_id = await self.provider.submit(body)
            failpoint("after_submit")
        except ProviderError as exc:
            await self._submit_failed(job, exc)
        else:
            first = time.time() + self.schedule.first_delay(job.model, job.options)
            await self.store.mark_processing(job.id, task_id, first)
            log.info("job %d submitted as task %s", job.id, task_id)
            await self._emit_job(JobEvent.STARTED, job.id)

    async def _body(self, job: Job) -> dict[str, object]:
        """The request body, images as data: URIs (Discord links expire; the provider may not reach them)."""
        inputs = await self.store.inputs(job.id)
        uris = await asyncio.to_thread(lambda: [to_data_uri(i.data, i.mime) for i in inputs])
        return models.build_body(
            job.model,
            Mode(job.mode),
            job.prompt,
            VideoOptions(**job.options),
            uris,
            request_id=job.request_id,
            user_id=models.provider_user_id(job.user_id),
        )

    async def _submit_failed(self, job: Job, exc: ProviderError) -> None:
        """Requeue what can be retried safely; end (and refund) the rest."""
        retryable = exc.kind is ProviderErrorKind.RETRY
        if retryable and job.attempts + 1 < self.config.max_submit_attempts:
            at = time.time() + self.schedule.retry_delay(job.attempts + 1, exc.retry_after)
            await self.store.requeue(job.id, at, exc.code, exc.message)
            log.warning(
                "job %d submit deferred (%s); retry in %.1fs", job.id, exc, at - time.time()
            )
            return
        if exc.kind in (ProviderErrorKind.ACCOUNT, ProviderErrorKind.AUTH):
            self._halt(job, exc)
        ambiguous = exc.kind is ProviderErrorKind.AMBIGUOUS
        log.warning("job %d submit failed: %s", job.id, exc)
        await self._end(job, exc.kind, "submit_unconfirmed" if ambiguous else exc.code, exc.message)

    def _halt(self, job: Job, exc: ProviderError) -> None:
        """Stop submitting for a while and say so loudly: only an operator can fix this."""
        already = time.time() < self.halted_until
        self.halted_until = time.time() + self.config.halt_seconds
        if already:  # tell moderators once per outage, not once per failing job
            return
        self.halt_reason = f"{exc.kind.value}: {exc.message}"
        log.critical("Z.AI refused work for the account (%s); submissions paused", exc)
        self._emit(JobEvent.HALTED, job)

    async def _end(self, job: Job, kind: ProviderErrorKind, code: str, message: str) -> None:
        """End a job badly with a refund, and report it."""
        state = "refused" if kind is ProviderErrorKind.CONTENT_FILTER else "failed"
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
        handed = False  # the job stays busy until the flusher has written its next poll time
        settled = False  # its next step is recorded (or it ended): no pass needed for it
        try:
            async with self._poll_slots:
                sent = time.time()
                state = await self.provider.get_task(job.task_id or "")
            handed = await self._apply_poll(job, state, sent)
            settled = True
        except ProviderError as exc:
            await self._poll_failed(job, exc)
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
            at = now + self.schedule.next_delay(job.model, now - submitted, job.options)
            self._running.append((job.id, at, sent))
            if self._flusher is None:
                self._flusher = spawn(self._flush_running(), name="engine-poll-writes")
            return True
        if state.status is TaskStatus.SUCCESS:
            if await self.store.mark_succeeded(job.id, state.video_url or "", state.cover_url):
                # It finished after the last poll that found it running, before this answer.
                lower = job.last_running_at - submitted if job.last_running_at else 0.0
                self.schedule.observe(job.model, job.options, lower, now - submitted)
                log.info("job %d finished after %d polls", job.id, job.polls + 1)
                failpoint("after_succeeded")
                self.wake()  # a slot freed
                await self._emit_job(JobEvent.FINISHED, job.id)
        else:
            reason = state.message or "generation failed"
            if await self.store.end(job.id, "failed", "generation_failed", reason, refund=True):
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

    async def _poll_failed(self, job: Job, exc: ProviderError) -> None:
        """A poll that failed is tried again later: the task is still ours to collect."""
        if exc.status == 404 and job.polls >= 3:
            await self._end(
                job, ProviderErrorKind.BAD_REQUEST, "task_unknown", "the provider lost the task"
            )
            self.wake()  # a slot freed
            return
        if exc.kind in (ProviderErrorKind.AUTH, ProviderErrorKind.ACCOUNT):
            log.critical("job %d: poll refused by Z.AI (%s); will keep trying", job.id, exc)
        else:
            log.warning("job %d: poll failed (%s); will retry", job.id, exc)
        at = time.time() + self.schedule.retry_delay(min(job.polls, 6), exc.retry_after)
        await self.store.mark_polled(job.id, at)
        self._note_next(at)

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


__all__ = [
    "Engine",
    "EngineConfig",
    "InputError",
    "JobEvent",
    "JobListener",
    "JobRequest",
    "Prepared",
]
