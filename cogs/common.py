"""Helpers the cogs share: attachment checks, texts of status and result messages."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

import discord

from bot.engine import TRANSCRIPT_MODE
from bot.errors import InputError
from bot.i18n import Msg, locale_of, render
from bot.images import format_size
from bot.media import DISCORD_ATTACHMENT_HOSTS, download_bytes
from bot.models import Mode
from bot.providers import ProviderName
from bot.settings import Settings
from storage.rows import Job
from storage.states import JobState

MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024  # larger pictures are never needed for a 1080p video
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")
MODE_BY_COUNT = {1: Mode.IMAGE, 2: Mode.FRAMES, 3: Mode.REFERENCE}
FIRST_FRAME_NOTE = "note.first_frame"
STATE_ICONS: dict[JobState, str] = {
    JobState.PENDING_APPROVAL: "⏳",
    JobState.QUEUED: "🕒",
    JobState.SUBMITTING: "🎬",
    JobState.PROCESSING: "🎬",
    JobState.SUCCEEDED: "📦",
    JobState.DELIVERED: "✅",
    JobState.FAILED: "❌",
    JobState.REFUSED: "🚫",
    JobState.REJECTED: "🚫",
    JobState.UNDELIVERABLE: "⚠️",
    JobState.TIMED_OUT: "⌛",
    JobState.CANCELLED: "✖️",
    JobState.EXPIRED: "⌛",
}


def only(user_id: int) -> discord.AllowedMentions:
    """Allowed mentions that can ping this one user and nobody else."""
    return discord.AllowedMentions(everyone=False, roles=False, users=[discord.Object(user_id)])


def check_attachment(attachment: discord.Attachment, n: int = 1) -> None:
    """Cheap checks from the attachment's metadata, before acknowledging."""
    name = attachment.filename
    kind = attachment.content_type or ""
    name = inert(name, 100)
    if kind and not kind.startswith("image/"):
        raise InputError("attachment.not_picture", name=name, kind=inert(kind, 100))
    if not kind and not attachment.filename.lower().endswith(IMAGE_SUFFIXES):
        raise InputError("attachment.unlike_picture", name=name)
    if attachment.size == 0:
        raise InputError("attachment.empty", name=name)
    if attachment.size > MAX_ATTACHMENT_BYTES:
        limit = format_size(MAX_ATTACHMENT_BYTES)
        raise InputError(
            "attachment.too_large", n=n, size=format_size(attachment.size), limit=limit
        )


def check_attachments(attachments: Sequence[discord.Attachment]) -> None:
    """Check each attachment's metadata."""
    for n, attachment in enumerate(attachments, start=1):
        check_attachment(attachment, n)


async def fetch_images(
    bot: discord.Client, attachments: Sequence[discord.Attachment]
) -> list[bytes]:
    """Download attachments from Discord's hosts only (streamed, capped)."""
    resources = bot.resources  # type: ignore[attr-defined]
    settings: Settings = resources.settings
    return [
        await download_bytes(
            resources.http,
            attachment.url,
            max_bytes=MAX_ATTACHMENT_BYTES,
            allowed_hosts=DISCORD_ATTACHMENT_HOSTS,
            trusted_hosts=settings.trusted_hosts,
        )
        for attachment in attachments
    ]


def ts(when: float, style: str = "R") -> str:
    """A Discord timestamp tag."""
    return f"<t:{int(when)}:{style}>"


def jump_url(guild_id: int, channel_id: int, message_id: int) -> str:
    """Link to a message."""
    return f"https://discord.com/channels/{guild_id}/{channel_id}/{message_id}"


def describe_options(locale: str, job: Job) -> str:
    """The settings of a job in one short line."""
    parts = [f"{k}={v}" for k, v in sorted(job.options.items())]
    return ", ".join(parts) or render(locale, "job.model_defaults")


def short(text: str | None, limit: int) -> str:
    """Cut text to a limit with an ellipsis."""
    text = text or ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


# Every markdown character a member could use, backslash-escaped (Discord shows an escaped
# punctuation character as itself), except inside bare links: those show their real address,
# so they stay links. discord.utils.escape_markdown is not enough: it escapes only the first of
# two masked links on a line, and not a backslash typed before one (`\\[x](https://evil)`).
_MARKUP = re.compile(r"(?P<url>https?://[^\s<\[\]()]+)|(?P<char>[\\*_~|`\[\]<>#\-])")


