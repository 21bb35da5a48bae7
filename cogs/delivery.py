"""Engine events → Discord: status edits, and the finished video posted back in its channel."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import logging
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
import discord
from discord.ext import commands

from bot.engine import JobEvent
from bot.errors import BotError, UnsafeURLError
from bot.failpoints import failpoint
from bot.i18n import Msg, msg, render
from bot.images import format_size
from bot.media import TooLargeError, VideoError, download_to_file, reencode_to_fit
from bot.models import Mode
from bot.providers import Picture
from bot.providers.progress import remaining_seconds
from bot.tasks import spawn
from cogs.buttons import result_view, status_view
from cogs.common import (
    FIRST_FRAME_NOTE,
    STATE_ICONS,
    jump_url,
    noun,
    only,
    result_embed,
    safe_prompt,
    server_locale,
    stored_text,
    ts,
)
from storage.rows import Job
from storage.states import AT_PROVIDER, ENDED_BADLY
from storage.states import JobState as S

if TYPE_CHECKING:
    from cogs.app import VideoBot


class Moderators(Protocol):
    """Where Delivery sends what moderators must see (the Admin cog, wired by VideoBot.wire)."""

    async def on_job_pending_approval(self, job: Job) -> None:
        """Ask the moderators to approve a job."""
        ...

    async def on_provider_halted(self, job: Job, reason: str | None) -> None:
        """Tell the moderators the provider account stopped taking work."""
        ...

    async def on_job_withdrawn(self, job: Job) -> None:
        """A request waiting for approval ended without a decision (cancelled or expired)."""
        ...


log = logging.getLogger(__name__)

MAX_RESULT_BYTES = 512 * 1024 * 1024  # a 10 s 4K video is far below this; anything larger is wrong
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
UPLOAD_HEADROOM = 64 * 1024  # the JSON payload and multipart framing share the upload limit
LINK_LIFETIME = 24 * 3600  # Vidu documents one day; assume the same for every model
STILL_LINK_LIFETIME = 30 * 24 * 3600  # seed 003: image links expire after 30 days
SEND_ATTEMPTS = 3
DOWNLOAD_ATTEMPTS = 5  # the provider's link lives a day: a flaky CDN is worth a few tries
COVER_MAX_BYTES = 2 * 1024 * 1024
RESULT_SEARCH_LIMIT = 100  # messages read after a recovered job finished, looking for its result
QUEUE_LIVE_POSITIONS = 10  # queued jobs whose position is kept up to date
# An interaction token lasts 15 minutes; a follow-up is not tried in its last minute.
PRIVATE_REPLY_SECONDS = 14 * 60
QUEUE_HORIZON = 365 * 24 * 3600.0  # include jobs waiting out a retry delay
# Sending again with the same nonce is safe: Discord answers with the message it already made.
_TRANSPORT_ERRORS = (aiohttp.ClientError, OSError, asyncio.TimeoutError)


class Undeliverable(Exception):
    """The video cannot be posted anywhere; the reason (a catalog message) goes to /jobs."""

    def __init__(self, reason: Msg) -> None:
        super().__init__(reason.key)
        self.reason = reason


def status_text(
    locale: str,
    job: Job,
    *,
    position: int | None,
    expected: float,
    progress: int | None = None,
    eta: float | None = None,
) -> str:
    """The status line of a job in each state (`eta`: when a queued job should start)."""
    body = _status_body(locale, job, position, expected, progress, eta)
    head = render(
        locale,
        "status.head",
        user=f"<@{job.user_id}>",
        noun=noun(job),
        id=job.id,
        model=job.model,
        icon=STATE_ICONS[job.state],
        body=body,
    )
    note = "\n" + render(locale, FIRST_FRAME_NOTE) if job.first_frame_only else ""
    return head + note + f"\n> {safe_prompt(locale, job.prompt, 200)}"


def _generating(job: Job, expected: float, progress: int | None) -> Msg:
    """Started when, expected when; the provider's progress and its prediction where known."""
    started = job.submitted_at or time.time()
    remaining = remaining_seconds(time.time() - started, progress)
    finish = time.time() + remaining if remaining is not None else started + expected
    if progress is not None:
        return msg(
            "status.generating_progress", percent=progress, started=ts(started), expected=ts(finish)
        )
    return msg("status.generating", started=ts(started), expected=ts(finish))


