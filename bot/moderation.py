"""What moderators can change and read: the port the Admin cog talks to (ModerationStore fills it)."""

from __future__ import annotations

from typing import Any, Protocol

from storage.moderation import AuditEntry, CostRule, GuildSettings


class ModeratorActions(Protocol):
    """The moderators' settings, rules and records of one process."""

    async def settings(self, guild_id: int) -> GuildSettings:
        """A guild's settings."""
        ...

    async def set_setting(self, guild_id: int, column: str, value: int | None) -> None:
        """Set one guild setting (column from the allow-list only)."""
        ...

    async def guilds_with_alerts(self) -> list[tuple[int, int]]:
        """(guild, channel) pairs where moderators want alerts."""
        ...

    async def set_user_allowance(self, guild_id: int, user_id: int, credits: int) -> None:
        """One member's own daily allowance."""
        ...

    async def grant(
        self, guild_id: int, user_id: int, amount: int, actor_id: int, reason: str
    ) -> None:
        """Extra credits for today, with a ledger row."""
        ...

    async def reset(self, guild_id: int, user_id: int, actor_id: int) -> int:
        """Give back today's spent credits (not those of unfinished jobs, which refund themselves)."""
        ...

    async def costs(self, guild_id: int) -> list[CostRule]:
        """The guild's cost rules."""
        ...

    async def set_cost(self, guild_id: int, rule: CostRule) -> None:
        """Add or change a cost rule."""
        ...

    async def ban(self, guild_id: int, user_id: int, reason: str, actor_id: int) -> None:
        """Ban a member from making videos."""
        ...

    async def unban(self, guild_id: int, user_id: int) -> bool:
        """Lift a ban; False if there was none."""
        ...

    async def blocklist(self, guild_id: int) -> list[tuple[str, bool]]:
        """(pattern, is_regex) pairs."""
        ...

    async def add_block(self, guild_id: int, pattern: str, is_regex: bool, actor_id: int) -> None:
        """Add a word or regular expression."""
        ...

    async def remove_block(self, guild_id: int, pattern: str) -> bool:
        """Remove one; False if absent."""
        ...

    async def hotwords(self, guild_id: int) -> list[str]:
        """The server's speech-recognition hotwords, oldest first."""
        ...

    async def add_hotword(self, guild_id: int, word: str, actor_id: int) -> bool:
        """Add a hotword; False if it was there already."""
        ...

    async def remove_hotword(self, guild_id: int, word: str) -> bool:
        """Remove a hotword; False if absent."""
        ...

    async def channel_rules(self, guild_id: int) -> dict[int, bool]:
        """channel → allowed."""
        ...

    async def set_channel(self, guild_id: int, channel_id: int, allowed: bool | None) -> None:
        """Allow, deny, or (None) forget a channel."""
        ...

    async def model_rules(self, guild_id: int) -> dict[str, bool]:
        """model → enabled (absent: enabled)."""
        ...

    async def set_model(self, guild_id: int, model: str, enabled: bool) -> None:
        """Enable or disable a model here."""
        ...

    async def audit(
        self,
        guild_id: int,
        actor_id: int | None,
        action: str,
        detail: str,
        target_id: int | None = None,
    ) -> None:
        """Record a moderator action or a refusal."""
        ...

    async def recent_audit(self, guild_id: int, limit: int = 15) -> list[AuditEntry]:
        """Newest audit entries first."""
        ...

    async def stats(
        self, guild_id: int, since: float, top: int = 5
    ) -> dict[str, list[dict[str, Any]]]:
        """Jobs, credits, failures and refusals per model and top users since a time."""
        ...
