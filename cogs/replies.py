"""Private answers to members, and the one error boundary every interaction shares."""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord import app_commands

from bot.errors import BotError
from bot.i18n import Msg, locale_of, render

log = logging.getLogger(__name__)

GENERIC_ERROR = "error.generic"


class NotPermitted(app_commands.CheckFailure):
    """A command check's refusal, worded by a catalog message."""

    def __init__(self, text: Msg) -> None:
        super().__init__(text.key)
        self.text = text


def member_locale(interaction: discord.Interaction) -> str:
    """The language of a reply to this member: their Discord client's (else en-US)."""
    return locale_of(interaction.locale)


def tr(interaction: discord.Interaction, message: Msg | str, **params: Any) -> str:
    """A catalog message in the member's language."""
    return render(member_locale(interaction), message, **params)


async def say(interaction: discord.Interaction, message: Msg | str, /, **params: Any) -> None:
    """Answer privately in the member's language (catalog key or Msg), acknowledged or not."""
    await say_text(interaction, tr(interaction, message, **params))


async def say_text(interaction: discord.Interaction, text: str, **kwargs: Any) -> None:
    """Answer privately with text already in the member's language."""
    kwargs.setdefault("ephemeral", True)
    kwargs.setdefault("allowed_mentions", discord.AllowedMentions.none())
    if interaction.response.is_done():
        await interaction.followup.send(text, **kwargs)
    else:
        await interaction.response.send_message(text, **kwargs)


async def report_error(interaction: discord.Interaction, error: BaseException) -> None:
    """Map domain errors to their user message; log the rest with what the user was doing."""
    original = getattr(error, "original", error)
    if isinstance(original, BotError):
        text: Msg | str = original.text
    elif isinstance(original, NotPermitted):
        text = original.text
    elif isinstance(original, app_commands.CheckFailure):  # discord.py's own checks
        text = "error.not_allowed_here"
    else:
        command = (
            interaction.command.qualified_name if interaction.command else interaction.type.name
        )
        log.error("interaction %s (%s) failed", interaction.id, command, exc_info=original)
        text = GENERIC_ERROR
    try:
        await say(interaction, text)
    except discord.HTTPException:
        log.warning("could not tell user about error of interaction %s", interaction.id)
