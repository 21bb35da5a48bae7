"""Spoken prompts: a voice message replying to the bot, one sent in a DM, or `/video text voice:`.

The recording is converted (bot/voice.py), transcribed under the server's rules
(Engine.transcribe: ban, channel, model, cost, blocklist) and shown to the member with
Generate / Edit / Cancel; Generate runs the normal text-to-video pipeline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands

from bot import models
from bot.engine import JobRequest, Origin
from bot.errors import BotError, InputError
from bot.models import Mode
from bot.voice import check_declared, speech_from_url
from cogs.common import audio_attachments, only, safe_prompt
from cogs.replies import GENERIC_ERROR, report_error, say

if TYPE_CHECKING:
    from cogs.app import VideoBot
    from cogs.video import Video

log = logging.getLogger(__name__)

TRANSCRIPT_TIMEOUT = 600.0  # the buttons answer for ten minutes; then ask again
AUDIO_SUFFIXES = (".ogg", ".opus", ".mp3", ".m4a", ".wav", ".flac", ".webm", ".aac", ".mp4")
MakeRequest = Callable[[str], JobRequest]


def transcript_text(text: str) -> str:
    """What the member sees: the transcript and what the buttons do."""
    warn = ""
    if len(text) > models.PROMPT_MAX:
        warn = f"\n⚠️ That is over {models.PROMPT_MAX} characters: **Edit** it shorter first."
    return (
        f"🎙️ I heard:\n> {safe_prompt(text, 1500)}\n"
        f"**Generate** makes a video from it, **Edit** lets you fix it first.{warn}"
    )


def check_audio(attachment: discord.Attachment) -> None:
    """Cheap checks from the attachment's metadata, before anything is downloaded."""
    kind = attachment.content_type or ""
    if not kind.startswith("audio/") and not attachment.filename.lower().endswith(AUDIO_SUFFIXES):
        raise InputError(
            f"`{attachment.filename}` is not audio. Attach a voice recording (ogg, mp3, m4a, wav)."
        )
    check_declared(attachment.size, attachment.duration)


class TranscriptModal(discord.ui.Modal, title="Edit your prompt"):
    """The transcript in a text box; submitting generates from the edited text."""

    prompt: discord.ui.TextInput[TranscriptModal] = discord.ui.TextInput(
        label="Prompt",
        style=discord.TextStyle.paragraph,
        max_length=models.PROMPT_MAX,
        custom_id="transcript:prompt",
    )

    def __init__(self, view: TranscriptView) -> None:
        super().__init__()
        self.view = view
        self.prompt.default = view.text[: models.PROMPT_MAX]

    async def on_submit(self, interaction: discord.Interaction) -> None:
        """Generate from what the member typed."""
        await self.view.generate(interaction, self.prompt.value)

    async def on_error(self, interaction: discord.Interaction, error: Exception) -> None:
        """Same boundary as commands."""
        await report_error(interaction, error)


class TranscriptView(discord.ui.View):
    """Generate / Edit / Cancel under a transcript; only the member who spoke can press them."""

    def __init__(self, cog: Voice, user_id: int, text: str, make: MakeRequest) -> None:
        super().__init__(timeout=TRANSCRIPT_TIMEOUT)
        self.cog = cog
        self.user_id = user_id
        self.text = text
        self.make = make

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """Only the member whose recording it was."""
        if interaction.user.id != self.user_id:
            await say(interaction, "These buttons are for the person who sent the recording.")
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
        await interaction.response.edit_message(
            content=f"🎙️ Making a video from:\n> {safe_prompt(text, 1500)}", view=None
        )
        await self.cog.video.pipeline(
            self.cog.engine.quote(self.make(text)), self.cog.video.interaction_entry(interaction)
        )

    @discord.ui.button(label="Generate", emoji="🎬", style=discord.ButtonStyle.primary)
    async def go(self, interaction: discord.Interaction, _: discord.ui.Button[Any]) -> None:
        """Make the video from the transcript as heard."""
        await self.generate(interaction, self.text)

    @discord.ui.button(label="Edit", emoji="✏️", style=discord.ButtonStyle.secondary)
    async def edit(self, interaction: discord.Interaction, _: discord.ui.Button[Any]) -> None:
        """Open the transcript in a text box."""
        await interaction.response.send_modal(TranscriptModal(self))

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary)
    async def cancel(self, interaction: discord.Interaction, _: discord.ui.Button[Any]) -> None:
        """Drop it: nothing is made or charged."""
        self.stop()
        await interaction.response.edit_message(
            content="Cancelled; no video was made and nothing was charged.", view=None
        )


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
        view = TranscriptView(self, template.user_id, text, lambda t: replace(template, prompt=t))
        await interaction.followup.send(transcript_text(text), view=view, ephemeral=True)

    # --- voice messages ---------------------------------------------------------------------

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        """A voice message in a DM, or one replying to the bot's message, is a spoken prompt."""
        audio = audio_attachments(message)
        if message.author.bot or not audio or not await self._meant_for_me(message):
            return
        try:
            await self._from_message(message, audio[0])
        except BotError as exc:
            await message.reply(exc.user_message, allowed_mentions=only(message.author.id))
        except Exception:
            log.exception("voice message %d failed", message.id)
            await message.reply(GENERIC_ERROR, mention_author=False)

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

    async def _from_message(self, message: discord.Message, attachment: discord.Attachment) -> None:
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
        view = TranscriptView(self, user_id, text, lambda t: replace(template, prompt=t))
        await message.reply(transcript_text(text), view=view, allowed_mentions=only(user_id))


async def setup(bot: VideoBot) -> None:
    """Extension entry point: add the cog (VideoBot.wire connects it to the pipeline)."""
    await bot.add_cog(Voice(bot))
