"""/image: a still from a prompt (bot/stills.py's models), and its Animate / Re-roll / Details.

A still is a job like a video (mode `still`): quoted, confirmed, accepted, made in a provider
slot and posted by Delivery, so credits and every moderator rule apply the same way.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import metrics, models, stills
from bot.engine import JobRequest, Origin
from bot.errors import InputError, NotAllowedError
from bot.models import DEFAULT_MODEL, Mode, VideoOptions
from cogs.buttons import StillButton
from cogs.common import fetch_images
from cogs.replies import member_locale, say_text
from cogs.translator import choice, describe, described
from storage.rows import Job

if TYPE_CHECKING:
    from cogs.app import VideoBot
    from cogs.video import Video

Choice = app_commands.Choice
StillPrompt = app_commands.Range[str, 1, stills.PROMPT_MAX]
MODEL_CHOICES = [
    choice(f"choice.still_model.{m.name}", m.name) for m in stills.STILL_MODELS.values()
]
QUALITY_CHOICES = [choice(f"choice.still_quality.{q.value}", q.value) for q in stills.StillQuality]


def animate_prompt(prompt: str | None) -> str | None:
    """A still's prompt as a video prompt: cut at a word under the video limit."""
    if not prompt or len(prompt) <= models.PROMPT_MAX:
        return prompt
    return prompt[: models.PROMPT_MAX].rsplit(" ", 1)[0].rstrip(" ,.;:") or None


def pick_animate_model(offered: list[str], own: str | None = None) -> str:
    """The member's image model (else the menu's usual one) if the server offers it, else the
    first offered one."""
    if not offered:
        raise NotAllowedError("still.animate_none")
    default = DEFAULT_MODEL[Mode.IMAGE]
    return next((m for m in (own, default) if m in offered), offered[0])


class Stills(commands.Cog):
    """Members' /image command and the buttons under a posted still."""

    video: Video  # wired by VideoBot.wire: the shared pipeline

    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot
        self.engine = bot.resources.engine

    @app_commands.command(name="image", description=described("cmd.image.desc"))
    @app_commands.guild_only()
    @app_commands.describe(**describe("image", "prompt", "model", "size", "quality"))
    @app_commands.choices(model=MODEL_CHOICES, quality=QUALITY_CHOICES)
    async def image(
        self,
        interaction: discord.Interaction,
        prompt: StillPrompt,
        model: str = stills.DEFAULT_STILL_MODEL,
        size: str | None = None,
        quality: str | None = None,
    ) -> None:
        """Prompt to still: validated by the quote before anything is spent."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        metrics.first_response(interaction.created_at)
        request = JobRequest(
            interaction.guild_id or 0,
            interaction.channel_id or 0,
            interaction.user.id,
            model,
            Mode.STILL,
            prompt,
            VideoOptions(quality=quality, size=size),
            origin=Origin.SLASH,
            upload_limit=interaction.filesize_limit,
        )
        await self.video.pipeline(
            self.engine.quote(request), self.video.interaction_entry(interaction)
        )

    @image.autocomplete("size")
    async def size_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[Choice[str]]:
        """The chosen model's recommended sizes that start with what was typed."""
        model = getattr(interaction.namespace, "model", None)
        return [Choice(name=s, value=s) for s in stills.size_choices(model, current)]

    # --- buttons under a still --------------------------------------------------------------

    async def on_still_button(
        self, interaction: discord.Interaction, action: str, job_id: int
    ) -> None:
        """Animate, Re-roll or Details on a posted still."""
        job = await self.engine.job(job_id)
        if job is None:
            raise InputError("still.forgotten")
        if action == "details":
            await say_text(interaction, self.video._details(member_locale(interaction), job))
        elif action == "reroll":
            await self.video.on_job_button(interaction, "reroll", job_id)
        else:
            await self._animate(interaction, job)

    async def _animate(self, interaction: discord.Interaction, job: Job) -> None:
        """Image-to-video from the posted still, paid by whoever presses (their own credits)."""
        pictures = [
            a
            for a in (interaction.message.attachments if interaction.message else [])
            if a.filename.lower().endswith(".png")
        ]
        if not pictures:
            raise InputError("still.no_file")
        await interaction.response.defer(ephemeral=True, thinking=True)
        guild_id = interaction.guild_id or job.guild_id
        mine = await self.engine.member_defaults(guild_id, interaction.user.id)
        offered = await self.engine.offered_models(guild_id, Mode.IMAGE)
        model = pick_animate_model(offered, mine.own_model(Mode.IMAGE))
        request = JobRequest(
            guild_id,
            interaction.channel_id or job.channel_id,
            interaction.user.id,
            model,
            Mode.IMAGE,
            animate_prompt(job.prompt),
            origin=Origin.ANIMATE,
            parent_job_id=job.id,
            upload_limit=interaction.filesize_limit,
        )
        fetch = partial(fetch_images, self.bot, pictures[:1])
        await self.video.pipeline(
            self.engine.quote(request), self.video.interaction_entry(interaction, fetch)
        )


async def setup(bot: VideoBot) -> None:
    """Extension entry point: add the cog and the restart-proof still buttons."""
    await bot.add_cog(Stills(bot))
    bot.add_dynamic_items(StillButton)
