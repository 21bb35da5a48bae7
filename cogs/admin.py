"""/videoadmin: moderators run the server's video use from Discord; approval requests; alerts."""

from __future__ import annotations

import datetime as dt
import io
import logging
import re
import time
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot import models
from bot.engine import PROVIDER_OPTION
from bot.errors import InputError, NotAllowedError
from bot.i18n import DEFAULT_LOCALE as EN  # the moderators' texts are not in the catalog yet
from bot.i18n import Msg, render
from bot.moderation import ModeratorActions
from bot.providers import ProviderName, catalog
from cogs.common import (
    describe_options,
    inert,
    jump_url,
    noun_title,
    provider_name,
    safe_prompt,
    server_locale,
    short,
    ts,
)
from cogs.replies import report_error, say_text
from storage.credits import day_key
from storage.moderation import CostRule
from storage.rows import Job
from storage.states import JobState

UNTRANSLATED = "admin.untranslated"  # {text}: a moderators' text not in the catalog yet

if TYPE_CHECKING:
    from cogs.app import VideoBot

log = logging.getLogger(__name__)

Choice = app_commands.Choice
# Every model the bot has rules for: the model table (videos, stills, speech recognition, whose
# switch turns spoken prompts off) and the provider catalog.
KNOWN_MODELS = list(dict.fromkeys([*models.priced_names(), *catalog.known_models()]))
MODEL_CHOICES = [Choice(name=m, value=m) for m in KNOWN_MODELS][:25]
OPTION_CHOICES = [Choice(name=o, value=o) for o in (*models.OPTION_FIELDS, PROVIDER_OPTION)]
Credits = app_commands.Range[int, 0, 10_000]
NEED_MANAGE = "You need the Manage Server permission to use this."


def is_moderator(interaction: discord.Interaction) -> bool:
    """Manage Server in this channel, checked at run time (owners can change who sees commands)."""
    perms = interaction.permissions
    return bool(perms.manage_guild or perms.administrator)


def require_moderator(interaction: discord.Interaction) -> None:
    """Refuse non-moderators, whatever Discord showed them."""
    if not is_moderator(interaction):
        raise NotAllowedError(UNTRANSLATED, text=NEED_MANAGE)


class ApprovalButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"approval:(?P<verdict>approve|reject):(?P<job>[0-9]+)",
):
    """Approve or Reject on a moderators' approval request; survives restarts."""

    def __init__(self, verdict: str, job_id: int) -> None:
        style = discord.ButtonStyle.success if verdict == "approve" else discord.ButtonStyle.danger
        super().__init__(
            discord.ui.Button(
                label=verdict.title(), style=style, custom_id=f"approval:{verdict}:{job_id}"
            )
        )
        self.verdict = verdict
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button[Any], match: re.Match[str]
    ) -> ApprovalButton:
        """Rebuild from a click."""
        return cls(match["verdict"], int(match["job"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        """Moderators only; reject asks for a reason."""
        try:
            require_moderator(interaction)
            cog: Admin = interaction.client.get_cog("Admin")  # type: ignore[attr-defined, assignment]
            if self.verdict == "approve":
                await cog.approve(interaction, self.job_id)
            else:
                await interaction.response.send_modal(RejectModal(cog, self.job_id))
        except Exception as exc:  # the one boundary for buttons
            await report_error(interaction, exc)


class RejectModal(discord.ui.Modal, title="Reject this video request"):
    """Asks the moderator for the reason shown to the requester."""

    reason: discord.ui.TextInput[RejectModal] = discord.ui.TextInput(
        label="Reason (shown to the member)",
        max_length=300,
        placeholder="e.g. not suitable for this server",
    )

    def __init__(self, cog: Admin, job_id: int) -> None:
        super().__init__()
        self.cog = cog
        self.job_id = job_id

    async def on_submit(self, interaction: discord.Interaction) -> None:
        """Reject with the reason."""
        require_moderator(interaction)
        await self.cog.reject(interaction, self.job_id, self.reason.value)

    async def on_error(self, interaction: discord.Interaction, error: Exception) -> None:
        """Same boundary as commands."""
        await report_error(interaction, error)


def approval_view(job_id: int) -> discord.ui.View:
    """Approve and Reject buttons."""
    view = discord.ui.View(timeout=None)
    view.add_item(ApprovalButton("approve", job_id))
    view.add_item(ApprovalButton("reject", job_id))
    return view


@app_commands.default_permissions(manage_guild=True)
@app_commands.guild_only()
class Admin(commands.GroupCog, group_name="videoadmin", group_description="Moderate the video bot"):
    """Moderator commands, approval requests and provider alerts."""

    # Groups nest one level under /videoadmin.
    quota = app_commands.Group(name="quota", description="Members' daily credits")
    cost = app_commands.Group(name="cost", description="What each model costs")
    cap = app_commands.Group(name="cap", description="The server's daily credit cap")
    blocklist = app_commands.Group(
        name="blocklist", description="Words and patterns refused in prompts"
    )
    approval = app_commands.Group(
        name="approval", description="Moderator approval of every request"
    )
    channels = app_commands.Group(name="channels", description="Where the bot works")
    models_group = app_commands.Group(name="models", description="Which models this server offers")
    hotwords = app_commands.Group(
        name="hotwords", description="Words speech recognition should expect in spoken prompts"
    )

    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot
        self.engine = bot.resources.engine
        self.moderation: ModeratorActions = self.engine.moderators
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction) -> bool:  # type: ignore[override]
        """Every /videoadmin command re-checks Manage Server at run time."""
        if interaction.guild_id is None or not is_moderator(interaction):
            raise app_commands.CheckFailure(NEED_MANAGE)
        return True

    async def _done(
        self, interaction: discord.Interaction, action: str, detail: str, target: int | None = None
    ) -> None:
        """Audit a moderator action and confirm it privately."""
        await self.moderation.audit(
            interaction.guild_id or 0, interaction.user.id, action, detail, target
        )
        log.info(
            "guild %s: %s by %d: %s", interaction.guild_id, action, interaction.user.id, detail
        )
        await say_text(interaction, f"✅ {detail}")

    # --- credits --------------------------------------------------------------------------

    @quota.command(name="set", description="Set one member's daily credits")
    @app_commands.describe(member="The member", credits="Credits per day")
    async def quota_set(
        self, interaction: discord.Interaction, member: discord.Member, credits: Credits
    ) -> None:
        """Per-member allowance."""
        await self.moderation.set_user_allowance(interaction.guild_id or 0, member.id, credits)
        await self._done(
            interaction,
            "quota.set",
            f"{member.mention} now gets {credits} credits per day.",
            member.id,
        )

    @quota.command(name="grant", description="Give a member extra credits for today")
    @app_commands.describe(member="The member", credits="Extra credits for today")
    async def quota_grant(
        self,
        interaction: discord.Interaction,
        member: discord.Member,
        credits: app_commands.Range[int, 1, 10_000],
    ) -> None:
        """Extra credits today."""
        await self.moderation.grant(
            interaction.guild_id or 0, member.id, credits, interaction.user.id, "grant"
        )
        await self._done(
            interaction,
            "quota.grant",
            f"{member.mention} got {credits} extra credits for today.",
            member.id,
        )

    @quota.command(name="reset", description="Give a member back the credits they spent today")
    @app_commands.describe(member="The member")
    async def quota_reset(self, interaction: discord.Interaction, member: discord.Member) -> None:
        """Today's spent credits back."""
        back = await self.moderation.reset(
            interaction.guild_id or 0, member.id, interaction.user.id
        )
        await self._done(
            interaction,
            "quota.reset",
            f"{member.mention} got {back} credits back for today.",
            member.id,
        )

    @quota.command(
        name="default", description="Set the daily credits of every member without their own"
    )
    @app_commands.describe(credits="Credits per member per day")
    async def quota_default(self, interaction: discord.Interaction, credits: Credits) -> None:
        """The server's default allowance."""
        await self.moderation.set_setting(interaction.guild_id or 0, "daily_credits", credits)
        await self._done(
            interaction, "quota.default", f"Members now get {credits} credits per day by default."
        )

    @cost.command(
        name="set", description="Set what a model costs, optionally only with an option value"
    )
    @app_commands.describe(
        model="The model",
        credits="Credits per video",
        option="Only when this option…",
        value="…has this value (e.g. 3840x2160 or 10)",
    )
    @app_commands.choices(model=MODEL_CHOICES, option=OPTION_CHOICES)
    async def cost_set(
        self,
        interaction: discord.Interaction,
        model: str,
        credits: app_commands.Range[int, 1, 1000],
        option: str | None = None,
        value: str | None = None,
    ) -> None:
        """A cost rule."""
        rule = CostRule(model, option or "", self._cost_value(model, option, value), credits)
        await self.moderation.set_cost(interaction.guild_id or 0, rule)
        when = f" with {rule.option}={rule.value}" if rule.option else ""
        await self._done(interaction, "cost.set", f"{model}{when} now costs {credits} credit(s).")

    @staticmethod
    def _cost_value(model: str, option: str | None, value: str | None) -> str:
        """Check an option value against the model table."""
        if option is None:
            if value is not None:
                raise InputError(
                    UNTRANSLATED,
                    text="Pick the option that `value` belongs to, or leave `value` out.",
                )
            return ""
        if option == PROVIDER_OPTION:
            allowed: tuple[object, ...] | None = tuple(p.value for p in ProviderName)
        elif model in catalog.known_models() and model not in models.MODELS:
            allowed = catalog.allowed_values(model, option)  # a gateway's model
        else:
            allowed = models.allowed_values(model, option)  # videos, stills, speech
        if allowed is None:
            raise InputError(UNTRANSLATED, text=f"{model} has no `{option}` option.")
        names = {str(v).lower(): str(v) for v in allowed}
        if value is None or value.lower() not in names:
            raise InputError(
                UNTRANSLATED,
                text=f"Give one of {', '.join(names.values())} as the value for {option}.",
            )
        return names[value.lower()]

    @cost.command(name="list", description="What each model costs here")
    async def cost_list(self, interaction: discord.Interaction) -> None:
        """The cost table."""
        rules = await self.moderation.costs(interaction.guild_id or 0)
        lines = [
            f"• {r.model}{f' with {r.option}={r.value}' if r.option else ''}: {r.cost}"
            for r in rules
        ]
        await say_text(
            interaction,
            "Costs (anything not listed costs 1):\n" + ("\n".join(lines) or "• all models: 1"),
        )

    @cap.command(
        name="set",
        description="Most credits the whole server may spend per day (leave empty: no cap)",
    )
    @app_commands.describe(
        credits="Credits per day for the whole server; leave out to remove the cap"
    )
    async def cap_set(
        self, interaction: discord.Interaction, credits: Credits | None = None
    ) -> None:
        """The guild's daily cap."""
        await self.moderation.set_setting(interaction.guild_id or 0, "daily_cap", credits)
        text = (
            "No daily cap for this server."
            if credits is None
            else f"The server may spend {credits} credits per day."
        )
        await self._done(interaction, "cap.set", text)

    # --- people and words -----------------------------------------------------------------

    @app_commands.command(name="ban", description="Stop a member from making videos")
    @app_commands.describe(member="The member", reason="Shown to them when they try")
    async def ban(
        self,
        interaction: discord.Interaction,
        member: discord.Member,
        reason: app_commands.Range[str, 1, 300],
    ) -> None:
        """Ban (jobs already running finish)."""
        await self.moderation.ban(interaction.guild_id or 0, member.id, reason, interaction.user.id)
        await self._done(
            interaction, "ban", f"{member.mention} can no longer make videos ({reason}).", member.id
        )

    @app_commands.command(name="unban", description="Let a member make videos again")
    @app_commands.describe(member="The member")
    async def unban(self, interaction: discord.Interaction, member: discord.Member) -> None:
        """Lift a ban."""
        if not await self.moderation.unban(interaction.guild_id or 0, member.id):
            raise InputError(UNTRANSLATED, text=f"{member.mention} is not banned.")
        await self._done(
            interaction, "unban", f"{member.mention} can make videos again.", member.id
        )

    @blocklist.command(name="add", description="Refuse prompts containing a word, phrase or regex")
    @app_commands.describe(
        pattern="Word, phrase or regular expression", regex="Treat it as a regular expression"
    )
    async def block_add(
        self,
        interaction: discord.Interaction,
        pattern: app_commands.Range[str, 1, 200],
        regex: bool = False,
    ) -> None:
        """Add to the blocklist (a bad regex is refused now)."""
        guild_id, actor = interaction.guild_id or 0, interaction.user.id
        clean = await self.engine.add_block(guild_id, pattern, regex, actor)
        await self._done(
            interaction, "blocklist.add", f"Blocked {'regex' if regex else 'word'} `{clean}`."
        )

    @blocklist.command(name="remove", description="Remove a blocklist entry")
    @app_commands.describe(pattern="The entry exactly as listed")
    async def block_remove(self, interaction: discord.Interaction, pattern: str) -> None:
        """Remove from the blocklist."""
        if not await self.moderation.remove_block(interaction.guild_id or 0, pattern.strip()):
            raise InputError(
                UNTRANSLATED,
                text=f"`{pattern}` is not on the blocklist; `/videoadmin blocklist list` shows it.",
            )
        await self._done(interaction, "blocklist.remove", f"Unblocked `{pattern.strip()}`.")

    @blocklist.command(name="list", description="Show the blocklist")
    async def block_list(self, interaction: discord.Interaction) -> None:
        """The blocklist."""
        entries = await self.moderation.blocklist(interaction.guild_id or 0)
        lines = [f"• `{p}`{' (regex)' if r else ''}" for p, r in entries]
        await say_text(interaction, short("Blocklist:\n" + ("\n".join(lines) or "• (empty)"), 2000))

    @hotwords.command(name="add", description="Help speech recognition with a name or term")
    @app_commands.describe(word="A word or short phrase members say (names, jargon)")
    async def hotword_add(
        self, interaction: discord.Interaction, word: app_commands.Range[str, 1, 50]
    ) -> None:
        """Add a hotword (at most 100)."""
        clean = await self.engine.add_hotword(interaction.guild_id or 0, word, interaction.user.id)
        await self._done(interaction, "hotwords.add", f"Hotword `{clean}` added.")

    @hotwords.command(name="remove", description="Remove a hotword")
    @app_commands.describe(word="The hotword exactly as listed")
    async def hotword_remove(self, interaction: discord.Interaction, word: str) -> None:
        """Remove a hotword."""
        if not await self.moderation.remove_hotword(interaction.guild_id or 0, word.strip()):
            raise InputError(
                UNTRANSLATED,
                text=f"`{word}` is not a hotword; `/videoadmin hotwords list` shows them.",
            )
        await self._done(interaction, "hotwords.remove", f"Hotword `{word.strip()}` removed.")

    @hotwords.command(name="list", description="Show the hotwords")
    async def hotword_list(self, interaction: discord.Interaction) -> None:
        """The hotwords."""
        words = await self.moderation.hotwords(interaction.guild_id or 0)
        lines = [f"• `{w}`" for w in words]
        await say_text(interaction, short("Hotwords:\n" + ("\n".join(lines) or "• (none)"), 2000))

    # --- where and what -------------------------------------------------------------------

    @approval.command(name="on", description="Send every request to a moderators' channel first")
    @app_commands.describe(channel="Where approval requests go")
    async def approval_on(
        self, interaction: discord.Interaction, channel: discord.TextChannel
    ) -> None:
        """Approval on."""
        await self.moderation.set_setting(
            interaction.guild_id or 0, "approval_channel_id", channel.id
        )
        await self._done(
            interaction, "approval.on", f"Requests now wait for approval in {channel.mention}."
        )

    @approval.command(name="off", description="Stop asking moderators to approve requests")
    async def approval_off(self, interaction: discord.Interaction) -> None:
        """Approval off (requests already waiting still need a decision)."""
        await self.moderation.set_setting(interaction.guild_id or 0, "approval_channel_id", None)
        await self._done(interaction, "approval.off", "Requests no longer need approval.")

    @approval.command(
        name="expiry", description="How long a request waits for a decision before it expires"
    )
    @app_commands.describe(hours="Hours (default 24); an expired request is refunded")
    async def approval_expiry(
        self, interaction: discord.Interaction, hours: app_commands.Range[int, 1, 720]
    ) -> None:
        """The server's approval time."""
        await self.moderation.set_setting(interaction.guild_id or 0, "approval_hours", hours)
        await self._done(
            interaction,
            "approval.expiry",
            f"Requests nobody decides on within {hours} hours now expire (refunded).",
        )

    @approval.command(name="pending", description="Requests waiting for a moderator's decision")
    async def approval_pending(self, interaction: discord.Interaction) -> None:
        """The waiting requests, oldest first, with when each expires."""
        guild_id = interaction.guild_id or 0
        jobs = await self.engine.pending_approvals(guild_id)
        if not jobs:
            await say_text(interaction, "No request is waiting for approval.")
            return
        hours = await self.engine.approval_hours(guild_id)
        channel_id = (await self.moderation.settings(guild_id)).approval_channel_id
        lines = [_pending_line(job, hours * 3600, channel_id) for job in jobs]
        await say_text(interaction, short("Waiting for a decision:\n" + "\n".join(lines), 2000))

    @app_commands.command(
        name="alerts", description="Where to tell moderators about provider trouble"
    )
    @app_commands.describe(channel="Moderators' channel (default: the approval channel)")
    async def alerts(self, interaction: discord.Interaction, channel: discord.TextChannel) -> None:
        """Alerts channel."""
        await self.moderation.set_setting(
            interaction.guild_id or 0, "alerts_channel_id", channel.id
        )
        await self._done(interaction, "alerts", f"Alerts go to {channel.mention}.")

    @channels.command(
        name="allow", description="Let the bot work in a channel (then only in allowed ones)"
    )
    @app_commands.describe(channel="The channel")
    async def channel_allow(
        self, interaction: discord.Interaction, channel: discord.TextChannel
    ) -> None:
        """Allow a channel."""
        await self.moderation.set_channel(interaction.guild_id or 0, channel.id, True)
        await self._done(
            interaction, "channels.allow", f"The bot works in {channel.mention}.", channel.id
        )

    @channels.command(name="deny", description="Stop the bot working in a channel")
    @app_commands.describe(channel="The channel")
    async def channel_deny(
        self, interaction: discord.Interaction, channel: discord.TextChannel
    ) -> None:
        """Deny a channel."""
        await self.moderation.set_channel(interaction.guild_id or 0, channel.id, False)
        await self._done(
            interaction,
            "channels.deny",
            f"The bot no longer works in {channel.mention}.",
            channel.id,
        )

    @channels.command(name="clear", description="Forget a channel's rule")
    @app_commands.describe(channel="The channel")
    async def channel_clear(
        self, interaction: discord.Interaction, channel: discord.TextChannel
    ) -> None:
        """Remove a channel rule."""
        await self.moderation.set_channel(interaction.guild_id or 0, channel.id, None)
        await self._done(
            interaction,
            "channels.clear",
            f"{channel.mention} follows the default again.",
            channel.id,
        )

    @channels.command(name="list", description="Where the bot works")
    async def channel_list(self, interaction: discord.Interaction) -> None:
        """Channel rules."""
        rules = await self.moderation.channel_rules(interaction.guild_id or 0)
        allowed = [f"<#{c}>" for c, ok in rules.items() if ok]
        denied = [f"<#{c}>" for c, ok in rules.items() if not ok]
        text = f"Allowed: {', '.join(allowed) or 'everywhere the bot can read and write'}\n"
        await say_text(interaction, text + f"Denied: {', '.join(denied) or 'none'}")

    @models_group.command(name="enable", description="Offer a model on this server")
    @app_commands.describe(model="The model")
    @app_commands.choices(model=MODEL_CHOICES)
    async def model_enable(self, interaction: discord.Interaction, model: str) -> None:
        """Enable a model."""
        await self.moderation.set_model(interaction.guild_id or 0, model, True)
        await self._done(interaction, "models.enable", f"{model} is enabled.")

    @models_group.command(name="disable", description="Stop offering a model on this server")
    @app_commands.describe(model="The model")
    @app_commands.choices(model=MODEL_CHOICES)
    async def model_disable(self, interaction: discord.Interaction, model: str) -> None:
        """Disable a model."""
        await self.moderation.set_model(interaction.guild_id or 0, model, False)
        await self._done(interaction, "models.disable", f"{model} is disabled.")

    @models_group.command(name="list", description="Which models this server offers")
    async def model_list(self, interaction: discord.Interaction) -> None:
        """Model rules."""
        rules = await self.moderation.model_rules(interaction.guild_id or 0)
        offered = list(dict.fromkeys([*self.engine.routed_models(), *models.priced_names()]))
        lines = [f"{'✅' if rules.get(m, True) else '⛔'} {m}" for m in offered]
        await say_text(interaction, "\n".join(lines))

    # --- seeing what happened -------------------------------------------------------------

    @app_commands.command(
        name="stats", description="Jobs, credits and failures: today and the last 7 days"
    )
    async def stats(self, interaction: discord.Interaction) -> None:
        """Usage per model and top users."""
        guild = interaction.guild_id or 0
        now = time.time()
        today = dt.datetime.fromisoformat(day_key(now)).replace(tzinfo=dt.UTC).timestamp()
        embed = discord.Embed(title="Video bot stats")
        for label, since in (("Today", today), ("Last 7 days", now - 7 * 86400)):
            data = await self.moderation.stats(guild, since)
            embed.add_field(
                name=f"{label}: per model", value=_model_lines(data["models"]), inline=False
            )
            embed.add_field(
                name=f"{label}: top users", value=_user_lines(data["users"]), inline=False
            )
        await say_text(interaction, "", embed=embed)

    @app_commands.command(name="audit", description="Recent moderator actions and refusals")
    async def audit(self, interaction: discord.Interaction) -> None:
        """The audit log."""
        entries = await self.moderation.recent_audit(interaction.guild_id or 0, 20)
        lines = [
            f"{ts(e.created_at)} {f'<@{e.actor_id}>' if e.actor_id else 'bot'} **{e.action}** {inert(e.detail, 150)}"
            for e in entries
        ]
        await say_text(interaction, short("\n".join(lines) or "Nothing yet.", 2000))

    # --- approval requests and alerts -----------------------------------------------------

    async def on_job_pending_approval(self, job: Job) -> None:
        """Post the request, its pictures and the buttons in the approval channel."""
        settings = await self.moderation.settings(job.guild_id)
        channel_id = settings.approval_channel_id
        if channel_id is None:  # approval was switched off meanwhile: let it through
            await self.engine.approve(job.id, self.bot.user.id if self.bot.user else 0)
            return
        files = [
            discord.File(io.BytesIO(image.data), filename=f"input-{n}.{image.mime.split('/')[-1]}")
            for n, image in enumerate(await self.engine.job_pictures(job.id), start=1)
        ]
        channel = self.bot.get_partial_messageable(channel_id, guild_id=job.guild_id)
        message = await channel.send(
            _approval_text(job),
            files=files,
            view=approval_view(job.id),
            allowed_mentions=discord.AllowedMentions.none(),
        )
        await self.engine.set_approval_message(job.id, message.id)
        fresh = await self.engine.job(job.id)  # cancelled while the request was being posted?
        if fresh is not None and fresh.state is not JobState.PENDING_APPROVAL:
            await self.on_job_withdrawn(fresh)

    async def on_job_withdrawn(self, job: Job) -> None:
        """Under a request that ended undecided, say how, and take its buttons away."""
        notes = {
            JobState.CANCELLED: "✖️ Cancelled by the member (refunded).",
            JobState.EXPIRED: "⌛ Expired: nobody decided in time (refunded).",
        }
        channel_id = (await self.moderation.settings(job.guild_id)).approval_channel_id
        if job.state not in notes or not job.approval_message_id or channel_id is None:
            return
        message = self.bot.get_partial_messageable(channel_id).get_partial_message(
            job.approval_message_id
        )
        try:
            await message.edit(
                content=_approval_text(job) + f"\n{notes[job.state]}",
                view=None,
                allowed_mentions=discord.AllowedMentions.none(),
            )
        except discord.HTTPException as exc:  # moved channel, deleted message: the list knows
            log.info("job %d: could not mark its approval request: %s", job.id, exc)

    async def approve(self, interaction: discord.Interaction, job_id: int) -> None:
        """Approve and update the request message."""
        if not await self.engine.approve(job_id, interaction.user.id):
            raise InputError(UNTRANSLATED, text="That request was already decided.")
        await interaction.response.edit_message(
            content=f"{interaction.message.content if interaction.message else ''}\n✅ Approved by {interaction.user.mention}",
            view=None,
            allowed_mentions=discord.AllowedMentions.none(),
        )

    async def reject(self, interaction: discord.Interaction, job_id: int, reason: str) -> None:
        """Reject, refund, and update the request message."""
        if not await self.engine.reject(job_id, interaction.user.id, reason):
            raise InputError(UNTRANSLATED, text="That request was already decided.")
        job = await self.engine.job(job_id)
        if job is not None and job.approval_message_id and interaction.channel_id:
            message = self.bot.get_partial_messageable(interaction.channel_id).get_partial_message(
                job.approval_message_id
            )
            note = f"\n🚫 Rejected by {interaction.user.mention}: {inert(reason, 300)}"
            original = (
                interaction.message.content if interaction.message else f"Video request #{job_id}"
            )
            await message.edit(
                content=short(original + note, 2000),
                view=None,
                allowed_mentions=discord.AllowedMentions.none(),
            )
        await say_text(interaction, f"Request #{job_id} rejected; the member was refunded.")

    async def on_policy_alert(self, guild_id: int, message: Msg) -> None:
        """Tell one server's moderators about a problem with their rules (a slow regex), in the
        server's language."""
        text = render(server_locale(self.bot, guild_id), message)
        channel_id = (await self.moderation.settings(guild_id)).alerts_channel_id
        if channel_id is not None:
            await self.bot.get_partial_messageable(channel_id, guild_id=guild_id).send(
                f"⚠️ {short(text, 1900)}", allowed_mentions=discord.AllowedMentions.none()
            )

    async def on_provider_halted(self, job: Job, reason: str | None) -> None:
        """Tell each server's moderators once that the provider account refused work."""
        provider = provider_name(EN, job.provider)
        text = (
            f"⚠️ The account at {provider} behind this bot refused new work "
            f"({inert(reason or 'account problem', 200)}). New requests to it are paused and "
            "refunded; "
            "the bot operator must check the account (balance, key or limits)."
        )
        for guild_id, channel_id in await self.moderation.guilds_with_alerts():
            try:
                await self.bot.get_partial_messageable(channel_id, guild_id=guild_id).send(
                    text, allowed_mentions=discord.AllowedMentions.none()
                )
            except discord.HTTPException as exc:
                log.warning("guild %d: could not post provider alert: %s", guild_id, exc)


def _approval_text(job: Job) -> str:
    """The moderators' approval request of a job."""
    return (
        f"{render(EN, noun_title(job))} request #{job.id} from <@{job.user_id}> in <#{job.channel_id}> "
        f"({job.model}, {job.mode}, {job.cost} credit(s))\nSettings: {describe_options(EN, job)}\n"
        f"> {safe_prompt(EN, job.prompt, 1500)}"
    )


def _pending_line(job: Job, wait: float, channel_id: int | None) -> str:
    """One waiting request: who, where, when it expires, and its approval message."""
    if job.approval_message_id and channel_id:
        where = f"[request]({jump_url(job.guild_id, channel_id, job.approval_message_id)})"
    else:  # the post failed (channel gone, no permission): it expires unless approval is off
        where = "not posted in the approval channel"
    return (
        f"• #{job.id} by <@{job.user_id}> in <#{job.channel_id}> · {job.model} · "
        f"asked {ts(job.created_at)} · expires {ts(job.created_at + wait)} · {where}\n"
        f"  > {safe_prompt(EN, job.prompt, 120)}"
    )


def _model_lines(rows: list[dict[str, Any]]) -> str:
    """Per-model stats lines."""
    lines = [
        f"{r['model']}: {r['jobs']} jobs, {r['credits'] or 0} credits, {r['failures'] or 0} failed, "
        f"{r['refused'] or 0} refused by the content filter"
        for r in rows
    ]
    return short("\n".join(lines) or "no jobs", 1024)


def _user_lines(rows: list[dict[str, Any]]) -> str:
    """Top users lines."""
    lines = [
        f"<@{r['user_id']}>: {r['jobs']} jobs, {r['credits'] or 0} credits, {r['refused'] or 0} content-filter refusals"
        for r in rows
    ]
    return short("\n".join(lines) or "nobody", 1024)


async def setup(bot: VideoBot) -> None:
    """Extension entry point: add the cog (VideoBot.wire connects it to Delivery)."""
    await bot.add_cog(Admin(bot))
    bot.add_dynamic_items(ApprovalButton)
