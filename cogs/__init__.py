"""Thin Discord adapters over the engine."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.discord_app import VideoBot


async def load_all(bot: VideoBot) -> None:
    """Add every cog and the persistent buttons (called from setup_hook)."""
    from cogs.admin import Admin, ApprovalButton
    from cogs.buttons import JobButton
    from cogs.delivery import Delivery
    from cogs.video import Video

    delivery = Delivery(bot)
    await bot.add_cog(delivery)
    await bot.add_cog(Video(bot, delivery))
    await bot.add_cog(Admin(bot))
    bot.add_dynamic_items(JobButton, ApprovalButton)
    bot.resources.engine.listener = delivery
