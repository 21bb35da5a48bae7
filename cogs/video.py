"""/video commands, the Animate image menu, the mention handler, and the result buttons."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot import metrics, models
from bot.discord_app import report_error, say
from bot.engine import JobRequest
from bot.errors import BotError, InputError, NotAllowedError
from bot.frames import last_frame_png
from bot.media import DISCORD_ATTACHMENT_HOSTS, download_to_file
from bot.models import Mode, VideoOptions
from cogs.common import (
    DEFAULT_MODEL,
    IMAGE_SUFFIXES,
    MODE_BY_COUNT,
    check_attachments,
    describe_options,
    fetch_images,
    jump_url,
    only,
    safe_prompt,
    short,
    ts,
)
from storage.credits import day_key, next_reset
from storage.jobs import Job

if TYPE_CHECKING:
    from bot.discord_app import VideoBot
    from cogs.delivery import Delivery

log = logging.getLogger(__name__)

Choice = app_commands.Choice
Prompt = app_commands.Range[str, 1, models.PROMPT_MAX]
MAX_RESULT_FOR_EXTEND = 512 * 1024 * 1024
STATE_ICONS = {
    "pending_approval": "⏳",
    "queued": "🕒",
    "submitting": "🎬",
    "processing": "🎬",
    "succeeded": "📦",
    "delivered": "✅",
    "failed": "❌",
    "refused": "🚫",
    "rejected": "🚫",
    "undeliverable": "⚠️",
}


def _label(option: str, value: Any) -> str:
    """How a choice reads in Discord's picker."""
    if option == "duration":
        return f"{value} seconds"
    if option == "fps":
        return f"{value} fps"
    return str(value)


def choices(mode: Mode, option: str) -> list[Choice[Any]]:
    """Every value any model of the mode accepts for an option (from the model table)."""
    values: list[Any] = []
    for model in models.models_for(mode):
        for value in models.allowed_values(model, option) or ():
            if value not in values:
                values.append(value)
    return [Choice(name=_label(option, v), value=v) for v in values][:25]


def model_choices(mode: Mode) -> list[Choice[str]]:
    """The models that offer a mode."""
    return [Choice(name=name, value=name) for name in models.models_for(mode)]


OPTION_HELP = {
    "model": "Which Z.AI model makes the video",
    "quality": "cogvideox-3: speed (faster) or quality (better)",
    "audio": "Add AI sound effects or music",
    "size": "Resolution (each model supports its own sizes)",
    "duration": "Length in seconds (each model supports its own)",
    "fps": "cogvideox-3 frame rate",
    "style": "viduq1-text: general or anime",
    "aspect_ratio": "Vidu text and reference: 16:9, 9:16 or 1:1",
    "movement": "Vidu: how much things move",
}


def image_attachments(message: discord.Message) -> list[discord.Attachment]:
    """Attachments that claim to be pictures (by type or name); their content is checked later."""
    return [
        a
        for a in message.attachments
        if (a.content_type or "").startswith("image/")
        or a.filename.lower().endswith(IMAGE_SUFFIXES)
    ]


def extend_model(model: str) -> str:
    """An image-to-video model of the same family as a finished job's model."""
    if models.Mode.IMAGE in models.MODELS[model].modes:
        return model
    return (
        "viduq1-image"
        if model.startswith("viduq1")
        else "vidu2-image"
        if model.startswith("vidu2")
        else "cogvideox-3"
    )


def carry_options(model: str, options: dict[str, Any]) -> VideoOptions:
    """The options of a job that another model also accepts."""
    kept = {k: v for k, v in options.items() if v in (models.allowed_values(model, k) or ())}
    return VideoOptions(**kept)


class ConfirmCost(discord.ui.View):
    """Spend N credits? Only the requester can answer."""

    def __init__(self, user_id: int, cost: int) -> None:
        super().__init__(timeout=120)
        self.user_id = user_id
        self.confirmed = False
        self.spend.label = f"Spend {cost} credits"

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """Only the requester decides."""
        if interaction.user.id != self.user_id:
            await say(interaction, "This question is for the person who asked for the video.")
            return False
        return True

    @discord.ui.button(label="Spend", style=discord.ButtonStyle.primary, custom_id="cost:spend")
    async def spend(
        self, interaction: discord.Interaction, _: discord.ui.Button[ConfirmCost]
    ) -> None:
        """Go ahead."""
        self.confirmed = True
        await interaction.response.edit_message(content="Starting…", view=None)
        self.stop()

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary, custom_id="cost:cancel")
    async def cancel(
        self, interaction: discord.Interaction, _: discord.ui.Button[ConfirmCost]
    ) -> None:
        """Do not spend anything."""
        await interaction.response.edit_message(
            content="Cancelled; nothing was charged.", view=None
        )
        self.stop()


