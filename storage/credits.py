"""Credit balances per guild, user and UTC day."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from storage import sql
from storage.db import Database


def day_key(ts: float) -> str:
    """The UTC day a timestamp falls in, as YYYY-MM-DD."""
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%Y-%m-%d")


def next_reset(ts: float) -> float:
    """The next 00:00 UTC after a timestamp."""
    day = dt.datetime.fromtimestamp(ts, tz=dt.UTC).date() + dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp()


@dataclass(frozen=True)
class Balance:
    """A user's credits for one day."""

    allowance: int
    granted: int
    used: int

    @property
    def left(self) -> int:
        """Credits that can still be spent today."""
        return max(0, self.allowance + self.granted - self.used)


class Credits:
    """Reads allowances and balances; reservations happen with the job insert (JobStore)."""

    def __init__(self, db: Database, default_allowance: int) -> None:
        self.db = db
        self.default_allowance = default_allowance

    async def allowance(self, guild_id: int, user_id: int) -> int:
        """The user's own allowance, else the guild's default, else the operator's."""
        row = await self.db.fetchone(sql.SELECT_USER_QUOTA, (guild_id, user_id))
        if row is not None:
            return row[0]
        row = await self.db.fetchone(sql.SELECT_GUILD_SETTINGS, (guild_id,))
        if row is not None and row["daily_credits"] is not None:
            return row["daily_credits"]
        return self.default_allowance

    async def balance(self, guild_id: int, user_id: int, day: str) -> Balance:
        """Allowance, grants and use of one day."""
        allowance = await self.allowance(guild_id, user_id)
        row = await self.db.fetchone(sql.SELECT_USAGE, (guild_id, user_id, day))
        used, granted = (row[0], row[1]) if row else (0, 0)
        return Balance(allowance, granted, used)