def inert(text: str | None, limit: int, *, one_line: bool = True) -> str:
    """Text from a member (or the provider) that cannot format, link, ping or break the message.

    The one helper for everything the bot echoes: prompts, reasons, provider messages.
    """
    text = (text or "").replace("\r", " ")
    if one_line:  # before escaping: a newline inside `[a]\n(url)` must not join a link
        text = text.replace("\n", " ")
    text = discord.utils.escape_mentions(text)
    return short(_MARKUP.sub(lambda m: m["url"] or "\\" + m["char"], text), limit)


def safe_prompt(locale: str, prompt: str | None, limit: int = 300) -> str:
    """A prompt quoted so it cannot format, link, ping or break the message."""
    if not prompt:
        return render(locale, "job.no_prompt")
    return inert(prompt, limit)


def duration_text(locale: str, seconds: float) -> str:
    """`2 min 05 s` style."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return render(locale, "time.seconds", seconds=seconds)
    return render(locale, "time.minutes", minutes=seconds // 60, seconds=f"{seconds % 60:02d}")


def noun(job: Job) -> Msg:
    """What a job makes, as members read it: "picture" for a still, else "video"."""
    kind = {Mode.STILL.value: "picture", TRANSCRIPT_MODE: "transcription"}.get(job.mode, "video")
    return Msg(f"noun.{kind}")


def noun_title(job: Job) -> Msg:
    """The same noun as a title starts with it ("Video")."""
    return Msg(noun(job).key.replace("noun.", "noun_title.", 1))


def stored_text(locale: str, text: str | None, limit: int = 500) -> str:
    """A job's stored reason in a language: a catalog message (its words from members or the
    provider quoted inert), or quoted plain text."""
    message = Msg.decode(text)
    if message is None:
        return inert(text, limit)
    return short(render(locale, _inert_params(message, limit)), limit)


def _inert_params(message: Msg, limit: int) -> Msg:
    """A stored message whose text parameters cannot format, link or ping."""
    params = {
        k: _inert_params(v, limit)
        if isinstance(v, Msg)
        else inert(v, limit)
        if isinstance(v, str)
        else v
        for k, v in message.params.items()
    }
    return Msg(message.key, params)


def server_locale(bot: discord.Client, guild_id: int) -> str:
    """The language of a channel post: the server's preferred locale (else en-US)."""
    known = getattr(bot, "guild_locales", {}).get(guild_id)  # learned from interactions
    if known is not None:
        return known
    guild = bot.get_guild(guild_id)
    return locale_of(guild.preferred_locale if guild is not None else None)


def audio_attachments(message: discord.Message) -> list[discord.Attachment]:
    """Attachments that claim to be audio (a voice message's ogg/opus, mp3, m4a, ...)."""
    return [a for a in message.attachments if (a.content_type or "").startswith("audio/")]


# How members see each provider (the API format that holds the task): catalog keys.
PROVIDER_LABELS: dict[str, str] = {
    ProviderName.ZAI: "provider_name.zai",
    ProviderName.GATEWAY: "provider_name.gateway",
    ProviderName.GEEKAI: "provider_name.geekai",
}


def provider_name(locale: str, provider: str) -> str:
    """A provider, in words."""
    key = PROVIDER_LABELS.get(provider)
    return render(locale, key) if key else provider


def provider_label(locale: str, job: Job) -> str:
    """The provider that makes (or made) a job, in words."""
    return provider_name(locale, job.provider)


def result_embed(locale: str, job: Job) -> discord.Embed:
    """Prompt, model, settings and time taken of a finished job."""
    embed = discord.Embed(
        title=render(locale, "embed.title", noun=noun_title(job), id=job.id),
        description=inert(job.prompt, 4000, one_line=False)
        if job.prompt
        else render(locale, "job.no_prompt"),
    )
    embed.add_field(name=render(locale, "embed.model"), value=f"{job.model} ({job.mode})")
    settings = short(describe_options(locale, job), 1024)
    embed.add_field(name=render(locale, "embed.settings"), value=settings)
    embed.add_field(name=render(locale, "embed.made_by"), value=provider_label(locale, job))
    if job.finished_at:
        taken = duration_text(locale, job.finished_at - job.created_at)
        embed.add_field(name=render(locale, "embed.time_taken"), value=taken)
    embed.timestamp = dt.datetime.fromtimestamp(job.finished_at or job.created_at, tz=dt.UTC)
    return embed