async def confirm_cost(send: Callable[..., Awaitable[Any]], user_id: int, cost: int) -> bool:
    """Show the cost before accepting; True if the requester agreed within two minutes."""
    view = ConfirmCost(user_id, cost)
    text = f"This video costs **{cost} credits** on this server. Go ahead?"
    message = await send(text, view=view)
    if await view.wait() and message is not None:
        await message.edit(content="No answer in two minutes; nothing was charged.", view=None)
    return view.confirmed


class PromptModal(discord.ui.Modal, title="Animate image"):
    """Asks for the prompt of an Animate image request."""

    prompt: discord.ui.TextInput[PromptModal] = discord.ui.TextInput(
        label="Prompt (optional)",
        style=discord.TextStyle.paragraph,
        required=False,
        max_length=models.PROMPT_MAX,
        placeholder="What should happen in the video?",
    )

    def __init__(self, cog: Video, attachments: Sequence[discord.Attachment]) -> None:
        super().__init__()
        self.cog = cog
        self.attachments = attachments

    async def on_submit(self, interaction: discord.Interaction) -> None:
        """Start the request with the typed prompt."""
        mode = MODE_BY_COUNT[len(self.attachments)]
        prompt = self.prompt.value or None
        await self.cog.start(
            interaction, mode, DEFAULT_MODEL[mode], prompt, VideoOptions(), self.attachments, "menu"
        )

    async def on_error(self, interaction: discord.Interaction, error: Exception) -> None:
        """Same boundary as commands."""
        await report_error(interaction, error)


