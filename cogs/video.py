"""/video commands, the Animate image menu, the mention handler, and the result buttons."""

from __future__ import annotations

import asyncio
import logging
import re
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot import defaults, metrics, model_facts, models
from bot.defaults import MemberDefaults
from bot.engine import DM_FAILED, Engine, JobRequest, Origin, Quote
from bot.errors import BotError, InputError, NotAllowedError
from bot.frames import last_frame_png
from bot.i18n import DEFAULT_LOCALE, Msg, msg, render
from bot.media import DISCORD_ATTACHMENT_HOSTS, download_to_file
from bot.models import DEFAULT_MODEL, OPTION_NAMES, Mode, VideoOptions
from cogs.buttons import CancelButton, JobButton, ListedCancelButton, jobs_view
from cogs.common import (
    IMAGE_SUFFIXES,
    MODE_BY_COUNT,
    STATE_ICONS,
    audio_attachments,
    check_attachments,
    describe_options,
    fetch_images,
    jump_url,
    noun,
    noun_title,
    only,
    provider_label,
    safe_prompt,
    server_locale,
    short,
    stored_text,
    ts,
)
from cogs.help import (
    RESET_CHOICES,
    costs_block,
    defaults_block,
    model_block,
    pages,
    value_label,
)
from cogs.replies import member_locale, report_error, say, say_text, tr
from cogs.translator import describe, described
from storage.credits import next_reset
from storage.rows import Job
from storage.states import CANCELLABLE, ENDED_BADLY, JobState

if TYPE_CHECKING:
    from cogs.app import VideoBot
    from cogs.delivery import Delivery
    from cogs.voice import Voice

log = logging.getLogger(__name__)

Choice = app_commands.Choice
Prompt = app_commands.Range[str, 1, models.PROMPT_MAX]
MAX_RESULT_FOR_EXTEND = 512 * 1024 * 1024
ACCEPTED = "reply.accepted"
ACCEPTED_PRIVATE = "reply.accepted_private"
Pictures = Callable[[], Awaitable[Sequence[bytes]]]
ANIMATE_MENU = render(DEFAULT_LOCALE, "name.menu.animate_image")  # localized by the translator


def _label(locale: str, option: str, value: Any) -> str:
    """How a choice reads in Discord's picker."""
    if option == "duration":
        return render(locale, "choice.seconds", count=value)
    if option == "fps":
        return render(locale, "choice.fps", fps=value)
    return str(value)


def _choice_label(locale: str, option: str, value: Any, default: Any, own: Any = None) -> str:
    """A choice as the picker shows it: the member's own default marked, else the model's."""
    label = _label(locale, option, value)
    if own is not None:
        return render(locale, "choice.your_default", label=label) if value == own else label
    return render(locale, "choice.default", label=label) if value == default else label


def option_choices(
    engine: Engine,
    model: str,
    option: str,
    mode: Mode,
    typed: str,
    locale: str = DEFAULT_LOCALE,
    own: Any = None,
) -> list[Choice[Any]]:
    """Autocomplete: the values `model` takes for `option` in `mode` (the model table, or the
    provider catalog for gateway models) that match what was typed; none if it has no such
    option. A typed value is still checked when the request is quoted."""
    provider = engine.provider_of(model)
    if provider is None:
        return []
    values, default = model_facts.option_values(model, provider, option, mode)
    if option in ("duration", "fps"):
        values = tuple(sorted(values or ()))
    if own is not None and not engine.takes(model, option, own, mode):
        own = None  # the member's default is not used with this model: the model's is
    wanted = typed.strip().lower()
    labelled = [(_choice_label(locale, option, v, default, own), v) for v in values or ()]
    return [Choice(name=n, value=v) for n, v in labelled if wanted in n.lower()][:25]


def option_autocomplete(mode: Mode, option: str) -> Callable[..., Awaitable[list[Choice[Any]]]]:
    """An autocomplete callback for one option of a /video command: what the model picked so
    far in the interaction (or the member's default model for the mode) accepts."""

    async def complete(interaction: discord.Interaction, current: str) -> list[Choice[Any]]:
        """Values of the chosen model, the member's own default marked."""
        engine = interaction.client.resources.engine  # type: ignore[attr-defined]
        mine = await engine.member_defaults(interaction.guild_id or 0, interaction.user.id)
        model = getattr(interaction.namespace, "model", None) or mine.model_for(mode)
        own = mine.options().get(option)
        locale = member_locale(interaction)
        return option_choices(engine, str(model), option, mode, current, locale, own)

    return complete


def default_model_autocomplete(mode: Mode) -> Callable[..., Awaitable[list[Choice[str]]]]:
    """An autocomplete callback for a mode's model in /video defaults: the server's enabled ones."""

    async def complete(interaction: discord.Interaction, current: str) -> list[Choice[str]]:
        """Enabled models of the mode."""
        engine = interaction.client.resources.engine  # type: ignore[attr-defined]
        return model_matches(await engine.offered_models(interaction.guild_id or 0, mode), current)

    return complete