def _status_body(
    locale: str,
    job: Job,
    position: int | None,
    expected: float,
    progress: int | None,
    eta: float | None,
) -> Msg | str:
    """What the status line says after the icon."""
    state = job.state
    if state is S.PENDING_APPROVAL:
        return Msg("status.pending_approval")
    if state is S.QUEUED and eta is not None:
        return msg("status.queued_eta", position=position or 1, eta=ts(eta))
    if state is S.QUEUED:
        return msg("status.queued", position=position or 1)
    if state in AT_PROVIDER:
        return _generating(job, expected, progress)
    if state is S.SUCCEEDED:
        return Msg("status.uploading")
    if state is S.DELIVERED and job.result_message_id:
        link = jump_url(job.guild_id, job.channel_id, job.result_message_id)
        return msg("status.done", link=link)
    if state is S.DELIVERED:
        return Msg("status.done_dm")
    if job.error_message:
        return stored_text(locale, job.error_message)
    return Msg(f"state.{job.state.value}")


class Delivery(commands.Cog):
    """The engine's listener: keeps status messages current and posts results."""

    moderators: Moderators | None = None  # wired by VideoBot.wire

    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot
        self.engine = bot.resources.engine
        self._locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._last_edit: dict[int, float] = {}
        self._pending: set[int] = set()
        self._timers: set[asyncio.Task[None]] = set()
        self.scratch = bot.resources.scratch
        # job id → (ephemeral follow-up of its interaction, monotonic deadline): in memory only,
        # since an interaction token is a credential and lives 15 minutes anyway.
        self._private_replies: dict[int, tuple[Callable[..., Awaitable[Any]], float]] = {}
        self.private_reply_seconds = PRIVATE_REPLY_SECONDS

    async def cog_load(self) -> None:
        """Empty the scratch directory: whatever is there was left by a killed process."""
        await asyncio.to_thread(_fresh_dir, self.scratch)

    async def cog_unload(self) -> None:
        """Drop delayed status edits (the next start re-renders from the database)."""
        for task in self._timers:
            task.cancel()

    async def job_event(self, event: JobEvent, job: Job) -> None:
        """React to one engine event."""
        moderators = self.moderators
        if event is JobEvent.FINISHED:
            await self.deliver(job.id)
        elif event is JobEvent.HALTED:
            if moderators is not None:
                await moderators.on_provider_halted(job, self.engine.halt_reason)
        else:  # edits nothing until the launcher has posted the status message
            await self.refresh_status(job.id, force=event is JobEvent.FAILED)
        if event is JobEvent.PENDING_APPROVAL and moderators is not None:
            await moderators.on_job_pending_approval(job)
        if event is JobEvent.FAILED and job.approval_message_id and moderators is not None:
            await moderators.on_job_withdrawn(job)
        if event in (JobEvent.STARTED, JobEvent.FAILED, JobEvent.FINISHED):
            await self._refresh_queue()

    # --- pictures for providers that take links only ---------------------------------------

    async def publish_pictures(self, job: Job, pictures: Sequence[Picture]) -> list[str]:
        """Attach the job's normalised pictures to its own status message; their CDN links.

        Discord's links expire (`ex=`) and show only the normalised copy (metadata stripped),
        in the channel where the member asked. If the status message is not posted yet, it is
        posted here (its nonce makes the launcher's own post return this one).
        """
        files = [
            discord.File(io.BytesIO(p.data), f"picture-{n}.{p.mime.split('/')[-1]}")
            for n, p in enumerate(pictures, start=1)
        ]
        if job.private:  # nothing public: the pictures go to the requester's DMs
            user = await self.bot.fetch_user(job.user_id)
            text = render(self._dm_locale(job), "dm.pictures", noun=noun(job), id=job.id)
            message = await (await user.create_dm()).send(text, files=files)
            return _links(message, pictures)
        channel = self.bot.get_partial_messageable(job.channel_id, guild_id=job.guild_id)
        async with self._locks[job.id]:
            fresh = await self.engine.job(job.id) or job
            if fresh.status_message_id is None:  # submitted before the launcher posted it
                message = await self._send_status(fresh, channel, files=files)
            else:
                partial = channel.get_partial_message(fresh.status_message_id)
                message = await partial.edit(attachments=files)
        return _links(message, pictures)

    # --- status messages ------------------------------------------------------------------

    async def post_status(
        self, job: Job, channel: discord.abc.Messageable, **kwargs: object
    ) -> discord.Message:
        """Post a job's public status message and remember it."""
        async with self._locks[job.id]:
            fresh = await self.engine.job(job.id) or job
            message = await self._send_status(fresh, channel, **kwargs)
        if fresh.state is not S.QUEUED:
            await self.refresh_status(job.id)
        return message

    async def _send_status(
        self, job: Job, channel: discord.abc.Messageable, **kwargs: object
    ) -> discord.Message:
        """Post the status message (its nonce makes a repeat return the first one) and keep it."""
        message = await channel.send(
            await self._render(job),
            view=status_view(job, self.locale(job)),  # type: ignore[arg-type]  # None: none
            allowed_mentions=discord.AllowedMentions.none(),
            nonce=f"status-{job.id}",
            **kwargs,
        )
        await self.engine.set_status_message(job.id, message.id)
        self._last_edit[job.id] = time.monotonic()
        return message

    async def refresh_status(self, job_id: int, *, force: bool = False) -> None:
        """Edit a status message, at most once per `status_interval` unless forced."""
        if job_id in self._pending and not force:
            return
        wait = self.bot.status_interval - (time.monotonic() - self._last_edit.get(job_id, -1e9))
        if wait > 0 and not force:
            self._pending.add(job_id)
            task = spawn(self._refresh_later(job_id, wait), name=f"status-job-{job_id}")
            self._timers.add(task)
            task.add_done_callback(self._timers.discard)
            return
        await self._edit_status(job_id)

    async def _refresh_later(self, job_id: int, wait: float) -> None:
        """One delayed edit that picks up every change made meanwhile."""
        await asyncio.sleep(wait)  # throttling Discord edits, not synchronising a test
        self._pending.discard(job_id)
        await self._edit_status(job_id)

    async def _edit_status(self, job_id: int) -> None:
        """Render the job's current state into its status message (bot endpoints, not webhooks)."""
        async with self._locks[job_id]:
            job = await self.engine.job(job_id)
            if job is None:
                return
            if job.status_message_id is None:
                await self._status_for_bad_end(job)
                return
            message = self.bot.get_partial_messageable(job.channel_id).get_partial_message(
                job.status_message_id
            )
            try:
                await message.edit(
                    content=await self._render(job),
                    view=status_view(job, self.locale(job)),  # None: Cancel goes once started
                    allowed_mentions=discord.AllowedMentions.none(),
                )
            except discord.NotFound:
                log.info("job %d: status message is gone", job_id)
            except discord.HTTPException as exc:
                log.warning("job %d: status edit failed: %s", job_id, exc)
            self._last_edit[job_id] = time.monotonic()

    async def _status_for_bad_end(self, job: Job) -> None:
        """A job that ended badly before its status was posted (e.g. a crash) still says so."""
        if job.state not in ENDED_BADLY or job.private:  # a private one: /jobs says why
            return
        channel = self.bot.get_partial_messageable(job.channel_id, guild_id=job.guild_id)
        try:
            message = await self._send_status(job, channel)
            text = await self._render(job)
            if message.content != text:  # Discord returned the copy a killed process had posted
                await message.edit(content=text, allowed_mentions=discord.AllowedMentions.none())
        except discord.HTTPException as exc:
            log.warning("job %d: could not post its %s status: %s", job.id, job.state, exc)

    def locale(self, job: Job) -> str:
        """The language of a job's channel posts: the server's."""
        return server_locale(self.bot, job.guild_id)

    def _dm_locale(self, job: Job) -> str:
        """The language of a DM to the requester: their client's when they last asked, else
        the server's (a bot cannot see a member's language outside an interaction)."""
        known = getattr(self.bot, "member_locales", {}).get(job.user_id)
        return known or self.locale(job)

    async def _render(self, job: Job) -> str:
        """The status text with the live queue position and expected time."""
        queued = job.state is S.QUEUED
        position = await self.engine.queue_position(job.id) if queued else None
        eta = await self.engine.queue_eta(job, position) if position is not None else None
        expected = self.engine.expected_seconds(job.model, job.options)
        progress = self.engine.progress_of(job.id)
        return status_text(
            self.locale(job),
            job,
            position=position,
            expected=expected,
            progress=progress,
            eta=eta,
        )

    async def _refresh_queue(self) -> None:
        """Queue positions moved: refresh the status of the jobs next in line (throttled).

        Re-rendering every queued job on every movement costs hundreds of edits a second under
        load, far past Discord's rate limits and ahead of the uploads that matter; a job's
        position goes live once it is among the next few to start.
        """
        head = await self.engine.next_in_queue(QUEUE_LIVE_POSITIONS, QUEUE_HORIZON)
        for job in head:
            if job.status_message_id is not None:
                await self.refresh_status(job.id)

    # --- delivery -------------------------------------------------------------------------

    async def deliver(self, job_id: int) -> None:
        """Post a finished job once; refund it if it cannot be posted anywhere."""
        async with self._locks[-job_id]:  # its own lock: status edits go on meanwhile
            job = await self.engine.job(job_id)
            if job is None or job.state is not S.SUCCEEDED:
                return
            if not await self.engine.claim_delivery(job_id):  # another process delivers it
                return
            try:
                message_id = await self._posted_before_restart(job) or await self._post_result(job)
                failpoint("after_upload")
            except Undeliverable as exc:
                await self.engine.mark_undeliverable(job.id, exc.reason)
            except Exception:  # never leave a job silently stuck in "succeeded"
                log.exception("job %d: delivery failed unexpectedly", job.id)
                await self.engine.mark_undeliverable(job.id, Msg("undeliverable.unexpected"))
            else:
                await self.engine.mark_delivered(job.id, message_id)
        await self.refresh_status(job_id, force=True)

    async def _posted_before_restart(self, job: Job) -> int | None:
        """The result an earlier process posted but did not record (it was killed in between).

        Discord answers a repeated nonce with the first message for a few minutes only; a job
        that another process (or this one before a restart) finished may have waited longer,
        so its channel is searched for the result first (one history read, only for such jobs).
        """
        if self.engine.made_here(job.id) or self.bot.user is None:
            return None
        since = dt.datetime.fromtimestamp(job.finished_at or 0, tz=dt.UTC)
        channel = self.bot.get_partial_messageable(job.channel_id, guild_id=job.guild_id)
        title = result_embed(self.locale(job), job).title
        try:
            async for message in channel.history(after=since, limit=RESULT_SEARCH_LIMIT):
                if message.author.id == self.bot.user.id and any(
                    embed.title == title for embed in message.embeds
                ):
                    log.info("job %d: found its result %d after the restart", job.id, message.id)
                    return message.id
        except discord.HTTPException as exc:  # no history access: rely on the nonce
            log.info("job %d: cannot search the channel (%s)", job.id, exc)
        return None

    async def _post_result(self, job: Job) -> int | None:
        """Download, fit to the upload limit, and send; returns the message id (None for a DM)."""
        await asyncio.to_thread(self.scratch.mkdir, mode=0o700, parents=True, exist_ok=True)
        if job.mode == Mode.STILL:
            return await self._post_still(job)
        with tempfile.TemporaryDirectory(prefix=f"job{job.id}-", dir=self.scratch) as tmp:
            video: Path | None = Path(tmp) / "video.mp4"
            size = await self._download(job, video)
            failpoint("after_download")
            limit = await self._upload_limit(job) - UPLOAD_HEADROOM
            content = self._ready(job)
            if size > limit:
                video, fitted_size = await self._shrink(job, video, size, limit)
                if video is None:
                    content = self._link_text(job, size, limit)
                size = fitted_size
            cover = await self._cover(job, Path(tmp) / "cover.jpg", limit - size)
            return await self._send_anywhere(job, content, video, cover)

    async def _post_still(self, job: Job) -> int | None:
        """Download the picture now (its link expires) and post it with its buttons."""
        with tempfile.TemporaryDirectory(prefix=f"job{job.id}-", dir=self.scratch) as tmp:
            picture: Path | None = Path(tmp) / "picture.png"
            size = await self._download(job, picture)
            failpoint("after_download")
            limit = await self._upload_limit(job) - UPLOAD_HEADROOM
            content = self._ready(job)
            if size > limit:
                expires = ts((job.finished_at or time.time()) + STILL_LINK_LIFETIME)
                content = render(
                    self._result_locale(job),
                    "result.picture_too_big",
                    user=f"<@{job.user_id}>",
                    expires=expires,
                    url=job.video_url,
                )
                picture = None
            return await self._send_anywhere(job, content, picture, None)

    def _result_locale(self, job: Job) -> str:
        """A result's language: the requester's for a private one (a DM), else the server's."""
        return self._dm_locale(job) if job.private else self.locale(job)

    def _ready(self, job: Job) -> str:
        """The text above a finished result."""
        key = "result.picture_ready" if job.mode == Mode.STILL else "result.video_ready"
        return render(self._result_locale(job), key, user=f"<@{job.user_id}>")

    async def _cover(self, job: Job, dest: Path, room: int) -> Path | None:
        """The provider's cover image, if there is one and it fits beside the video."""
        if not job.cover_url or room <= 0:
            return None
        try:
            await download_to_file(
                self.bot.resources.http,
                job.cover_url,
                dest,
                max_bytes=min(room, COVER_MAX_BYTES),
                allowed_hosts=None,
                trusted_hosts=self.bot.resources.settings.trusted_hosts,
            )
        except BotError as exc:
            log.info("job %d: no cover (%s)", job.id, exc)
            return None
        return dest

    async def _download(self, job: Job, dest: Path) -> int:
        """Fetch the provider's mp4 (streamed to a file), retrying transient failures."""
        settings = self.bot.resources.settings
        for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
            try:
                return await download_to_file(
                    self.bot.resources.http,
                    job.video_url or "",
                    dest,
                    max_bytes=MAX_RESULT_BYTES,
                    allowed_hosts=None,
                    trusted_hosts=settings.trusted_hosts,
                )
            except UnsafeURLError as exc:  # retrying cannot make the link safe
                log.warning("job %d: result link refused: %s", job.id, exc)
                raise Undeliverable(Msg("undeliverable.unsafe_link")) from None
            except TooLargeError:
                raise Undeliverable(Msg("undeliverable.too_large")) from None
            except BotError as exc:
                log.warning("job %d: download attempt %d failed: %s", job.id, attempt, exc)
                if attempt == DOWNLOAD_ATTEMPTS:
                    reason = _reason(exc)
                    raise Undeliverable(msg("undeliverable.download", reason=reason)) from None
                # Backoff before retrying the provider's CDN, on the engine's retry schedule.
                await asyncio.sleep(self.engine.schedule.retry_delay(attempt))
        raise AssertionError("unreachable")

    async def _upload_limit(self, job: Job) -> int:
        """The channel's upload limit: the interaction's, else the guild's, else 10 MiB.

        The guild is in the cache only where its shard is; another process (sharded, taking
        over the job) asks Discord over REST.
        """
        if job.upload_limit:
            return job.upload_limit
        guild = self.bot.get_guild(job.guild_id) if job.guild_id else None
        if guild is None and job.guild_id:
            try:
                guild = await self.bot.fetch_guild(job.guild_id)
            except (discord.HTTPException, *_TRANSPORT_ERRORS) as exc:
                log.info("job %d: guild %d unknown (%s); 10 MiB limit", job.id, job.guild_id, exc)
        return guild.filesize_limit if guild is not None else DEFAULT_UPLOAD_LIMIT

    async def _shrink(
        self, job: Job, video: Path, size: int, limit: int
    ) -> tuple[Path | None, int]:
        """Re-encode to fit the limit; (None, 0) if even that is too big."""
        log.info("job %d: %d bytes is above the %d upload limit; re-encoding", job.id, size, limit)
        smaller = video.with_name("video-small.mp4")
        try:
            fitted = await asyncio.to_thread(_reencode, video, smaller, limit)
        except VideoError as exc:  # an unreadable file can still be offered as a link
            log.warning("job %d: cannot re-encode (%s); posting the link", job.id, exc)
            return None, 0
        return (smaller, fitted) if fitted else (None, 0)

    def _link_text(self, job: Job, size: int, limit: int) -> str:
        """The message for a video that cannot be uploaded here."""
        expires = ts((job.finished_at or time.time()) + LINK_LIFETIME)
        return render(
            self._result_locale(job),
            "result.video_link",
            user=f"<@{job.user_id}>",
            size=format_size(size),
            limit=format_size(limit),
            expires=expires,
            url=job.video_url,
        )

    async def _send_anywhere(
        self, job: Job, content: str, video: Path | None, cover: Path | None
    ) -> int | None:
        """Post in the channel; if that is impossible, in the requester's DMs."""
        if job.private:
            return await self._send_private(job, content, video, cover)
        channel = self.bot.get_partial_messageable(job.channel_id, guild_id=job.guild_id)
        try:
            message = await self._send(job, channel, content, video, cover)
            return message.id
        except (discord.DiscordServerError, *_TRANSPORT_ERRORS) as exc:
            # The last attempt may have landed: a DM now could post the video twice.
            raise Undeliverable(_channel_reason(exc)) from None
        except discord.HTTPException as exc:  # a definite refusal: NotFound, Forbidden, 4xx
            why_not_channel = _channel_reason(exc)
            log.warning(
                "job %d: cannot post in channel %d (%s); trying DMs", job.id, job.channel_id, exc
            )
        try:
            user = await self.bot.fetch_user(job.user_id)
            where = f"<#{job.channel_id}>"
            dm_text = render(self.locale(job), "dm.fallback", channel=where) + "\n" + content
            await self._send(job, await user.create_dm(), dm_text, video, cover)
        except (discord.HTTPException, *_TRANSPORT_ERRORS) as exc:
            log.warning("job %d: DM to user %d failed too (%s)", job.id, job.user_id, exc)
            both = msg("undeliverable.both", channel=why_not_channel, dm=_dm_reason(exc))
            raise Undeliverable(both) from None
        return None

    def remember_private(self, job_id: int, send: Callable[..., Awaitable[Any]]) -> None:
        """Keep a private job's ephemeral follow-up while its interaction token is valid."""
        now = time.monotonic()
        for stale in [j for j, (_, until) in self._private_replies.items() if until <= now]:
            del self._private_replies[stale]
        self._private_replies[job_id] = (send, now + self.private_reply_seconds)

    async def _tell_privately(self, job: Job, reason: Msg) -> bool:
        """DMs closed: the download link as an ephemeral follow-up, if the token still lives."""
        send, until = self._private_replies.pop(job.id, (None, 0.0))
        if send is None or until <= time.monotonic() or not job.video_url:
            return False
        locale = self._dm_locale(job)
        text = render(
            locale, "result.dm_closed_private", noun=noun(job), id=job.id,
            reason=reason, url=job.video_url,
        )  # fmt: skip
        try:
            await send(text)
        except (discord.HTTPException, *_TRANSPORT_ERRORS) as exc:
            log.warning("job %d: the ephemeral link could not be sent either (%s)", job.id, exc)
            return False
        return True

    async def _send_private(
        self, job: Job, content: str, video: Path | None, cover: Path | None
    ) -> int | None:
        """A private result: in the requester's DMs with a link back to the channel; if DMs are
        closed, the download link ephemerally while the interaction token lives, else a short
        note in the channel; /jobs keeps the reason and the link either way."""
        back = f"https://discord.com/channels/{job.guild_id}/{job.channel_id}"
        try:
            user = await self.bot.fetch_user(job.user_id)
            asked = render(
                self._dm_locale(job), "dm.asked_in", channel=f"<#{job.channel_id}>", link=back
            )
            text = f"{content}\n{asked}"
            await self._send(job, await user.create_dm(), text, video, cover)
            self._private_replies.pop(job.id, None)
            return None
        except (discord.HTTPException, *_TRANSPORT_ERRORS) as exc:
            log.warning(
                "job %d: private result, DM to user %d failed (%s)", job.id, job.user_id, exc
            )
            reason = _dm_reason(exc)
        await self.engine.set_delivery_note(job.id, msg("dm.note_failed", reason=reason))
        if await self._tell_privately(job, reason):
            return None
        note = render(
            self.locale(job),
            "result.dm_closed",
            user=f"<@{job.user_id}>",
            noun=noun(job),
            id=job.id,
        )
        channel = self.bot.get_partial_messageable(job.channel_id, guild_id=job.guild_id)
        try:
            await channel.send(note, allowed_mentions=only(job.user_id), nonce=f"job-{job.id}")
        except (discord.HTTPException, *_TRANSPORT_ERRORS) as exc:
            log.warning("job %d: could not post the could-not-DM note either (%s)", job.id, exc)
        return None

    async def _send(
        self,
        job: Job,
        channel: discord.abc.Messageable,
        content: str,
        video: Path | None,
        cover: Path | None,
    ) -> discord.Message:
        """One send with a nonce (Discord answers a repeat with the first message), retried
        on server and network errors; the last error is raised when every attempt failed."""
        embed = result_embed(self._result_locale(job), job)
        if job.mode == Mode.STILL and video is not None:
            embed.set_image(url=f"attachment://{_result_name(job)}")
        if cover is not None:
            embed.set_thumbnail(url="attachment://cover.jpg")
        for attempt in range(1, SEND_ATTEMPTS + 1):
            try:
                return await channel.send(
                    content,
                    embed=embed,
                    files=_files(job, video, cover),
                    view=result_view(job, self._result_locale(job)),
                    allowed_mentions=only(job.user_id),
                    nonce=f"job-{job.id}",
                )
            except (discord.DiscordServerError, *_TRANSPORT_ERRORS) as exc:
                log.warning("job %d: send attempt %d failed: %r", job.id, attempt, exc)
                if attempt == SEND_ATTEMPTS:
                    raise
                await asyncio.sleep(2**attempt)  # backoff before retrying Discord
        raise AssertionError("unreachable")


