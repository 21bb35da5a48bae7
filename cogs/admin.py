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
from bot.i18n import DEFAULT_LOCALE, Msg, has, msg, render
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
from cogs.replies import NotPermitted, member_locale, report_error, say, say_text, tr
from cogs.translator import described
from storage.credits import day_key
from storage.moderation import CostRule
from storage.rows import Job
from storage.states import JobState

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
NEED_MANAGE = "admin.need_manage"


def describe(command: str, *params: str) -> dict[str, app_commands.locale_str]:
    """Option descriptions of a /videoadmin command: `opt.videoadmin.<command>.<param>.desc`,
    else the shared `opt.videoadmin.<param>.desc`."""
    out = {}
    for param in params:
        own = f"opt.videoadmin.{command}.{param}.desc"
        out[param] = described(own if has(own) else f"opt.videoadmin.{param}.desc")
    return out


def cmd(path: str) -> app_commands.locale_str:
    """The description of /videoadmin <path> (localized by the translator)."""
    return described(f"cmd.videoadmin.{path}.desc")


def is_moderator(interaction: discord.Interaction) -> bool:
    """Manage Server in this channel, checked at run time (owners can change who sees commands)."""
    perms = interaction.permissions
    return bool(perms.manage_guild or perms.administrator)


def require_moderator(interaction: discord.Interaction) -> None:
    """Refuse non-moderators, whatever Discord showed them."""
    if not is_moderator(interaction):
        raise NotAllowedError(NEED_MANAGE)


class ApprovalButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"approval:(?P<verdict>approve|reject):(?P<job>[0-9]+)",
):
    """Approve or Reject on a moderators' approval request; survives restarts."""

    def __init__(self, verdict: str, job_id: int, locale: str = DEFAULT_LOCALE) -> None:
        style = discord.ButtonStyle.success if verdict == "approve" else discord.ButtonStyle.danger
        label = render(locale, f"admin.{verdict}")
        super().__init__(
            discord.ui.Button(label=label, style=style, custom_id=f"approval:{verdict}:{job_id}")
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
                modal = RejectModal(cog, self.job_id, member_locale(interaction))
                await interaction.response.send_modal(modal)
        except Exception as exc:  # the one boundary for buttons
            await report_error(interaction, exc)


class RejectModal(discord.ui.Modal):
    """Asks the moderator for the reason shown to the requester (in the moderator's language)."""

    def __init__(self, cog: Admin, job_id: int, locale: str = DEFAULT_LOCALE) -> None:
        super().__init__(title=render(locale, "admin.reject.title"))
        self.cog = cog
        self.job_id = job_id
        self.reason: discord.ui.TextInput[RejectModal] = discord.ui.TextInput(
            label=render(locale, "admin.reject.reason"),
            max_length=300,
            placeholder=render(locale, "admin.reject.placeholder"),
        )
        self.add_item(self.reason)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        """Reject with the reason."""
        require_moderator(interaction)
        await self.cog.reject(interaction, self.job_id, self.reason.value)

    async def on_error(self, interaction: discord.Interaction, error: Exception) -> None:
        """Same boundary as commands."""
        await report_error(interaction, error)


def approval_view(job_id: int, locale: str = DEFAULT_LOCALE) -> discord.ui.View:
    """Approve and Reject buttons."""
    view = discord.ui.View(timeout=None)
    view.add_item(ApprovalButton("approve", job_id, locale))
    view.add_item(ApprovalButton("reject", job_id, locale))
    return view


@app_commands.default_permissions(manage_guild=True)
@app_commands.guild_only()
class Admin(
    commands.GroupCog, group_name="videoadmin", group_description=described("cmd.videoadmin.desc")
):
    """Moderator commands, approval requests and provider alerts."""

    # Groups nest one level under /videoadmin.
    quota = app_commands.Group(name="quota", description=cmd("quota"))
    cost = app_commands.Group(name="cost", description=cmd("cost"))
    cap = app_commands.Group(name="cap", description=cmd("cap"))
    blocklist = app_commands.Group(name="blocklist", description=cmd("blocklist"))
    approval = app_commands.Group(name="approval", description=cmd("approval"))
    channels = app_commands.Group(name="channels", description=cmd("channels"))
    models_group = app_commands.Group(name="models", description=cmd("models"))
    hotwords = app_commands.Group(name="hotwords", description=cmd("hotwords"))

    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot
        self.engine = bot.resources.engine
        self.moderation: ModeratorActions = self.engine.moderators
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction) -> bool:  # type: ignore[override]
        """Every /videoadmin command re-checks Manage Server at run time."""
        if interaction.guild_id is None or not is_moderator(interaction):
            raise NotPermitted(Msg(NEED_MANAGE))
        return True

    async def _done(
        self, interaction: discord.Interaction, action: str, done: Msg, target: int | None = None
    ) -> None:
        """Audit a moderator action (in en-US, like every audit line) and confirm it privately
        in the moderator's language."""
        detail = render(DEFAULT_LOCALE, done)
        await self.moderation.audit(
            interaction.guild_id or 0, interaction.user.id, action, detail, target
        )
        log.info(
            "guild %s: %s by %d: %s", interaction.guild_id, action, interaction.user.id, detail
        )
        await say_text(interaction, "✅ " + tr(interaction, done))

    # --- credits --------------------------------------------------------------------------

    @quota.command(name="set", description=cmd("quota.set"))
    @app_commands.describe(**describe("quota.set", "member", "credits"))
    async def quota_set(
        self, interaction: discord.Interaction, member: discord.Member, credits: Credits
    ) -> None:
        """Per-member allowance."""
        await self.moderation.set_user_allowance(interaction.guild_id or 0, member.id, credits)
        await self._done(
            interaction,
            "quota.set",
            msg("admin.quota.set", member=member.mention, count=credits),
            member.id,
        )

    @quota.command(name="grant", description=cmd("quota.grant"))
    @app_commands.describe(**describe("quota.grant", "member", "credits"))
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
            msg("admin.quota.grant", member=member.mention, count=credits),
            member.id,
        )

    @quota.command(name="reset", description=cmd("quota.reset"))
    @app_commands.describe(**describe("quota.reset", "member"))
    async def quota_reset(self, interaction: discord.Interaction, member: discord.Member) -> None:
        """Today's spent credits back."""
        back = await self.moderation.reset(
            interaction.guild_id or 0, member.id, interaction.user.id
        )
        await self._done(
            interaction,
            "quota.reset",
            msg("admin.quota.reset", member=member.mention, count=back),
            member.id,
        )

    @quota.command(name="default", description=cmd("quota.default"))
    @app_commands.describe(**describe("quota.default", "credits"))
    async def quota_default(self, interaction: discord.Interaction, credits: Credits) -> None:
        """The server's default allowance."""
        await self.moderation.set_setting(interaction.guild_id or 0, "daily_credits", credits)
        await self._done(interaction, "quota.default", msg("admin.quota.default", count=credits))

    @cost.command(name="set", description=cmd("cost.set"))
    @app_commands.describe(**describe("cost.set", "model", "credits", "option", "value"))
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
        done = msg("admin.cost.set", model=model, when=_when(rule), count=credits)
        await self._done(interaction, "cost.set", done)

    @staticmethod
    def _cost_value(model: str, option: str | None, value: str | None) -> str:
        """Check an option value against the model table."""
        if option is None:
            if value is not None:
                raise InputError("admin.cost.option_first")
            return ""
        if option == PROVIDER_OPTION:
            allowed: tuple[object, ...] | None = tuple(p.value for p in ProviderName)
        elif model in catalog.known_models() and model not in models.MODELS:
            allowed = catalog.allowed_values(model, option)  # a gateway's model
        else:
            allowed = models.allowed_values(model, option)  # videos, stills, speech
        if allowed is None:
            raise InputError("admin.cost.no_option", model=model, option=option)
        names = {str(v).lower(): str(v) for v in allowed}
        if value is None or value.lower() not in names:
            values = ", ".join(names.values())
            raise InputError("admin.cost.pick_value", values=values, option=option)
        return names[value.lower()]

    @cost.command(name="list", description=cmd("cost.list"))
    async def cost_list(self, interaction: discord.Interaction) -> None:
        """The cost table."""
        rules = await self.moderation.costs(interaction.guild_id or 0)
        lines = [f"• {r.model}{tr(interaction, _when(r))}: {r.cost}" for r in rules]
        empty = tr(interaction, "admin.cost.list_empty")
        head = tr(interaction, "admin.cost.list_head")
        await say_text(interaction, head + "\n" + ("\n".join(lines) or empty))

    @cap.command(name="set", description=cmd("cap.set"))
    @app_commands.describe(**describe("cap.set", "credits"))
    async def cap_set(
        self, interaction: discord.Interaction, credits: Credits | None = None
    ) -> None:
        """The guild's daily cap."""
        await self.moderation.set_setting(interaction.guild_id or 0, "daily_cap", credits)
        done = msg("admin.cap.none") if credits is None else msg("admin.cap.set", count=credits)
        await self._done(interaction, "cap.set", done)

    # --- people and words -----------------------------------------------------------------

    @app_commands.command(name="ban", description=cmd("ban"))
    @app_commands.describe(**describe("ban", "member", "reason"))
    async def ban(
        self,
        interaction: discord.Interaction,
        member: discord.Member,
        reason: app_commands.Range[str, 1, 300],
    ) -> None:
        """Ban (jobs already running finish)."""
        await self.moderation.ban(interaction.guild_id or 0, member.id, reason, interaction.user.id)
        done = msg("admin.ban", member=member.mention, reason=reason)
        await self._done(interaction, "ban", done, member.id)

    @app_commands.command(name="unban", description=cmd("unban"))
    @app_commands.describe(**describe("unban", "member"))
    async def unban(self, interaction: discord.Interaction, member: discord.Member) -> None:
        """Lift a ban."""
        if not await self.moderation.unban(interaction.guild_id or 0, member.id):
            raise InputError("admin.unban.not_banned", member=member.mention)
        await self._done(interaction, "unban", msg("admin.unban", member=member.mention), member.id)

    @blocklist.command(name="add", description=cmd("blocklist.add"))
    @app_commands.describe(**describe("blocklist.add", "pattern", "regex"))
    async def block_add(
        self,
        interaction: discord.Interaction,
        pattern: app_commands.Range[str, 1, 200],
        regex: bool = False,
    ) -> None:
        """Add to the blocklist (a bad regex is refused now)."""
        guild_id, actor = interaction.guild_id or 0, interaction.user.id
        clean = await self.engine.add_block(guild_id, pattern, regex, actor)
        key = "admin.block.added_regex" if regex else "admin.block.added_word"
        await self._done(interaction, "blocklist.add", msg(key, pattern=clean))

    @blocklist.command(name="remove", description=cmd("blocklist.remove"))
    @app_commands.describe(**describe("blocklist.remove", "pattern"))
    async def block_remove(self, interaction: discord.Interaction, pattern: str) -> None:
        """Remove from the blocklist."""
        if not await self.moderation.remove_block(interaction.guild_id or 0, pattern.strip()):
            raise InputError("admin.block.not_listed", pattern=pattern)
        done = msg("admin.block.removed", pattern=pattern.strip())
        await self._done(interaction, "blocklist.remove", done)

    @blocklist.command(name="list", description=cmd("blocklist.list"))
    async def block_list(self, interaction: discord.Interaction) -> None:
        """The blocklist."""
        entries = await self.moderation.blocklist(interaction.guild_id or 0)
        mark = tr(interaction, "admin.block.regex_mark")
        lines = [f"• `{p}`{mark if r else ''}" for p, r in entries]
        text = "\n".join(lines) or tr(interaction, "admin.block.empty")
        await say_text(
            interaction, short(tr(interaction, "admin.block.list_head") + "\n" + text, 2000)
        )

    @hotwords.command(name="add", description=cmd("hotwords.add"))
    @app_commands.describe(**describe("hotwords.add", "word"))
    async def hotword_add(
        self, interaction: discord.Interaction, word: app_commands.Range[str, 1, 50]
    ) -> None:
        """Add a hotword (at most 100)."""
        clean = await self.engine.add_hotword(interaction.guild_id or 0, word, interaction.user.id)
        await self._done(interaction, "hotwords.add", msg("admin.hotword.added", word=clean))

    @hotwords.command(name="remove", description=cmd("hotwords.remove"))
    @app_commands.describe(**describe("hotwords.remove", "word"))
    async def hotword_remove(self, interaction: discord.Interaction, word: str) -> None:
        """Remove a hotword."""
        if not await self.moderation.remove_hotword(interaction.guild_id or 0, word.strip()):
            raise InputError("admin.hotword.not_listed", word=word)
        done = msg("admin.hotword.removed", word=word.strip())
        await self._done(interaction, "hotwords.remove", done)

    @hotwords.command(name="list", description=cmd("hotwords.list"))
    async def hotword_list(self, interaction: discord.Interaction) -> None:
        """The hotwords."""
        words = await self.moderation.hotwords(interaction.guild_id or 0)
        text = "\n".join(f"• `{w}`" for w in words) or tr(interaction, "admin.hotword.empty")
        head = tr(interaction, "admin.hotword.list_head")
        await say_text(interaction, short(head + "\n" + text, 2000))

    # --- where and what -------------------------------------------------------------------

    @approval.command(name="on", description=cmd("approval.on"))
    @app_commands.describe(**describe("approval.on", "channel"))
    async def approval_on(
        self, interaction: discord.Interaction, channel: discord.TextChannel
    ) -> None:
        """Approval on."""
        await self.moderation.set_setting(
            interaction.guild_id or 0, "approval_channel_id", channel.id
        )
        done = msg("admin.approval.on", channel=channel.mention)
        await self._done(interaction, "approval.on", done)

    @approval.command(name="off", description=cmd("approval.off"))
    async def approval_off(self, interaction: discord.Interaction) -> None:
        """Approval off (requests already waiting still need a decision)."""
        await self.moderation.set_setting(interaction.guild_id or 0, "approval_channel_id", None)
        await self._done(interaction, "approval.off", msg("admin.approval.off"))

    @approval.command(name="expiry", description=cmd("approval.expiry"))
    @app_commands.describe(**describe("approval.expiry", "hours"))
    async def approval_expiry(
        self, interaction: discord.Interaction, hours: app_commands.Range[int, 1, 720]
    ) -> None:
        """The server's approval time."""
        await self.moderation.set_setting(interaction.guild_id or 0, "approval_hours", hours)
        await self._done(interaction, "approval.expiry", msg("admin.approval.expiry", count=hours))

    @approval.command(name="pending", description=cmd("approval.pending"))
    async def approval_pending(self, interaction: discord.Interaction) -> None:
        """The waiting requests, oldest first, with when each expires."""
        guild_id = interaction.guild_id or 0
        jobs = await self.engine.pending_approvals(guild_id)
        if not jobs:
            await say(interaction, "admin.pending.none")
            return
        hours = await self.engine.approval_hours(guild_id)
        channel_id = (await self.moderation.settings(guild_id)).approval_channel_id
        locale = member_locale(interaction)
        lines = [_pending_line(locale, job, hours * 3600, channel_id) for job in jobs]
        head = render(locale, "admin.pending.head")
        await say_text(interaction, short(head + "\n" + "\n".join(lines), 2000))

    @app_commands.command(name="alerts", description=cmd("alerts"))
    @app_commands.describe(**describe("alerts", "channel"))
    async def alerts(self, interaction: discord.Interaction, channel: discord.TextChannel) -> None:
        """Alerts channel."""
        await self.moderation.set_setting(
            interaction.guild_id or 0, "alerts_channel_id", channel.id
        )
        await self._done(interaction, "alerts", msg("admin.alerts", channel=channel.mention))

    @channels.command(name="allow", description=cmd("channels.allow"))
    @app_commands.describe(**describe("channels.allow", "channel"))
    async def channel_allow(
        self, interaction: discord.Interaction, channel: discord.TextChannel
    ) -> None:
        """Allow a channel."""
        await self.moderation.set_channel(interaction.guild_id or 0, channel.id, True)
        done = msg("admin.channels.allow", channel=channel.mention)
        await self._done(interaction, "channels.allow", done, channel.id)

    @channels.command(name="deny", description=cmd("channels.deny"))
    @app_commands.describe(**describe("channels.deny", "channel"))
    async def channel_deny(
        self, interaction: discord.Interaction, channel: discord.TextChannel
    ) -> None:
        """Deny a channel."""
        await self.moderation.set_channel(interaction.guild_id or 0, channel.id, False)
        done = msg("admin.channels.deny", channel=channel.mention)
        await self._done(interaction, "channels.deny", done, channel.id)

    @channels.command(name="clear", description=cmd("channels.clear"))
    @app_commands.describe(**describe("channels.clear", "channel"))
    async def channel_clear(
        self, interaction: discord.Interaction, channel: discord.TextChannel
    ) -> None:
        """Remove a channel rule."""
        await self.moderation.set_channel(interaction.guild_id or 0, channel.id, None)
        done = msg("admin.channels.clear", channel=channel.mention)
        await self._done(interaction, "channels.clear", done, channel.id)

    @channels.command(name="list", description=cmd("channels.list"))
    async def channel_list(self, interaction: discord.Interaction) -> None:
        """Channel rules."""
        rules = await self.moderation.channel_rules(interaction.guild_id or 0)
        allowed = [f"<#{c}>" for c, ok in rules.items() if ok]
        denied = [f"<#{c}>" for c, ok in rules.items() if not ok]
        everywhere, none = Msg("admin.channels.everywhere"), Msg("admin.channels.none")
        text = tr(interaction, "admin.channels.allowed", channels=", ".join(allowed) or everywhere)
        denied_text = tr(interaction, "admin.channels.denied", channels=", ".join(denied) or none)
        await say_text(interaction, text + "\n" + denied_text)

    @models_group.command(name="enable", description=cmd("models.enable"))
    @app_commands.describe(**describe("models.enable", "model"))
    @app_commands.choices(model=MODEL_CHOICES)
    async def model_enable(self, interaction: discord.Interaction, model: str) -> None:
        """Enable a model."""
        await self.moderation.set_model(interaction.guild_id or 0, model, True)
        await self._done(interaction, "models.enable", msg("admin.models.enabled", model=model))

    @models_group.command(name="disable", description=cmd("models.disable"))
    @app_commands.describe(**describe("models.disable", "model"))
    @app_commands.choices(model=MODEL_CHOICES)
    async def model_disable(self, interaction: discord.Interaction, model: str) -> None:
        """Disable a model."""
        await self.moderation.set_model(interaction.guild_id or 0, model, False)
        await self._done(interaction, "models.disable", msg("admin.models.disabled", model=model))

    @models_group.command(name="list", description=cmd("models.list"))
    async def model_list(self, interaction: discord.Interaction) -> None:
        """Model rules."""
        rules = await self.moderation.model_rules(interaction.guild_id or 0)
        offered = list(dict.fromkeys([*self.engine.routed_models(), *models.priced_names()]))
        lines = [f"{'✅' if rules.get(m, True) else '⛔'} {m}" for m in offered]
        await say_text(interaction, "\n".join(lines))

    # --- seeing what happened -------------------------------------------------------------

    @app_commands.command(name="stats", description=cmd("stats"))
    async def stats(self, interaction: discord.Interaction) -> None:
        """Usage per model and top users."""
        guild = interaction.guild_id or 0
        now = time.time()
        today = dt.datetime.fromisoformat(day_key(now)).replace(tzinfo=dt.UTC).timestamp()
        locale = member_locale(interaction)
        embed = discord.Embed(title=render(locale, "admin.stats.title"))
        for period, since in (("admin.stats.today", today), ("admin.stats.week", now - 7 * 86400)):
            data = await self.moderation.stats(guild, since)
            label = Msg(period)
            embed.add_field(
                name=render(locale, "admin.stats.per_model", period=label),
                value=_model_lines(locale, data["models"]),
                inline=False,
            )
            embed.add_field(
                name=render(locale, "admin.stats.top_users", period=label),
                value=_user_lines(locale, data["users"]),
                inline=False,
            )
        await say_text(interaction, "", embed=embed)

    @app_commands.command(name="audit", description=cmd("audit"))
    async def audit(self, interaction: discord.Interaction) -> None:
        """The audit log."""
        entries = await self.moderation.recent_audit(interaction.guild_id or 0, 20)
        bot = tr(interaction, "admin.audit.bot")
        lines = [
            f"{ts(e.created_at)} {f'<@{e.actor_id}>' if e.actor_id else bot} **{e.action}** "
            + inert(e.detail, 150)
            for e in entries
        ]
        text = "\n".join(lines) or tr(interaction, "admin.audit.empty")
        await say_text(interaction, short(text, 2000))

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
        locale = server_locale(self.bot, job.guild_id)
        message = await channel.send(
            _approval_text(locale, job),
            files=files,
            view=approval_view(job.id, locale),
            allowed_mentions=discord.AllowedMentions.none(),
        )
        await self.engine.set_approval_message(job.id, message.id)
        fresh = await self.engine.job(job.id)  # cancelled while the request was being posted?
        if fresh is not None and fresh.state is not JobState.PENDING_APPROVAL:
            await self.on_job_withdrawn(fresh)

    async def on_job_withdrawn(self, job: Job) -> None:
        """Under a request that ended undecided, say how, and take its buttons away."""
        notes = {
            JobState.CANCELLED: "admin.withdrawn.cancelled",
            JobState.EXPIRED: "admin.withdrawn.expired",
        }
        channel_id = (await self.moderation.settings(job.guild_id)).approval_channel_id
        if job.state not in notes or not job.approval_message_id or channel_id is None:
            return
        message = self.bot.get_partial_messageable(channel_id).get_partial_message(
            job.approval_message_id
        )
        locale = server_locale(self.bot, job.guild_id)
        try:
            await message.edit(
                content=_approval_text(locale, job) + "\n" + render(locale, notes[job.state]),
                view=None,
                allowed_mentions=discord.AllowedMentions.none(),
            )
        except discord.HTTPException as exc:  # moved channel, deleted message: the list knows
            log.info("job %d: could not mark its approval request: %s", job.id, exc)

    async def approve(self, interaction: discord.Interaction, job_id: int) -> None:
        """Approve and update the request message."""
        if not await self.engine.approve(job_id, interaction.user.id):
            raise InputError("admin.decided")
        locale = server_locale(self.bot, interaction.guild_id or 0)  # the request is a post
        note = render(locale, "admin.approved_by", moderator=interaction.user.mention)
        await interaction.response.edit_message(
            content=f"{interaction.message.content if interaction.message else ''}\n{note}",
            view=None,
            allowed_mentions=discord.AllowedMentions.none(),
        )

    async def reject(self, interaction: discord.Interaction, job_id: int, reason: str) -> None:
        """Reject, refund, and update the request message."""
        if not await self.engine.reject(job_id, interaction.user.id, reason):
            raise InputError("admin.decided")
        job = await self.engine.job(job_id)
        if job is not None and job.approval_message_id and interaction.channel_id:
            message = self.bot.get_partial_messageable(interaction.channel_id).get_partial_message(
                job.approval_message_id
            )
            locale = server_locale(self.bot, job.guild_id)  # the request is a channel post
            mention, why = interaction.user.mention, inert(reason, 300)
            note = "\n" + render(locale, "admin.rejected_by", moderator=mention, reason=why)
            original = (
                interaction.message.content
                if interaction.message
                else render(locale, "admin.request_fallback", id=job_id)
            )
            await message.edit(
                content=short(original + note, 2000),
                view=None,
                allowed_mentions=discord.AllowedMentions.none(),
            )
        await say(interaction, "admin.rejected", id=job_id)

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
        """Tell each server's moderators once that the provider account refused work (in the
        server's language)."""
        for guild_id, channel_id in await self.moderation.guilds_with_alerts():
            text = _halted_text(server_locale(self.bot, guild_id), job, reason)
            try:
                await self.bot.get_partial_messageable(channel_id, guild_id=guild_id).send(
                    text, allowed_mentions=discord.AllowedMentions.none()
                )
            except discord.HTTPException as exc:
                log.warning("guild %d: could not post provider alert: %s", guild_id, exc)


