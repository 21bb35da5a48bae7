"""Spoken prompts: a voice message replying to the bot, one sent in a DM, or `/video text voice:`.

The recording is converted (bot/voice.py), transcribed under the server's rules
(Engine.transcribe: ban, channel, model, cost, blocklist) and shown to the member with
Generate / Edit / Cancel; Generate runs the normal text-to-video pipeline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands

from bot import models
from bot.engine import JobRequest, Origin
from bot.errors import BotError, InputError
from bot.i18n import render
from bot.models import Mode
from bot.voice import check_declared, speech_from_url
from cogs.common import audio_attachments, inert, only, safe_prompt
from cogs.replies import GENERIC_ERROR, member_locale, report_error, say

if TYPE_CHECKING:
    from cogs.app import VideoBot
    from cogs.video import Video

log = logging.getLogger(__name__)

TRANSCRIPT_TIMEOUT = 600.0  # the buttons answer for ten minutes; then ask again
AUDIO_SUFFIXES = (".ogg", ".opus", ".mp3", ".m4a", ".wav", ".flac", ".webm", ".aac", ".mp4")
MakeRequest = Callable[[str], JobRequest]


def transcript_text(locale: str, text: str) -> str:
    """What the member sees: the transcript and what the buttons do."""
    heard = render(locale, "voice.heard", prompt=safe_prompt(locale, text, 1500))
    if len(text) > models.PROMPT_MAX:
        heard += "\n" + render(locale, "voice.too_long_edit", limit=models.PROMPT_MAX)
    return heard


def check_audio(attachment: discord.Attachment) -> None:
    """Cheap checks from the attachment's metadata, before anything is downloaded."""
    kind = attachment.content_type or ""
    if not kind.startswith("audio/") and not attachment.filename.lower().endswith(AUDIO_SUFFIXES):
        raise InputError("voice.not_audio_file", name=inert(attachment.filename, 100))
    check_declared(attachment.size, attachment.duration)


class TranscriptModal(discord.ui.Modal):
    """The transcript in a text box; submitting generates from the edited text."""

    def __init__(self, view: TranscriptView) -> None:
        super().__init__(title=render(view.locale, "modal.transcript.title"))
        self.view = view
        self.prompt: discord.ui.TextInput[TranscriptModal] = discord.ui.TextInput(
            label=render(view.locale, "modal.transcript.prompt"),
            style=discord.TextStyle.paragraph,
            max_length=models.PROMPT_MAX,
            custom_id="transcript:prompt",
            default=view.text[: models.PROMPT_MAX],
        )
        self.add_item(self.prompt)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        """Generate from what the member typed."""
        await self.view.generate(interaction, self.prompt.value)

    async def on_error(self, interaction: discord.Interaction, error: Exception) -> None:
        """Same boundary as commands."""
        await report_error(interaction, error)


class TranscriptView(discord.ui.View):
    """Generate / Edit / Cancel under a transcript; only the member who spoke can press them."""

    def __init__(self, cog: Voice, user_id: int, text: str, make: MakeRequest, locale: str) -> None:
        super().__init__(timeout=TRANSCRIPT_TIMEOUT)
        self.cog = cog
        self.user_id = user_id
        self.text = text
        self.make = make
        self.locale = locale
        self.go.label = render(locale, "voice.generate")
        self.edit.label = render(locale, "voice.edit")
        self.cancel.label = render(locale, "button.cancel")

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """Only the member whose recording it was."""
        if interaction.user.id != self.user_id:
            await say(interaction, "voice.not_yours")
            return False
        return True

    async def on_error(
        self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item[Any]
    ) -> None:
        """Same boundary as commands."""
        await report_error(interaction, error)

    async def generate(self, interaction: discord.Interaction, text: str) -> None:
        """Close the buttons, then quote → confirm → accept a text-to-video request."""
        self.stop()
        making = render(self.locale, "voice.making", prompt=safe_prompt(self.locale, text, 1500))
        await interaction.response.edit_message(content=making, view=None)
        await self.cog.video.pipeline(
            self.cog.engine.quote(self.make(text)), self.cog.video.interaction_entry(interaction)
        )

    @discord.ui.button(emoji="🎬", style=discord.ButtonStyle.primary)
    async def go(self, interaction: discord.Interaction, _: discord.ui.Button[Any]) -> None:
        """Make the video from the transcript as heard."""
        await self.generate(interaction, self.text)

    @discord.ui.button(emoji="✏️", style=discord.ButtonStyle.secondary)
    async def edit(self, interaction: discord.Interaction, _: discord.ui.Button[Any]) -> None:
        """Open the transcript in a text box."""
        await interaction.response.send_modal(TranscriptModal(self))

    @discord.ui.button(style=discord.ButtonStyle.secondary)
    async def cancel(self, interaction: discord.Interaction, _: discord.ui.Button[Any]) -> None:
        """Drop it: nothing is made or charged."""
        self.stop()
        cancelled = render(self.locale, "voice.cancelled")
        await interaction.response.edit_message(content=cancelled, view=None)


