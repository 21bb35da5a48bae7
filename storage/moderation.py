"""Moderators' rules per guild: settings, costs, bans, blocklist, channels, models, audit, stats."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from storage import sql
from storage.credits import day_key
from storage.db import Conn, Database, lock_scope

# The only guild_settings columns a moderator command may set (UPDATE_GUILD_SETTING's %s).
SETTING_COLUMNS = frozenset(
    {"daily_credits", "daily_cap", "approval_channel_id", "alerts_channel_id", "approval_hours"}
)


@dataclass(frozen=True)
class GuildSettings:
    """A guild's own settings (None: the operator's default)."""

    daily_credits: int | None = None
    daily_cap: int | None = None
    approval_channel_id: int | None = None
    alerts_channel_id: int | None = None
    approval_hours: int | None = None  # how long a request waits for a decision


@dataclass(frozen=True)
class CostRule:
    """A model's cost, optionally only when an option has a value."""

    model: str
    option: str
    value: str
    cost: int


@dataclass(frozen=True)
class AuditEntry:
    """One row of the audit log."""

    actor_id: int | None
    action: str
    target_id: int | None
    detail: str
    created_at: float


class ModerationStore:
    """All moderation state lives here; every change is audited by the caller's action name."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def settings(self, guild_id: int) -> GuildSettings:
        """A guild's settings."""
        row = await self.db.fetchone(sql.SELECT_GUILD_SETTINGS, (guild_id,))
        return GuildSettings(**dict(row)) if row is not None else GuildSettings()

    async def set_setting(self, guild_id: int, column: str, value: int | None) -> None:
        """Set one guild setting (column from the allow-list only)."""
        if column not in SETTING_COLUMNS:
            raise ValueError(f"not a guild setting: {column}")

        query = sql.UPDATE_GUILD_SETTING % column

        def update(conn: Conn) -> None:
            conn.execute(sql.ENSURE_GUILD_SETTINGS, (guild_id,))
            conn.execute(query, (value, guild_id))

        await self.db.run(update)

    async def guilds_with_alerts(self) -> list[tuple[int, int]]:
        """(guild, channel) pairs where moderators want alerts."""
        return [(r[0], r[1]) for r in await self.db.fetchall(sql.SELECT_GUILDS_WITH_ALERTS)]

    async def set_user_allowance(self, guild_id: int, user_id: int, credits: int) -> None:
        """One member's own daily allowance."""
        await self.db.execute(sql.UPSERT_USER_QUOTA, (guild_id, user_id, credits))

    async def grant(
        self, guild_id: int, user_id: int, amount: int, actor_id: int, reason: str
    ) -> None:
        """Extra credits for today, with a ledger row."""
        now = time.time()
        day = day_key(now)
        params = {"amount": amount, "guild_id": guild_id, "user_id": user_id, "day": day}
        ledger = (guild_id, user_id, day, amount, reason, None, actor_id, now)

        def give(conn: Conn) -> None:
            conn.execute(sql.ENSURE_USAGE_ROW, (guild_id, user_id, day))
            conn.execute(sql.GRANT_CREDITS, params)
            conn.execute(sql.INSERT_LEDGER, ledger)

        await self.db.run(give)

    async def reset(self, guild_id: int, user_id: int, actor_id: int) -> int:
        """Give back today's spent credits (not those of unfinished jobs, which refund themselves)."""
        now = time.time()
        return await self.db.run(lambda conn: _reset(conn, guild_id, user_id, actor_id, now))

    # --- costs ----------------------------------------------------------------------------

    async def costs(self, guild_id: int) -> list[CostRule]:
        """The guild's cost rules."""
        return [CostRule(*r) for r in await self.db.fetchall(sql.SELECT_COSTS, (guild_id,))]

    async def set_cost(self, guild_id: int, rule: CostRule) -> None:
        """Add or change a cost rule."""
        params = (guild_id, rule.model, rule.option, rule.value, rule.cost)
        await self.db.execute(sql.UPSERT_COST, params)

    # --- bans, blocklist, channels, models ------------------------------------------------

    async def ban_reason(self, guild_id: int, user_id: int) -> str | None:
        """Why a user is banned, or None."""
        row = await self.db.fetchone(sql.SELECT_BAN, (guild_id, user_id))
        return None if row is None else row[0]

    async def ban(self, guild_id: int, user_id: int, reason: str, actor_id: int) -> None:
        """Ban a member from making videos."""
        await self.db.execute(sql.UPSERT_BAN, (guild_id, user_id, reason, actor_id, time.time()))

    async def unban(self, guild_id: int, user_id: int) -> bool:
        """Lift a ban; False if there was none."""
        return await self.db.execute(sql.DELETE_BAN, (guild_id, user_id)) == 1

    async def blocklist(self, guild_id: int) -> list[tuple[str, bool]]:
        """(pattern, is_regex) pairs."""
        return [
            (r[0], bool(r[1])) for r in await self.db.fetchall(sql.SELECT_BLOCKLIST, (guild_id,))
        ]

    async def add_block(self, guild_id: int, pattern: str, is_regex: bool, actor_id: int) -> None:
        """Add a word or regular expression."""
        await self.db.execute(
            sql.INSERT_BLOCK, (guild_id, pattern, int(is_regex), actor_id, time.time())
        )

    async def remove_block(self, guild_id: int, pattern: str) -> bool:
        """Remove one; False if absent."""
        return await self.db.execute(sql.DELETE_BLOCK, (guild_id, pattern)) == 1

    async def hotwords(self, guild_id: int) -> list[str]:
        """The server's speech-recognition hotwords, oldest first."""
        return [r[0] for r in await self.db.fetchall(sql.SELECT_HOTWORDS, (guild_id,))]

    async def add_hotword(self, guild_id: int, word: str, actor_id: int) -> bool:
        """Add a hotword; False if it was there already."""
        params = (guild_id, word, actor_id, time.time())
        return await self.db.execute(sql.INSERT_HOTWORD, params) == 1

    async def remove_hotword(self, guild_id: int, word: str) -> bool:
        """Remove a hotword; False if absent."""
        return await self.db.execute(sql.DELETE_HOTWORD, (guild_id, word)) == 1

    async def channel_rules(self, guild_id: int) -> dict[int, bool]:
        """channel → allowed."""
        rows = await self.db.fetchall(sql.SELECT_CHANNEL_RULES, (guild_id,))
        return {r[0]: bool(r[1]) for r in rows}

    async def set_channel(self, guild_id: int, channel_id: int, allowed: bool | None) -> None:
        """Allow, deny, or (None) forget a channel."""
        if allowed is None:
            await self.db.execute(sql.DELETE_CHANNEL_RULE, (guild_id, channel_id))
        else:
            await self.db.execute(sql.UPSERT_CHANNEL_RULE, (guild_id, channel_id, int(allowed)))

    async def model_rules(self, guild_id: int) -> dict[str, bool]:
        """model → enabled (absent: enabled)."""
        return {
            r[0]: bool(r[1]) for r in await self.db.fetchall(sql.SELECT_MODEL_RULES, (guild_id,))
        }

    async def set_model(self, guild_id: int, model: str, enabled: bool) -> None:
        """Enable or disable a model here."""
        await self.db.execute(sql.UPSERT_MODEL_RULE, (guild_id, model, int(enabled)))

    # --- audit and stats ------------------------------------------------------------------

    async def audit(
        self,
        guild_id: int,
        actor_id: int | None,
        action: str,
        detail: str,
        target_id: int | None = None,
    ) -> None:
        """Record a moderator action or a refusal."""
        params = (guild_id, actor_id, action, target_id, detail[:500], time.time())
        await self.db.execute(sql.INSERT_AUDIT, params)

    async def recent_audit(self, guild_id: int, limit: int = 15) -> list[AuditEntry]:
        """Newest audit entries first."""
        return [AuditEntry(*r) for r in await self.db.fetchall(sql.SELECT_AUDIT, (guild_id, limit))]

    async def stats(
        self, guild_id: int, since: float, top: int = 5
    ) -> dict[str, list[dict[str, Any]]]:
        """Jobs, credits, failures and refusals per model and top users since a time."""
        models = await self.db.fetchall(sql.STATS_BY_MODEL, (guild_id, since))
        users = await self.db.fetchall(sql.STATS_TOP_USERS, (guild_id, since, top))
        return {"models": [dict(r) for r in models], "users": [dict(r) for r in users]}


def _reset(conn: Conn, guild_id: int, user_id: int, actor_id: int, now: float) -> int:
    """Grant back today's spent credits (one transaction; see ModerationStore.reset)."""
    day = day_key(now)
    # Read-then-write: no admission of this member may change `used` in between (PostgreSQL).
    lock_scope(conn, f"admission:user:{user_id}")
    usage = conn.execute(sql.SELECT_USAGE, (guild_id, user_id, day)).fetchone()
    pending = conn.execute(sql.SUM_UNFINISHED_COST, (guild_id, user_id, day)).fetchone()[0]
    used, granted = (usage[0], usage[1]) if usage else (0, 0)
    back = max(0, used - granted - pending)
    if back:
        params = {"amount": back, "guild_id": guild_id, "user_id": user_id, "day": day}
        conn.execute(sql.GRANT_CREDITS, params)
        conn.execute(
            sql.INSERT_LEDGER, (guild_id, user_id, day, back, "reset", None, actor_id, now)
        )
    return back
