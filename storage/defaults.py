"""Members' own defaults per server: a mode's model, an option, `private` — one row per name."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

from storage import sql
from storage.db import Database


class DefaultsStore:
    """Reads and writes `member_defaults`; which names and values are valid is the engine's."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, guild_id: int, user_id: int) -> dict[str, Any]:
        """A member's defaults on a server, name → value (only those set)."""
        rows = await self.db.fetchall(sql.SELECT_MEMBER_DEFAULTS, (guild_id, user_id))
        return {row[0]: json.loads(row[1]) for row in rows}

    async def update(
        self,
        guild_id: int,
        user_id: int,
        values: Mapping[str, Any],
        forget: Iterable[str] = (),
    ) -> None:
        """Forget some defaults, then store others, in one transaction (all or none)."""
        now = time.time()
        async with self.db.transaction() as conn:
            for name in forget:
                await conn.execute(sql.DELETE_MEMBER_DEFAULT, (guild_id, user_id, name))
            for name, value in values.items():
                params = (guild_id, user_id, name, json.dumps(value), now)
                await conn.execute(sql.UPSERT_MEMBER_DEFAULT, params)
