"""Members' own defaults per server: a mode's model, an option, `private` — one row per name."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

from storage import sql
from storage.db import Conn, Database


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
        gone = [(guild_id, user_id, name) for name in forget]
        rows = [(guild_id, user_id, n, json.dumps(v), now) for n, v in values.items()]

        def write(conn: Conn) -> None:
            if gone:
                conn.executemany(sql.DELETE_MEMBER_DEFAULT, gone)
            if rows:
                conn.executemany(sql.UPSERT_MEMBER_DEFAULT, rows)

        await self.db.run(write)