class Video(commands.Cog):
    """Members' commands: every model mode, quota, jobs, the menu and the mention handler."""

    video = app_commands.Group(
        name="video", description="Make a short video with Z.AI", guild_only=True
    )

    def __init__(self, bot: VideoBot, delivery: Delivery) -> None:
        self.bot = bot
        self.delivery = delivery
        self.engine = bot.resources.engine
        self.menu = app_commands.ContextMenu(name="Animate image", callback=self.animate)
        self.menu.guild_only = True

    async def cog_load(self) -> None:
        """Context menus cannot live in a cog class body: add it to the tree here."""
        self.bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        """Remove the context menu."""
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    # --- the pipeline shared by every entry point -----------------------------------------

    async def start(
        self,
        interaction: discord.Interaction,
        mode: Mode,
        model: str,
        prompt: str | None,
        options: VideoOptions,
        attachments: Sequence[discord.Attachment],
        origin: str,
    ) -> None:
        """Fast checks, acknowledge privately, rules and cost, then download, validate and queue."""
        models.check_request(model, mode, prompt, options)  # refusals before the ack stay private
        check_attachments(attachments)
        await interaction.response.defer(ephemeral=True, thinking=True)
        metrics.first_response(interaction.created_at)
        request = JobRequest(
            interaction.guild_id or 0,
            interaction.channel_id or 0,
            interaction.user.id,
            model,
            mode,
            prompt,
            options,
            origin=origin,
            upload_limit=interaction.filesize_limit,
        )
        if not await self.allowed_and_confirmed(interaction, request):
            return
        images = await fetch_images(self.bot, attachments)
        job = await self.launch(dataclasses.replace(request, images=images))
        await say(
            interaction,
            f"✅ Accepted as video #{job.id}. I will post it here and mention you when it is ready.",
        )

    async def allowed_and_confirmed(
        self, interaction: discord.Interaction, request: JobRequest
    ) -> bool:
        """The server's rules (before any download), then the cost if above 1 credit."""
        await self.engine.check_policy(request)
        cost = await self.engine.cost_for(request.guild_id, request.model, request.options)
        send = partial(interaction.followup.send, ephemeral=True, wait=True)
        return cost <= 1 or await confirm_cost(send, interaction.user.id, cost)

    async def launch(self, request: JobRequest, reference: discord.Message | None = None) -> Job:
        """Queue a request and post its public status message."""
        job = await self.engine.submit(request)
        channel = self.bot.get_partial_messageable(request.channel_id, guild_id=request.guild_id)
        try:
            kwargs: dict[str, Any] = {"reference": reference} if reference is not None else {}
            await self.delivery.post_status(job, channel, **kwargs)
        except discord.HTTPException as exc:  # the job runs anyway; the result still gets posted
            log.warning("job %d: could not post status message: %s", job.id, exc)
        return job

    # --- slash commands -------------------------------------------------------------------

    @video.command(name="text", description="Turn a prompt into a short video")
    @app_commands.describe(prompt="Describe the video (up to 512 characters)", **OPTION_HELP)
    @app_commands.choices(
        model=model_choices(Mode.TEXT),
        **{
            o: choices(Mode.TEXT, o)
            for o in ("quality", "size", "duration", "fps", "style", "aspect_ratio", "movement")
        },
    )
    async def text(
        self,
        interaction: discord.Interaction,
        prompt: Prompt,
        model: str = DEFAULT_MODEL[Mode.TEXT],
        quality: str | None = None,
        audio: bool | None = None,
        size: str | None = None,
        duration: int | None = None,
        fps: int | None = None,
        style: str | None = None,
        aspect_ratio: str | None = None,
        movement: str | None = None,
    ) -> None:
        """Text to video."""
        options = VideoOptions(quality, audio, size, duration, fps, style, aspect_ratio, movement)
        await self.start(interaction, Mode.TEXT, model, prompt, options, (), "slash")

    @video.command(name="image", description="Animate a picture")
    @app_commands.describe(
        image="The picture that starts the video",
        prompt="What should happen (optional)",
        **{k: v for k, v in OPTION_HELP.items() if k not in ("style", "aspect_ratio")},
    )
    @app_commands.choices(
        model=model_choices(Mode.IMAGE),
        **{o: choices(Mode.IMAGE, o) for o in ("quality", "size", "duration", "fps", "movement")},
    )
    async def image(
        self,
        interaction: discord.Interaction,
        image: discord.Attachment,
        prompt: Prompt | None = None,
        model: str = DEFAULT_MODEL[Mode.IMAGE],
        quality: str | None = None,
        audio: bool | None = None,
        size: str | None = None,
        duration: int | None = None,
        fps: int | None = None,
        movement: str | None = None,
    ) -> None:
        """Image to video."""
        options = VideoOptions(quality, audio, size, duration, fps, None, None, movement)
        await self.start(interaction, Mode.IMAGE, model, prompt, options, (image,), "slash")

    @video.command(
        name="frames", description="Make a video that goes from a first frame to a last frame"
    )
    @app_commands.describe(
        first="The first frame",
        last="The last frame",
        prompt="What should happen (optional)",
        **{k: v for k, v in OPTION_HELP.items() if k not in ("style", "aspect_ratio")},
    )
    @app_commands.choices(
        model=model_choices(Mode.FRAMES),
        **{o: choices(Mode.FRAMES, o) for o in ("quality", "size", "duration", "fps", "movement")},
    )
    async def frames(
        self,
        interaction: discord.Interaction,
        first: discord.Attachment,
        last: discord.Attachment,
        prompt: Prompt | None = None,
        model: str = DEFAULT_MODEL[Mode.FRAMES],
        quality: str | None = None,
        audio: bool | None = None,
        size: str | None = None,
        duration: int | None = None,
        fps: int | None = None,
        movement: str | None = None,
    ) -> None:
        """First and last frame to video."""
        options = VideoOptions(quality, audio, size, duration, fps, None, None, movement)
        await self.start(interaction, Mode.FRAMES, model, prompt, options, (first, last), "slash")

    @video.command(
        name="reference", description="Make a video with the subjects of 1 to 3 pictures"
    )
    @app_commands.describe(
        image1="A reference picture",
        image2="Another reference picture (optional)",
        image3="A third reference picture (optional)",
        prompt="What should happen (optional)",
        model=OPTION_HELP["model"],
        aspect_ratio=OPTION_HELP["aspect_ratio"],
        movement=OPTION_HELP["movement"],
        audio=OPTION_HELP["audio"],
    )
    @app_commands.choices(
        model=model_choices(Mode.REFERENCE),
        aspect_ratio=choices(Mode.REFERENCE, "aspect_ratio"),
        movement=choices(Mode.REFERENCE, "movement"),
    )
    async def reference(
        self,
        interaction: discord.Interaction,
        image1: discord.Attachment,
        image2: discord.Attachment | None = None,
        image3: discord.Attachment | None = None,
        prompt: Prompt | None = None,
        model: str = DEFAULT_MODEL[Mode.REFERENCE],
        aspect_ratio: str | None = None,
        movement: str | None = None,
        audio: bool | None = None,
    ) -> None:
        """Reference images to video."""
        images = tuple(a for a in (image1, image2, image3) if a is not None)
        options = VideoOptions(audio=audio, aspect_ratio=aspect_ratio, movement=movement)
        await self.start(interaction, Mode.REFERENCE, model, prompt, options, images, "slash")

    @app_commands.command(name="quota", description="Your video credits left today")
    @app_commands.guild_only()
    async def quota(self, interaction: discord.Interaction) -> None:
        """Credits left and the next reset."""
        now = time.time()
        balance = await self.engine.credits.balance(
            interaction.guild_id or 0, interaction.user.id, day_key(now)
        )
        reset = next_reset(now)
        await say(
            interaction,
            f"You have **{balance.left}** of {balance.allowance + balance.granted} video credits left "
            f"today. They reset {ts(reset)} ({ts(reset, 't')}).",
        )

    @app_commands.command(name="jobs", description="Your recent videos and how they are doing")
    @app_commands.guild_only()
    async def jobs(self, interaction: discord.Interaction) -> None:
        """The caller's last ten jobs."""
        jobs = await self.engine.store.user_jobs(interaction.guild_id or 0, interaction.user.id, 10)
        if not jobs:
            await say(interaction, "You have no videos here yet. Try `/video text`.")
            return
        lines = [self._job_line(job) for job in jobs]
        await say(interaction, short("\n".join(lines), 2000))

    @staticmethod
    def _job_line(job: Job) -> str:
        """One line of /jobs."""
        icon = STATE_ICONS.get(job.state, "•")
        line = f"{icon} **#{job.id}** {job.model} · {job.state} · {ts(job.created_at)}"
        if job.result_message_id:
            line += f" · [video]({jump_url(job.guild_id, job.channel_id, job.result_message_id)})"
        elif job.error_message and job.state in ("failed", "refused", "rejected", "undeliverable"):
            line += f" · {short(job.error_message, 120)}"
        return line

    # --- Animate image and mentions -------------------------------------------------------

    async def animate(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """Message menu: 1 image → image mode, 2 → first/last frames, 3 → reference."""
        attachments = image_attachments(message)
        if not 1 <= len(attachments) <= 3:
            raise InputError(
                f"That message has {len(attachments)} pictures. Animate image works on a message "
                "with 1, 2 or 3 pictures."
            )
        check_attachments(attachments)
        await interaction.response.send_modal(PromptModal(self, attachments))

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        """A message that mentions the bot with 1-3 pictures starts a video."""
        me = self.bot.user
        if message.author.bot or message.guild is None or me is None or me not in message.mentions:
            return
        try:
            await self._from_mention(message)
        except BotError as exc:
            await message.reply(exc.user_message, allowed_mentions=only(message.author.id))
        except Exception:
            log.exception("mention %d failed", message.id)
            await message.reply(
                "Something went wrong on the bot's side; it has been logged.", mention_author=False
            )

    async def _from_mention(self, message: discord.Message) -> None:
        """Validate and launch a mention request."""
        attachments = image_attachments(message)
        if not 1 <= len(attachments) <= 3:
            raise InputError(
                "Mention me on a message with 1, 2 or 3 pictures to animate them, "
                "or use `/video text` to make a video from words alone."
            )
        check_attachments(attachments)
        mode = MODE_BY_COUNT[len(attachments)]
        model = DEFAULT_MODEL[mode]
        prompt = re.sub(rf"<@!?{self.bot.user.id}>", "", message.content).strip() or None  # type: ignore[union-attr]
        models.check_request(model, mode, prompt, VideoOptions())
        probe = JobRequest(
            message.guild.id, message.channel.id, message.author.id, model, mode, prompt
        )
        await self.engine.check_policy(probe)
        cost = await self.engine.cost_for(probe.guild_id, model, VideoOptions())
        send = partial(message.reply, allowed_mentions=only(message.author.id))
        if cost > 1 and not await confirm_cost(send, message.author.id, cost):
            return
        images = await fetch_images(self.bot, attachments)
        limit = message.guild.filesize_limit if message.guild else None
        request = JobRequest(
            message.guild.id if message.guild else 0,
            message.channel.id,
            message.author.id,
            model,
            mode,
            prompt,
            images=images,
            origin="mention",
            upload_limit=limit,
        )
        await self.launch(request, reference=message)

    # --- result buttons -------------------------------------------------------------------

    async def on_job_button(
        self, interaction: discord.Interaction, action: str, job_id: int
    ) -> None:
        """Re-roll, Extend, Details or Delete on a delivered video."""
        job = await self.engine.store.get(job_id)
        if job is None:
            raise InputError("That video is no longer known to the bot.")
        if action == "details":
            await say(interaction, self._details(job))
        elif action == "delete":
            await self._delete(interaction, job)
        else:
            await self._paid_again(interaction, job, action)

    @staticmethod
    def _details(job: Job) -> str:
        """Everything about a job, privately."""
        return (
            f"**Video #{job.id}** by <@{job.user_id}>\nModel: {job.model} ({job.mode})\n"
            f"Settings: {describe_options(job)}\nCost: {job.cost} credit(s)\nState: {job.state}\n"
            f"Requested {ts(job.created_at)}\nPrompt: {safe_prompt(job.prompt, 1500)}"
        )

    async def _delete(self, interaction: discord.Interaction, job: Job) -> None:
        """The requester or a moderator removes a result."""
        perms = getattr(interaction.user, "guild_permissions", None)
        if interaction.user.id != job.user_id and not (perms and perms.manage_messages):
            raise NotAllowedError(
                "Only the person who asked for this video, or a moderator, can delete it."
            )
        await interaction.response.defer(ephemeral=True)
        if interaction.message is not None:
            await interaction.message.delete()
        await say(interaction, f"Video #{job.id} was deleted.")

    async def _paid_again(self, interaction: discord.Interaction, job: Job, action: str) -> None:
        """Re-roll or Extend: only the requester, since it spends their credits."""
        if interaction.user.id != job.user_id:
            raise NotAllowedError(
                f"Only <@{job.user_id}> can {action} this video, since it costs their credits. "
                "Use `/video` to make your own."
            )
        await interaction.response.defer(ephemeral=True, thinking=True)
        model = job.model if action == "reroll" else extend_model(job.model)
        mode = Mode(job.mode) if action == "reroll" else Mode.IMAGE
        options = (
            VideoOptions(**job.options) if action == "reroll" else carry_options(model, job.options)
        )
        probe = JobRequest(
            job.guild_id, job.channel_id, interaction.user.id, model, mode, job.prompt, options
        )
        if not await self.allowed_and_confirmed(interaction, probe):
            return
        if action == "reroll":
            new = await self.engine.resubmit(job.id, interaction.user.id, origin="reroll")
            channel = self.bot.get_partial_messageable(job.channel_id, guild_id=job.guild_id)
            await self.delivery.post_status(new, channel)
        else:
            new = await self._extend(interaction, job)
        await say(
            interaction, f"✅ Accepted as video #{new.id}. I will post it here when it is ready."
        )

    async def _extend(self, interaction: discord.Interaction, job: Job) -> Job:
        """The last frame of this video starts a new image-to-video job."""
        frame = await self._last_frame(interaction.message)
        model = extend_model(job.model)
        request = JobRequest(
            job.guild_id,
            job.channel_id,
            job.user_id,
            model,
            Mode.IMAGE,
            job.prompt,
            carry_options(model, job.options),
            [frame],
            origin="extend",
            parent_job_id=job.id,
            upload_limit=interaction.filesize_limit,
        )
        prepared = await self.engine.prepare(request)
        new = await self.engine.accept(prepared)
        channel = self.bot.get_partial_messageable(job.channel_id, guild_id=job.guild_id)
        await self.delivery.post_status(new, channel)
        return new

    async def _last_frame(self, message: discord.Message | None) -> bytes:
        """Download the posted video (from Discord) and take its last frame."""
        videos = [
            a for a in (message.attachments if message else []) if a.filename.endswith(".mp4")
        ]
        if not videos:
            raise InputError(
                "This result has no video file to extend (it may have been posted as a link)."
            )
        resources = self.bot.resources
        with tempfile.TemporaryDirectory(prefix="extend-") as tmp:
            path = Path(tmp) / "video.mp4"
            await download_to_file(
                resources.http,
                videos[0].url,
                path,
                max_bytes=MAX_RESULT_FOR_EXTEND,
                allowed_hosts=DISCORD_ATTACHMENT_HOSTS,
                trusted_hosts=resources.settings.trusted_hosts,
            )
            return await asyncio.to_thread(last_frame_png, path)


async def setup(bot: VideoBot) -> None:  # pragma: no cover - loaded through cogs.load_all
    """Not used: cogs are added by cogs.load_all with their shared Delivery."""
    raise RuntimeError("use cogs.load_all")