class Voice(commands.Cog):
    """Spoken prompts from voice messages and from /video text's recording option."""

    video: Video  # wired by VideoBot.wire: the shared pipeline

    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot
        self.engine = bot.resources.engine

    async def transcribe(
        self, attachment: discord.Attachment, guild_id: int, channel_id: int, user_id: int
    ) -> str:
        """Download into the scratch folder, convert, transcribe under the server's rules."""
        resources = self.bot.resources
        async with speech_from_url(
            resources.http,
            attachment.url,
            resources.scratch,
            trusted_hosts=resources.settings.trusted_hosts,
        ) as audio:
            return await self.engine.transcribe(guild_id, channel_id, user_id, audio)

    # --- /video text voice: -----------------------------------------------------------------

    async def from_slash(
        self, interaction: discord.Interaction, attachment: discord.Attachment, template: JobRequest
    ) -> None:
        """The recording option: the transcript and its buttons privately."""
        check_audio(attachment)  # refusals before the ack stay a direct answer
        await interaction.response.defer(ephemeral=True, thinking=True)
        text = await self.transcribe(
            attachment, template.guild_id, template.channel_id, template.user_id
        )
        locale = member_locale(interaction)
        make = partial(replace, template)
        view = TranscriptView(self, template.user_id, text, lambda t: make(prompt=t), locale)
        await interaction.followup.send(transcript_text(locale, text), view=view, ephemeral=True)

    # --- voice messages ---------------------------------------------------------------------

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        """A voice message in a DM, or one replying to the bot's message, is a spoken prompt."""
        audio = audio_attachments(message)
        if message.author.bot or not audio or not await self._meant_for_me(message):
            return
        locale = self.video.mention_locale(message)
        try:
            await self._from_message(message, audio[0], locale)
        except BotError as exc:
            text = render(locale, exc.text)
            await message.reply(text, allowed_mentions=only(message.author.id))
        except Exception:
            log.exception("voice message %d failed", message.id)
            await message.reply(render(locale, GENERIC_ERROR), mention_author=False)

    async def _meant_for_me(self, message: discord.Message) -> bool:
        """In a DM, always; in a server, only as a reply to one of the bot's messages."""
        me = self.bot.user
        if me is None:
            return False
        if message.guild is None:
            return True
        ref = message.reference
        if ref is None or ref.message_id is None:
            return False
        replied = ref.resolved if isinstance(ref.resolved, discord.Message) else None
        if replied is None:
            try:
                replied = await message.channel.fetch_message(ref.message_id)
            except discord.HTTPException:
                return False
        return replied.author.id == me.id

    async def _from_message(
        self, message: discord.Message, attachment: discord.Attachment, locale: str
    ) -> None:
        """Transcribe, then reply with the transcript and its buttons."""
        check_audio(attachment)
        guild = message.guild
        guild_id = guild.id if guild is not None else 0  # DMs: the bot's own allowance
        channel_id, user_id = message.channel.id, message.author.id
        text = await self.transcribe(attachment, guild_id, channel_id, user_id)
        template = JobRequest(
            guild_id,
            channel_id,
            user_id,
            None,  # the member's text model (their default), chosen when quoted
            Mode.TEXT,
            None,
            origin=Origin.VOICE,
            upload_limit=guild.filesize_limit if guild is not None else None,
        )
        view = TranscriptView(self, user_id, text, lambda t: replace(template, prompt=t), locale)
        reply = transcript_text(locale, text)
        await message.reply(reply, view=view, allowed_mentions=only(user_id))


async def setup(bot: VideoBot) -> None:
    """Extension entry point: add the cog (VideoBot.wire connects it to the pipeline)."""
    await bot.add_cog(Voice(bot))