def defaults_autocomplete(option: str) -> Callable[..., Awaitable[list[Choice[Any]]]]:
    """An autocomplete callback for an option of /video defaults: the values the member's
    models (those typed in the same command first) take, each with where it would be used."""

    async def complete(interaction: discord.Interaction, current: str) -> list[Choice[Any]]:
        """Values of the member's models, in the member's language."""
        engine = interaction.client.resources.engine  # type: ignore[attr-defined]
        mine = await engine.member_defaults(interaction.guild_id or 0, interaction.user.id)
        typed_models = {
            name: getattr(interaction.namespace, name, None) for name in defaults.MODEL_NAMES
        }
        mine = mine.changed({k: v for k, v in typed_models.items() if v})
        own = mine.options().get(option)
        locale = member_locale(interaction)
        wanted = current.strip().lower()
        labelled = [
            (value_label(locale, _label(locale, option, v), modes, v == own), v)
            for v, modes in defaults.offered_values(mine, option, engine)
        ]
        return [Choice(name=n, value=v) for n, v in labelled if wanted in n.lower()][:25]

    return complete


def autocompletes(mode: Mode, *options: str) -> dict[str, Any]:
    """`app_commands.autocomplete` keyword arguments for options of a mode's command."""
    return {o: option_autocomplete(mode, o) for o in options}


# /video frames offers only the options whose values the frames models leave a choice of
# (cogvideox-3 makes frames videos with quality=speed only; Vidu's have no quality).
FRAMES_OPTIONS = ("audio", "size", "duration", "fps", "movement")


def check_frame_count(model: str, count: int) -> None:
    """Refuse a missing last frame for a model that needs two, naming the ones that do not
    (a gateway model's picture count is checked by its provider's rules when quoted)."""
    if model not in models.MODELS:
        return
    low, _ = models.image_count(model, Mode.FRAMES)
    if count >= low:
        return
    one = [m for m in models.models_for(Mode.FRAMES) if models.image_count(m, Mode.FRAMES)[0] <= 1]
    raise InputError("frames.needs_last", model=model, models=", ".join(one))


def model_matches(offered: Sequence[str], current: str) -> list[Choice[str]]:
    """Autocomplete: the models on offer in a mode whose name contains what was typed."""
    typed = current.strip().lower()
    return [Choice(name=m, value=m) for m in offered if typed in m.lower()][:25]


def _one_line(text: str) -> str:
    """Text on one line with single spaces (an autocomplete choice's name)."""
    return " ".join(text.split())


def image_attachments(message: discord.Message) -> list[discord.Attachment]:
    """Attachments that claim to be pictures (by type or name); their content is checked later."""
    return [
        a
        for a in message.attachments
        if (a.content_type or "").startswith("image/")
        or a.filename.lower().endswith(IMAGE_SUFFIXES)
    ]


def _private_line(locale: str, job: Job) -> str:
    """Where a private result went: the DMs, or (DMs closed) why not and its download link."""
    if job.error_code != DM_FAILED:
        return " · " + render(locale, "jobs.sent_by_dm")
    link = " · " + render(locale, "jobs.download", url=job.video_url) if job.video_url else ""
    return f" · {stored_text(locale, job.error_message, 200)}{link}"


class ConfirmCost(discord.ui.View):
    """Spend N credits? Only the requester can answer."""

    def __init__(self, user_id: int, cost: int, locale: str) -> None:
        super().__init__(timeout=120)
        self.user_id = user_id
        self.locale = locale
        self.confirmed = False
        self.spend.label = render(locale, "cost.spend", count=cost)
        self.cancel.label = render(locale, "button.cancel")

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """Only the requester decides."""
        if interaction.user.id != self.user_id:
            await say(interaction, "question.not_yours")
            return False
        return True

    @discord.ui.button(
        label="Spend", style=discord.ButtonStyle.primary, custom_id="cost:spend"
    )  # i18n: set in __init__
    async def spend(
        self, interaction: discord.Interaction, _: discord.ui.Button[ConfirmCost]
    ) -> None:
        """Go ahead."""
        self.confirmed = True
        starting = render(self.locale, "cost.starting")
        await interaction.response.edit_message(content=starting, view=None)
        self.stop()

    @discord.ui.button(
        label="Cancel", style=discord.ButtonStyle.secondary, custom_id="cost:cancel"
    )  # i18n: set in __init__
    async def cancel(
        self, interaction: discord.Interaction, _: discord.ui.Button[ConfirmCost]
    ) -> None:
        """Do not spend anything."""
        cancelled = render(self.locale, "cost.cancelled")
        await interaction.response.edit_message(content=cancelled, view=None)
        self.stop()


async def confirm_cost(
    send: Callable[..., Awaitable[Any]], user_id: int, cost: int, locale: str
) -> bool:
    """Show the cost before accepting; True if the requester agreed within two minutes."""
    view = ConfirmCost(user_id, cost, locale)
    message = await send(render(locale, "cost.question", count=cost), view=view)
    if await view.wait() and message is not None:
        await message.edit(content=render(locale, "cost.no_answer"), view=None)
    return view.confirmed