def _when(rule: CostRule) -> Msg | str:
    """The option part of a cost rule (` with size=1920x1080`), or nothing."""
    return msg("admin.cost.when", option=rule.option, value=rule.value) if rule.option else ""


def _halted_text(locale: str, job: Job, reason: str | None) -> str:
    """The moderators' alert that a provider account refused new work."""
    why = inert(reason, 200) if reason else render(locale, "admin.account_problem")
    provider = provider_name(locale, job.provider)
    return render(locale, "admin.provider_halted", provider=provider, reason=why)


def _approval_text(locale: str, job: Job) -> str:
    """The moderators' approval request of a job."""
    return render(
        locale,
        "admin.approval_request",
        noun=noun_title(job),
        id=job.id,
        user=f"<@{job.user_id}>",
        channel=f"<#{job.channel_id}>",
        model=job.model,
        mode=job.mode,
        count=job.cost,
        settings=describe_options(locale, job),
        prompt=safe_prompt(locale, job.prompt, 1500),
    )


def _pending_line(locale: str, job: Job, wait: float, channel_id: int | None) -> str:
    """One waiting request: who, where, when it expires, and its approval message."""
    if job.approval_message_id and channel_id:
        url = jump_url(job.guild_id, channel_id, job.approval_message_id)
        where = render(locale, "admin.pending.request_link", url=url)
    else:  # the post failed (channel gone, no permission): it expires unless approval is off
        where = render(locale, "admin.pending.not_posted")
    line = render(
        locale,
        "admin.pending.line",
        id=job.id,
        user=f"<@{job.user_id}>",
        channel=f"<#{job.channel_id}>",
        model=job.model,
        asked=ts(job.created_at),
        expires=ts(job.created_at + wait),
        where=where,
    )
    return f"{line}\n  > {safe_prompt(locale, job.prompt, 120)}"


def _model_lines(locale: str, rows: list[dict[str, Any]]) -> str:
    """Per-model stats lines."""
    lines = [
        render(
            locale,
            "admin.stats.model_line",
            model=r["model"],
            jobs=r["jobs"],
            credits=r["credits"] or 0,
            failures=r["failures"] or 0,
            refused=r["refused"] or 0,
        )
        for r in rows
    ]
    return short("\n".join(lines) or render(locale, "admin.stats.no_jobs"), 1024)


def _user_lines(locale: str, rows: list[dict[str, Any]]) -> str:
    """Top users lines."""
    lines = [
        render(
            locale,
            "admin.stats.user_line",
            user=f"<@{r['user_id']}>",
            jobs=r["jobs"],
            credits=r["credits"] or 0,
            refused=r["refused"] or 0,
        )
        for r in rows
    ]
    return short("\n".join(lines) or render(locale, "admin.stats.nobody"), 1024)


async def setup(bot: VideoBot) -> None:
    """Extension entry point: add the cog (VideoBot.wire connects it to Delivery)."""
    await bot.add_cog(Admin(bot))
    bot.add_dynamic_items(ApprovalButton)
