"""Private answers to members, and the one error boundary every interaction shares."""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord import app_commands

from bot.errors import BotError

log = logging.getLogger(__name__)

GENERIC_ERROR = (
    "Something went wrong on the bot's side. It has been logged; please try again later."
)


async def say(interaction: discord.Interaction, text: str, **kwargs: Any) -> None:
    """Answer privately, whether or not the interaction was acknowledged already."""
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
        text = original.user_message
    elif isinstance(original, app_commands.CheckFailure):
        text = str(original) or "You are not allowed to use this here."
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