class PromptModal(discord.ui.Modal):
    """Asks for the prompt of an Animate image request (in the member's language)."""

    def __init__(self, cog: Video, attachments: Sequence[discord.Attachment], locale: str) -> None:
        super().__init__(title=render(locale, "modal.animate.title"))
        self.cog = cog
        self.attachments = attachments
        self.prompt: discord.ui.TextInput[PromptModal] = discord.ui.TextInput(
            label=render(locale, "modal.animate.prompt"),
            style=discord.TextStyle.paragraph,
            required=False,
            max_length=models.PROMPT_MAX,
            placeholder=render(locale, "modal.animate.placeholder"),
        )
        self.add_item(self.prompt)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        """Ask privately which model, then start the request with the typed prompt."""
        prompt = self.prompt.value or None

        async def go(clicked: discord.Interaction, mode: Mode, model: str) -> None:
            """The requester clicked "Make it"."""
            await self.cog.start(
                clicked, mode, model, prompt, VideoOptions(), self.attachments, Origin.MENU
            )

        picks = await self.cog.animate_picks(
            interaction.guild_id or 0, interaction.user.id, len(self.attachments)
        )
        locale = member_locale(interaction)
        view = ModelQuestion(interaction.user.id, picks, len(self.attachments), go, locale)
        text = question_text(locale, len(self.attachments))
        await interaction.response.send_message(text, view=view, ephemeral=True)

    async def on_error(self, interaction: discord.Interaction, error: Exception) -> None:
        """Same boundary as commands."""
        await report_error(interaction, error)


# What pictures can be in the Animate menu and mentions: 1 → animated; 2 → first and last
# frames, or references; 3 → references.
ANIMATE_MODES = {1: (Mode.IMAGE,), 2: (Mode.FRAMES, Mode.REFERENCE), 3: (Mode.REFERENCE,)}
AS_WORDS = {Mode.FRAMES: "animate.as_frames", Mode.REFERENCE: "animate.as_references"}
QUESTION_MINUTES = 10  # the question is an in-memory view: a restart forgets it (ask again)
Pick = tuple[Mode, str]
Go = Callable[[discord.Interaction, Mode, str], Awaitable[None]]


def pick_label(locale: str, mode: Mode, model: str, count: int) -> str:
    """How a (mode, model) reads in the question."""
    return f"{model} · {render(locale, AS_WORDS[mode])}" if count > 1 else model


def question_text(locale: str, count: int) -> str:
    """The private question of the Animate menu and mentions."""
    return render(locale, "animate.question", count=count, minutes=QUESTION_MINUTES)


class ModelQuestion(discord.ui.View):
    """Which model (and, for two pictures, frames or references)? Only the requester answers;
    the default is picked, so one click on "Make it" goes. Lives 10 minutes in memory."""

    def __init__(
        self, user_id: int, picks: Sequence[Pick], count: int, go: Go, locale: str
    ) -> None:
        super().__init__(timeout=QUESTION_MINUTES * 60)
        self.user_id, self.picks, self.go_on = user_id, list(picks), go
        self.chosen = self.picks[0]
        self.pick.placeholder = render(locale, "animate.model")
        self.go.label = render(locale, "animate.make_it")
        self.pick.options = [
            discord.SelectOption(
                label=pick_label(locale, mode, model, count),
                value=f"{mode.value}:{model}",
                default=n == 0,
            )
            for n, (mode, model) in enumerate(self.picks[:25])
        ]

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """Only the requester decides."""
        if interaction.user.id != self.user_id:
            await say(interaction, "question.not_yours")
            return False
        return True

    @discord.ui.select(custom_id="animate:pick")
    async def pick(
        self, interaction: discord.Interaction, select: discord.ui.Select[ModelQuestion]
    ) -> None:
        """Remember the choice; the video starts on "Make it"."""
        mode, model = select.values[0].split(":", 1)
        self.chosen = (Mode(mode), model)
        await interaction.response.defer()

    @discord.ui.button(style=discord.ButtonStyle.primary, custom_id="animate:go")
    async def go(
        self, interaction: discord.Interaction, _: discord.ui.Button[ModelQuestion]
    ) -> None:
        """Start with the chosen model."""
        self.stop()
        await self.go_on(interaction, *self.chosen)

    async def on_error(
        self, interaction: discord.Interaction, error: Exception, _: discord.ui.Item[Any]
    ) -> None:
        """Same boundary as commands."""
        await report_error(interaction, error)


@dataclass(frozen=True)
class Entry:
    """One way of asking, reduced to what the shared pipeline needs from it."""

    ask: Callable[..., Awaitable[Any]]  # sends the private cost question (a message with a view)
    pictures: Pictures | None = None  # fetched only once the quote is confirmed
    tell: Callable[[Msg], Awaitable[Any]] | None = None  # the private acknowledgement
    reference: discord.Message | None = None  # the status message replies to it
    locale: str = DEFAULT_LOCALE  # the language of the questions (the member's)
    # An interaction's ephemeral follow-up, kept for a private result when DMs are closed.
    later: Callable[..., Awaitable[Any]] | None = None


