"""Buttons on a result that survive restarts: the job id lives in the custom_id."""

from __future__ import annotations

import re
from typing import Any

import discord

from bot.i18n import DEFAULT_LOCALE, render
from bot.models import Mode
from cogs.replies import report_error
from storage.jobs import Job
from storage.states import CANCELLABLE

# action → (label's catalog key, emoji, style)
ACTIONS: dict[str, tuple[str, str, discord.ButtonStyle]] = {
    "reroll": ("button.reroll", "🎲", discord.ButtonStyle.primary),
    "extend": ("button.extend", "➡️", discord.ButtonStyle.secondary),
    "details": ("button.details", "ℹ️", discord.ButtonStyle.secondary),
    "delete": ("button.delete", "🗑️", discord.ButtonStyle.danger),
}


class JobButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"video:(?P<action>[a-z]+):(?P<job>[0-9]+)",
):
    """One action on one job; the Video cog does the work."""

    def __init__(self, action: str, job_id: int, locale: str = DEFAULT_LOCALE) -> None:
        key, emoji, style = ACTIONS[action]
        label = render(locale, key)
        super().__init__(
            discord.ui.Button(
                label=label, emoji=emoji, style=style, custom_id=f"video:{action}:{job_id}"
            )
        )
        self.action = action
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button[Any], match: re.Match[str]
    ) -> JobButton:
        """Rebuild the button from a click (after any restart)."""
        action = match["action"]
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action}")
        return cls(action, int(match["job"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        """Hand the click to the Video cog, inside the same error boundary as commands."""
        cog = interaction.client.get_cog("Video")  # type: ignore[attr-defined]
        try:
            await cog.on_job_button(interaction, self.action, self.job_id)
        except Exception as exc:  # the boundary: every failure gets a message or a log line
            await report_error(interaction, exc)


# A still's buttons: Animate (image-to-video from it), Re-roll, Details.
STILL_ACTIONS: dict[str, tuple[str, str, discord.ButtonStyle]] = {
    "animate": ("button.animate", "🎬", discord.ButtonStyle.primary),
    "reroll": ("button.reroll", "🎲", discord.ButtonStyle.secondary),
    "details": ("button.details", "ℹ️", discord.ButtonStyle.secondary),
}


class StillButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"still:(?P<action>[a-z]+):(?P<job>[0-9]+)",
):
    """One action on one still; the Stills cog does the work."""

    def __init__(self, action: str, job_id: int, locale: str = DEFAULT_LOCALE) -> None:
        key, emoji, style = STILL_ACTIONS[action]
        label = render(locale, key)
        super().__init__(
            discord.ui.Button(
                label=label, emoji=emoji, style=style, custom_id=f"still:{action}:{job_id}"
            )
        )
        self.action = action
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button[Any], match: re.Match[str]
    ) -> StillButton:
        """Rebuild the button from a click (after any restart)."""
        action = match["action"]
        if action not in STILL_ACTIONS:
            raise ValueError(f"unknown action {action}")
        return cls(action, int(match["job"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        """Hand the click to the Stills cog, inside the same error boundary as commands."""
        cog = interaction.client.get_cog("Stills")  # type: ignore[attr-defined]
        try:
            await cog.on_still_button(interaction, self.action, self.job_id)
        except Exception as exc:  # the boundary: every failure gets a message or a log line
            await report_error(interaction, exc)


def result_view(job: Job, locale: str = DEFAULT_LOCALE) -> discord.ui.View:
    """The buttons under a delivered result: four for a video, three for a still."""
    view = discord.ui.View(timeout=None)
    if job.mode == Mode.STILL:
        for action in STILL_ACTIONS:
            view.add_item(StillButton(action, job.id, locale))
        return view
    for action in ACTIONS:
        view.add_item(JobButton(action, job.id, locale))
    return view


class _Cancel:
    """What both Cancel buttons share: a label, the job id in the custom_id, a cog handler."""

    LABEL = "button.cancel"
    PREFIX = "job:cancel"
    HANDLER = "cancel_job"

    def __init__(self, job_id: int, locale: str = DEFAULT_LOCALE) -> None:
        label = render(locale, self.LABEL, id=job_id)
        super().__init__(  # type: ignore[call-arg]
            discord.ui.Button(
                label=label,
                emoji="✖️",
                style=discord.ButtonStyle.secondary,
                custom_id=f"{self.PREFIX}:{job_id}",
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button[Any], match: re.Match[str]
    ) -> Any:
        """Rebuild the button from a click (after any restart)."""
        return cls(int(match["job"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        """Hand the click to the Video cog, inside the same error boundary as commands."""
        cog = interaction.client.get_cog("Video")  # type: ignore[attr-defined]
        try:
            await getattr(cog, self.HANDLER)(interaction, self.job_id)
        except Exception as exc:  # the boundary: every failure gets a message or a log line
            await report_error(interaction, exc)


class CancelButton(
    _Cancel,
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"job:cancel:(?P<job>[0-9]+)",
):
    """Cancel on a status message while the job waits (requester only; survives restarts)."""


def status_view(job: Job, locale: str = DEFAULT_LOCALE) -> discord.ui.View | None:
    """Cancel under a status message while the job has not reached the provider; else none."""
    if job.state not in CANCELLABLE:
        return None
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(job.id, locale))
    return view


class ListedCancelButton(
    _Cancel,
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"jobs:cancel:(?P<job>[0-9]+)",
):
    """Cancel #N under a member's /jobs list (only the requester's cancel counts; survives
    restarts). The Video cog cancels and shows the list again."""

    LABEL = "button.cancel_listed"
    PREFIX = "jobs:cancel"
    HANDLER = "cancel_listed"


def jobs_view(jobs: list[Job], locale: str = DEFAULT_LOCALE) -> discord.ui.View | None:
    """A Cancel button per listed job that has not reached the provider; None if there is none."""
    waiting = [job for job in jobs if job.state in CANCELLABLE][:25]
    if not waiting:
        return None
    view = discord.ui.View(timeout=None)
    for job in waiting:
        view.add_item(ListedCancelButton(job.id, locale))
    return view