def _links(message: discord.Message, pictures: Sequence[Picture]) -> list[str]:
    """The CDN links of the pictures a message carries (all of them, or an error)."""
    links = [a.url for a in message.attachments]
    if len(links) != len(pictures):
        raise RuntimeError(f"Discord kept {len(links)} of {len(pictures)} pictures")
    return links


def _files(job: Job, video: Path | None, cover: Path | None) -> list[discord.File]:
    """Fresh File objects for one send attempt (a sent File is consumed)."""
    files = [discord.File(video, filename=_result_name(job))] if video else []
    if cover is not None:
        files.append(discord.File(cover, filename="cover.jpg"))
    return files


def _result_name(job: Job) -> str:
    """The attachment's file name: picture-N.png for a still, video-N.mp4 otherwise."""
    return f"picture-{job.id}.png" if job.mode == Mode.STILL else f"video-{job.id}.mp4"


def _reason(exc: BotError) -> str:
    """A short operator-facing reason of a failed download (no advice meant for uploaders)."""
    return getattr(exc, "reason", None) or type(exc).__name__


def _channel_reason(exc: BaseException) -> Msg:
    """Why the channel did not take the video, for /jobs."""
    if isinstance(exc, discord.NotFound):
        return Msg("undeliverable.channel_gone")
    if isinstance(exc, discord.Forbidden):
        return Msg("undeliverable.channel_forbidden")
    if isinstance(exc, discord.DiscordServerError):
        return msg("undeliverable.discord_failing", status=exc.status)
    if isinstance(exc, discord.HTTPException):
        return msg("undeliverable.discord_refused", status=exc.status)
    return Msg("undeliverable.discord_unreachable")


def _dm_reason(exc: BaseException) -> Msg:
    """Why the DM fallback failed, for /jobs."""
    if isinstance(exc, discord.Forbidden):
        return Msg("undeliverable.dm_closed")
    if isinstance(exc, discord.NotFound):
        return Msg("undeliverable.account_gone")
    if isinstance(exc, discord.HTTPException):
        return msg("undeliverable.dm_failed", status=exc.status)
    return Msg("undeliverable.dm_unreachable")


def _fresh_dir(path: Path) -> None:
    """Remove a directory's leftovers and recreate it private."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def _reencode(src: Path, dest: Path, limit: int) -> int:
    """Re-encode under a byte limit; the new size, or 0 if it cannot fit (runs in a thread)."""
    return dest.stat().st_size if reencode_to_fit(src, dest, max_bytes=limit) else 0


async def setup(bot: VideoBot) -> None:
    """Extension entry point: add the cog (VideoBot.wire makes it the engine's listener)."""
    await bot.add_cog(Delivery(bot))