class Video(commands.Cog):
    """Members' commands: every model mode, quota, jobs, the menu and the mention handler."""

    video = app_commands.Group(
        name="video", description=described("cmd.video.desc"), guild_only=True
    )

    delivery: Delivery  # wired by VideoBot.wire
    voice: Voice  # wired by VideoBot.wire: /video text's recording option

    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot
        self.engine = bot.resources.engine
        self.menu = app_commands.ContextMenu(name=ANIMATE_MENU, callback=self.animate)
        self.menu.guild_only = True

    async def cog_load(self) -> None:
        """Context menus cannot live in a cog class body: add it to the tree here."""
        self.bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        """Remove the context menu."""
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    # --- the pipeline shared by every entry point -----------------------------------------

    async def pipeline(self, quoting: Awaitable[Quote], entry: Entry) -> Job | None:
        """Quote → confirm the cost if above 1 → fetch pictures → accept that quote → status.

        Rules, credits and slots are all checked by the quote, before anything is downloaded.
        """
        quote = await quoting
        user_id = quote.request.user_id
        if quote.cost > 1 and not await confirm_cost(entry.ask, user_id, quote.cost, entry.locale):
            return None
        images = await entry.pictures() if entry.pictures is not None else ()
        job = await self.engine.accept(quote, images)
        await self._announce(job, entry)
        return job

    async def _announce(self, job: Job, entry: Entry) -> None:
        """Status message and acknowledgement. The job is charged and queued: a failure here is
        logged, never reported to the member as an error (the result still gets posted)."""
        channel = self.bot.get_partial_messageable(job.channel_id, guild_id=job.guild_id)
        kwargs: dict[str, Any] = {"reference": entry.reference} if entry.reference else {}
        if job.private and entry.later is not None:
            self.delivery.remember_private(job.id, entry.later)
        try:
            if not job.private:  # a private request leaves no public trace
                await self.delivery.post_status(job, channel, **kwargs)
        except Exception as exc:
            log.warning("job %d: could not post status message: %r", job.id, exc)
        if entry.tell is None:
            return
        try:
            accepted = ACCEPTED_PRIVATE if job.private else ACCEPTED
            await entry.tell(msg(accepted, noun=noun(job), id=job.id))
        except Exception as exc:
            log.warning("job %d: could not acknowledge the request: %r", job.id, exc)

    def interaction_entry(
        self, interaction: discord.Interaction, pictures: Pictures | None = None
    ) -> Entry:
        """An interaction's entry: question and acknowledgement privately, as follow-ups."""
        ask = partial(interaction.followup.send, ephemeral=True, wait=True)
        locale = member_locale(interaction)
        return Entry(ask, pictures, partial(say, interaction), locale=locale, later=ask)

    async def start(
        self,
        interaction: discord.Interaction,
        mode: Mode,
        model: str | None,
        prompt: str | None,
        options: VideoOptions,
        attachments: Sequence[discord.Attachment],
        origin: Origin,
        *,
        private: bool | None = None,
    ) -> None:
        """A slash command or the menu: attachment metadata, acknowledge, then the pipeline
        (what is left unset, None, comes from the member's defaults when quoted)."""
        check_attachments(attachments)  # refusals before the ack stay a direct answer
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
            private=private,
        )
        pictures = partial(fetch_images, self.bot, attachments) if attachments else None
        await self.pipeline(
            self.engine.quote(request), self.interaction_entry(interaction, pictures)
        )

    # --- slash commands -------------------------------------------------------------------

    @video.command(name="text", description=described("cmd.video.text.desc"))
    @app_commands.describe(
        **describe("video.text", "prompt", "voice", "private", *OPTION_NAMES),
    )
    @app_commands.autocomplete(
        **autocompletes(
            Mode.TEXT, "quality", "size", "duration", "fps", "style", "aspect_ratio", "movement"
        )
    )
    async def text(
        self,
        interaction: discord.Interaction,
        prompt: Prompt | None = None,
        model: str | None = None,
        quality: str | None = None,
        audio: bool | None = None,
        size: str | None = None,
        duration: int | None = None,
        fps: int | None = None,
        style: str | None = None,
        aspect_ratio: str | None = None,
        movement: str | None = None,
        voice: discord.Attachment | None = None,
        private: bool | None = None,
    ) -> None:
        """Text to video (the prompt typed, or spoken in `voice` and confirmed first)."""
        options = VideoOptions(quality, audio, size, duration, fps, style, aspect_ratio, movement)
        if voice is not None:
            template = JobRequest(
                interaction.guild_id or 0,
                interaction.channel_id or 0,
                interaction.user.id,
                model,
                Mode.TEXT,
                None,
                options,
                origin=Origin.VOICE,
                upload_limit=interaction.filesize_limit,
                private=private,
            )
            await self.voice.from_slash(interaction, voice, template)
            return
        if not prompt:
            raise InputError("text.no_prompt")
        await self.start(
            interaction, Mode.TEXT, model, prompt, options, (), Origin.SLASH, private=private
        )

    @video.command(name="image", description=described("cmd.video.image.desc"))
    @app_commands.describe(
        **describe(
            "video.image",
            "image",
            "prompt",
            "private",
            *(o for o in OPTION_NAMES if o not in ("style", "aspect_ratio")),
        )
    )
    @app_commands.autocomplete(
        **autocompletes(Mode.IMAGE, "quality", "size", "duration", "fps", "movement")
    )
    async def image(
        self,
        interaction: discord.Interaction,
        image: discord.Attachment,
        prompt: Prompt | None = None,
        model: str | None = None,
        quality: str | None = None,
        audio: bool | None = None,
        size: str | None = None,
        duration: int | None = None,
        fps: int | None = None,
        movement: str | None = None,
        private: bool | None = None,
    ) -> None:
        """Image to video."""
        options = VideoOptions(quality, audio, size, duration, fps, None, None, movement)
        pictures = (image,)
        await self.start(
            interaction, Mode.IMAGE, model, prompt, options, pictures, Origin.SLASH, private=private
        )

    @video.command(name="frames", description=described("cmd.video.frames.desc"))
    @app_commands.describe(
        **describe("video.frames", "first", "last", "prompt", "private", "model", *FRAMES_OPTIONS)
    )
    @app_commands.autocomplete(**autocompletes(Mode.FRAMES, "size", "duration", "fps", "movement"))
    async def frames(
        self,
        interaction: discord.Interaction,
        first: discord.Attachment,
        last: discord.Attachment | None = None,
        prompt: Prompt | None = None,
        model: str | None = None,
        audio: bool | None = None,
        size: str | None = None,
        duration: int | None = None,
        fps: int | None = None,
        movement: str | None = None,
        private: bool | None = None,
    ) -> None:
        """First (and last) frame to video; no `quality`: the table narrows frames to one value."""
        pictures = (first,) if last is None else (first, last)
        if model is None:  # the member's own frames model decides how many frames it needs
            mine = await self.engine.member_defaults(interaction.guild_id or 0, interaction.user.id)
            model = mine.model_for(Mode.FRAMES)
        check_frame_count(model, len(pictures))
        options = VideoOptions(None, audio, size, duration, fps, None, None, movement)
        await self.start(
            interaction,
            Mode.FRAMES,
            model,
            prompt,
            options,
            pictures,
            Origin.SLASH,
            private=private,
        )

    @video.command(name="reference", description=described("cmd.video.reference.desc"))
    @app_commands.describe(
        **describe(
            "video.reference",
            "image1",
            "image2",
            "image3",
            "prompt",
            "model",
            "aspect_ratio",
            "movement",
            "audio",
            "private",
        )
    )
    @app_commands.autocomplete(**autocompletes(Mode.REFERENCE, "aspect_ratio", "movement"))
    async def reference(
        self,
        interaction: discord.Interaction,
        image1: discord.Attachment,
        image2: discord.Attachment | None = None,
        image3: discord.Attachment | None = None,
        prompt: Prompt | None = None,
        model: str | None = None,
        aspect_ratio: str | None = None,
        movement: str | None = None,
        audio: bool | None = None,
        private: bool | None = None,
    ) -> None:
        """Reference images to video."""
        images = tuple(a for a in (image1, image2, image3) if a is not None)
        options = VideoOptions(audio=audio, aspect_ratio=aspect_ratio, movement=movement)
        await self.start(
            interaction,
            Mode.REFERENCE,
            model,
            prompt,
            options,
            images,
            Origin.SLASH,
            private=private,
        )

    @video.command(name="help", description=described("cmd.video.help.desc"))
    async def help_(self, interaction: discord.Interaction) -> None:
        """Per model its modes, durations, sizes, audio, pictures and time; this server's costs."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        locale = member_locale(interaction)
        guild_id, user_id = interaction.guild_id or 0, interaction.user.id
        for page in await self.help_pages(guild_id, locale, user_id):
            await say_text(interaction, page)

    async def help_pages(
        self, guild_id: int, locale: str = DEFAULT_LOCALE, user_id: int = 0
    ) -> list[str]:
        """The help text in messages of at most 2000 characters (the member's defaults, then
        the server's costs, last)."""
        known = []
        for model in self.engine.routed_models():
            provider = self.engine.provider_of(model)
            if provider is not None:
                known.append(model_facts.facts(model, provider))
        blocks = [
            model_block(locale, f, self.engine.expected_seconds(f.name, f.defaults)) for f in known
        ]
        blocks.append(await self.defaults_text(guild_id, user_id, locale))
        moderators = self.engine.moderators
        enabled = await moderators.model_rules(guild_id)
        blocks.append(costs_block(locale, known, enabled, await moderators.costs(guild_id)))
        return pages(blocks)

    # --- /video defaults ------------------------------------------------------------------

    @video.command(name="defaults", description=described("cmd.video.defaults.desc"))
    @app_commands.describe(**describe("video.defaults", *defaults.NAMES, "reset"))
    @app_commands.choices(reset=RESET_CHOICES)
    @app_commands.autocomplete(
        **{name: default_model_autocomplete(mode) for name, mode in defaults.MODEL_NAMES.items()},
        **{o: defaults_autocomplete(o) for o in ("quality", "size", "duration", "fps")},
    )
    async def defaults_(
        self,
        interaction: discord.Interaction,
        text: str | None = None,
        image: str | None = None,
        frames: str | None = None,
        reference: str | None = None,
        quality: str | None = None,
        audio: bool | None = None,
        size: str | None = None,
        duration: int | None = None,
        fps: int | None = None,
        private: bool | None = None,
        reset: str | None = None,
    ) -> None:
        """Reset (if asked), set what was given, then show the member's defaults, privately."""
        guild_id, user_id = interaction.guild_id or 0, interaction.user.id
        given = (text, image, frames, reference, quality, audio, size, duration, fps, private)
        changes = {n: v for n, v in zip(defaults.NAMES, given, strict=True) if v is not None}
        forget = () if reset is None else (defaults.NAMES if reset == "all" else (reset,))
        await self.engine.set_member_defaults(guild_id, user_id, changes, forget)
        shown = await self.defaults_text(guild_id, user_id, member_locale(interaction))
        await say_text(interaction, shown)

    async def defaults_text(self, guild_id: int, user_id: int, locale: str) -> str:
        """A member's defaults on a server, each option with the modes it is used in."""
        mine: MemberDefaults = await self.engine.member_defaults(guild_id, user_id)
        used = {
            option: defaults.fitting_modes(mine, option, value, self.engine)
            for option, value in mine.options().items()
        }
        return defaults_block(locale, mine, used)

    @video.command(name="cancel", description=described("cmd.video.cancel.desc"))
    @app_commands.describe(**describe("video.cancel", "job"))
    async def cancel(
        self, interaction: discord.Interaction, job: app_commands.Range[int, 1]
    ) -> None:
        """Cancel a waiting or queued job; refunded."""
        await self.cancel_job(interaction, job)

    @cancel.autocomplete("job")
    async def _cancellable(
        self, interaction: discord.Interaction, current: str
    ) -> list[Choice[int]]:
        """The caller's jobs that can still be cancelled, newest first."""
        jobs = await self.engine.cancellable_jobs(interaction.guild_id or 0, interaction.user.id)
        state = partial(render, member_locale(interaction))
        return [
            Choice(
                name=short(
                    f"#{j.id} · {state(f'state.{j.state.value}')} · "
                    + _one_line(j.prompt or j.model),
                    100,
                ),
                value=j.id,
            )
            for j in jobs
            if current.strip().lstrip("#") in str(j.id)
        ][:25]

    async def cancel_job(self, interaction: discord.Interaction, job_id: int) -> None:
        """Cancel for its requester (Cancel button or /video cancel), refunded once."""
        job = await self.engine.cancel(job_id, interaction.user.id)
        await say(interaction, "cancel.done", id=job.id, count=job.cost)

    async def cancel_listed(self, interaction: discord.Interaction, job_id: int) -> None:
        """Cancel #N under /jobs: cancelled (refunded once), then the list again in its place."""
        job = await self.engine.cancel(job_id, interaction.user.id)
        locale = member_locale(interaction)
        guild_id, user_id = interaction.guild_id or 0, interaction.user.id
        text, view = await self._jobs_list(guild_id, user_id, locale)
        done = render(locale, "cancel.done", id=job.id, count=job.cost)
        await interaction.response.edit_message(content=short(f"{done}\n{text}", 2000), view=view)

    # --- model autocomplete: the models of the configured providers -----------------------

    @text.autocomplete("model")
    async def _text_models(self, _: discord.Interaction, current: str) -> list[Choice[str]]:
        """Models that make videos from text."""
        return model_matches(self.engine.models_for(Mode.TEXT), current)

    @image.autocomplete("model")
    async def _image_models(self, _: discord.Interaction, current: str) -> list[Choice[str]]:
        """Models that animate a picture."""
        return model_matches(self.engine.models_for(Mode.IMAGE), current)

    @frames.autocomplete("model")
    async def _frames_models(self, _: discord.Interaction, current: str) -> list[Choice[str]]:
        """Models that go from a first to a last frame."""
        return model_matches(self.engine.models_for(Mode.FRAMES), current)

    @reference.autocomplete("model")
    async def _reference_models(self, _: discord.Interaction, current: str) -> list[Choice[str]]:
        """Models that keep the subjects of reference pictures."""
        return model_matches(self.engine.models_for(Mode.REFERENCE), current)

    @app_commands.command(name="quota", description=described("cmd.quota.desc"))
    @app_commands.guild_only()
    async def quota(self, interaction: discord.Interaction) -> None:
        """Credits left and the next reset."""
        now = time.time()
        balance = await self.engine.balance(interaction.guild_id or 0, interaction.user.id, now)
        reset = next_reset(now)
        await say(
            interaction,
            "quota.left",
            left=balance.left,
            count=balance.allowance + balance.granted,
            reset=ts(reset),
            time=ts(reset, "t"),
        )

    @app_commands.command(name="jobs", description=described("cmd.jobs.desc"))
    @app_commands.guild_only()
    async def jobs(self, interaction: discord.Interaction) -> None:
        """The caller's last ten jobs, a Cancel button under each that has not started yet."""
        guild_id, user_id = interaction.guild_id or 0, interaction.user.id
        text, view = await self._jobs_list(guild_id, user_id, member_locale(interaction))
        await say_text(interaction, text, **({"view": view} if view is not None else {}))

    async def _jobs_list(
        self, guild_id: int, user_id: int, locale: str
    ) -> tuple[str, discord.ui.View | None]:
        """The text and the Cancel buttons of /jobs."""
        jobs = await self.engine.recent_jobs(guild_id, user_id, 10)
        if not jobs:
            return render(locale, "jobs.none"), None
        lines = [self._job_line(locale, job) for job in jobs]
        if any(job.state in CANCELLABLE for job in jobs):
            lines.append(render(locale, "jobs.cancel_hint"))
        return short("\n".join(lines), 2000), jobs_view(jobs, locale)

    @staticmethod
    def _job_line(locale: str, job: Job) -> str:
        """One line of /jobs."""
        line = render(
            locale,
            "jobs.line",
            icon=STATE_ICONS.get(job.state, "•"),
            id=job.id,
            model=job.model,
            provider=provider_label(locale, job),
            state=Msg(f"state.{job.state.value}"),
            when=ts(job.created_at),
        )
        if job.result_message_id:
            link = jump_url(job.guild_id, job.channel_id, job.result_message_id)
            line += " · " + render(locale, "jobs.video_link", url=link)
        elif job.private and job.state is JobState.DELIVERED:
            line += _private_line(locale, job)
        elif job.error_message and job.state in ENDED_BADLY:
            line += f" · {stored_text(locale, job.error_message, 120)}"
        return line

    # --- Animate image and mentions -------------------------------------------------------

    async def animate(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """Message menu: 1 image → image mode, 2 → first/last frames, 3 → reference."""
        attachments = image_attachments(message)
        if not 1 <= len(attachments) <= 3:
            raise InputError("animate.count", count=len(attachments))
        check_attachments(attachments)
        modal = PromptModal(self, attachments, member_locale(interaction))
        await interaction.response.send_modal(modal)

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        """A message that mentions the bot in its text, with 1-3 pictures, starts a video.

        A reply to the bot carries it in `mentions` too (Discord's default ping on reply):
        only a mention written in the text counts.
        """
        me = self.bot.user
        if message.author.bot or message.guild is None or me is None:
            return
        if not re.search(rf"<@!?{me.id}>", message.content):
            return
        if audio_attachments(message) and not image_attachments(message):
            return  # a spoken prompt: the Voice cog's
        await self._answering(message, self._from_mention(message))

    async def _answering(self, message: discord.Message, work: Awaitable[None]) -> None:
        """Run a mention's work; its refusals and failures are replies to the message (in the
        server's language: a message carries no member locale)."""
        locale = self.mention_locale(message)
        try:
            await work
        except BotError as exc:
            text = render(locale, exc.text)
            await message.reply(text, allowed_mentions=only(message.author.id))
        except Exception:
            log.exception("mention %d failed", message.id)
            text = render(locale, "error.mention")
            await message.reply(text, mention_author=False)

    def mention_locale(self, message: discord.Message) -> str:
        """A reply to a message: the author's language if they used a command lately, else the
        server's."""
        known = getattr(self.bot, "member_locales", {}).get(message.author.id)
        return known or server_locale(self.bot, message.guild.id if message.guild else 0)

    async def _from_mention(self, message: discord.Message) -> None:
        """A mention with pictures: ask which model (only the author can answer), then go."""
        attachments = image_attachments(message)
        if not 1 <= len(attachments) <= 3:
            raise InputError("mention.count")
        check_attachments(attachments)
        assert message.guild is not None  # checked by on_message

        async def go(clicked: discord.Interaction, mode: Mode, model: str) -> None:
            """The author clicked "Make it": the question goes, the pipeline answers by replies."""
            making = tr(clicked, "animate.making", model=model)
            await clicked.response.edit_message(content=making, view=None)
            await self._answering(message, self._mention_pipeline(message, mode, model))

        picks = await self.animate_picks(message.guild.id, message.author.id, len(attachments))
        locale = self.mention_locale(message)
        view = ModelQuestion(message.author.id, picks, len(attachments), go, locale)
        text = f"<@{message.author.id}> {question_text(locale, len(attachments))}"
        await message.reply(text, view=view, allowed_mentions=only(message.author.id))

    async def _mention_pipeline(self, message: discord.Message, mode: Mode, model: str) -> None:
        """A mention's request through the same pipeline; questions are replies."""
        attachments = image_attachments(message)
        guild = message.guild
        assert guild is not None and self.bot.user is not None  # checked by on_message
        prompt = re.sub(rf"<@!?{self.bot.user.id}>", "", message.content).strip() or None
        request = JobRequest(
            guild.id,
            message.channel.id,
            message.author.id,
            model,
            mode,
            prompt,
            origin=Origin.MENTION,
            upload_limit=guild.filesize_limit,
        )
        ask = partial(message.reply, allowed_mentions=only(message.author.id))
        pictures = partial(fetch_images, self.bot, attachments)
        entry = Entry(ask, pictures, reference=message, locale=self.mention_locale(message))
        await self.pipeline(self.engine.quote(request), entry)

    async def animate_picks(self, guild_id: int, user_id: int, count: int) -> list[Pick]:
        """The server's enabled models of configured providers for `count` pictures, the
        member's default model first, else the usual one (InputError if there is none)."""
        enabled = await self.engine.moderators.model_rules(guild_id)
        picks = [
            (mode, model)
            for mode in ANIMATE_MODES[count]
            for model in self.engine.models_for(mode)
            if enabled.get(model, True)
        ]
        mode = MODE_BY_COUNT[count]
        mine = (mode, (await self.engine.member_defaults(guild_id, user_id)).model_for(mode))
        usual = (mode, DEFAULT_MODEL[mode])
        picks.sort(key=lambda pick: (pick != mine, pick != usual))  # stable: table order after
        if not picks:
            raise InputError("animate.no_model")
        return picks[:25]

    # --- result buttons -------------------------------------------------------------------

    async def on_job_button(
        self, interaction: discord.Interaction, action: str, job_id: int
    ) -> None:
        """Re-roll, Extend, Details or Delete on a delivered video."""
        job = await self.engine.job(job_id)
        if job is None:
            raise InputError("job.forgotten")
        if action == "details":
            await say_text(interaction, self._details(member_locale(interaction), job))
        elif action == "delete":
            await self._delete(interaction, job)
        else:
            await self._paid_again(interaction, job, action)

    @staticmethod
    def _details(locale: str, job: Job) -> str:
        """Everything about a job, privately."""
        return render(
            locale,
            "details.text",
            noun=noun_title(job),
            id=job.id,
            user=f"<@{job.user_id}>",
            model=job.model,
            mode=job.mode,
            provider=provider_label(locale, job),
            settings=describe_options(locale, job),
            count=job.cost,
            state=Msg(f"state.{job.state.value}"),
            when=ts(job.created_at),
            prompt=safe_prompt(locale, job.prompt, 1500),
        )

    async def _delete(self, interaction: discord.Interaction, job: Job) -> None:
        """The requester or a moderator removes a result."""
        perms = getattr(interaction.user, "guild_permissions", None)
        if interaction.user.id != job.user_id and not (perms and perms.manage_messages):
            raise NotAllowedError("delete.not_yours")
        await interaction.response.defer(ephemeral=True)
        if interaction.message is not None:
            await interaction.message.delete()
        await self.engine.purge_pictures(job.id)  # kept only while another job links them
        await say(interaction, "delete.done", id=job.id)

    async def _paid_again(self, interaction: discord.Interaction, job: Job, action: str) -> None:
        """Re-roll or Extend: only the requester, since it spends their credits."""
        if interaction.user.id != job.user_id:
            raise NotAllowedError(
                f"again.not_yours.{action}", user=f"<@{job.user_id}>", noun=noun(job)
            )
        await interaction.response.defer(ephemeral=True, thinking=True)
        origin = Origin.REROLL if action == "reroll" else Origin.EXTEND
        # Re-roll reuses the stored pictures; Extend downloads the video only once quoted.
        pictures = (
            None if origin is Origin.REROLL else partial(self._last_frame, interaction.message)
        )
        quoting = self.engine.quote_again(job.id, interaction.user.id, origin)
        await self.pipeline(quoting, self.interaction_entry(interaction, pictures))

    async def _last_frame(self, message: discord.Message | None) -> list[bytes]:
        """Download the posted video (from Discord, into the scratch folder); its last frame."""
        videos = [
            a for a in (message.attachments if message else []) if a.filename.endswith(".mp4")
        ]
        if not videos:
            raise InputError("extend.no_file")
        resources = self.bot.resources
        with tempfile.TemporaryDirectory(prefix="extend-", dir=resources.scratch) as tmp:
            path = Path(tmp) / "video.mp4"
            await download_to_file(
                resources.http,
                videos[0].url,
                path,
                max_bytes=MAX_RESULT_FOR_EXTEND,
                allowed_hosts=DISCORD_ATTACHMENT_HOSTS,
                trusted_hosts=resources.settings.trusted_hosts,
            )
            return [await asyncio.to_thread(last_frame_png, path)]


async def setup(bot: VideoBot) -> None:
    """Extension entry point: add the cog (VideoBot.wire connects it to Delivery)."""
    await bot.add_cog(Video(bot))
    bot.add_dynamic_items(JobButton, CancelButton, ListedCancelButton)
