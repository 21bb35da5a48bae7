"""Bot processes sharing one PostgreSQL database: each registers itself, renews, leaves."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

from storage import sql
from storage.db import Database


@dataclass(frozen=True)
class ProcessInfo:
    """One registered process."""

    id: str
    host: str
    pid: int
    shard_ids: tuple[int, ...]  # the Discord shards it serves (empty: not sharded)
    started_at: float
    heartbeat_at: float


class ProcessRegistry:
    """The `processes` table: registration at start, heartbeats, removal at a clean stop."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def register(
        self,
        process_id: str,
        host: str,
        pid: int,
        shard_ids: Sequence[int] = (),
        now: float | None = None,
    ) -> None:
        """Insert (or refresh) this process's row."""
        now = time.time() if now is None else now
        shards = json.dumps(sorted(shard_ids))
        await self.db.execute(sql.UPSERT_PROCESS, (process_id, host, pid, shards, now, now))

    async def heartbeat(self, process_id: str, now: float | None = None) -> bool:
        """Renew the row; False if it is gone (removed as stale: register again)."""
        now = time.time() if now is None else now
        return await self.db.execute(sql.HEARTBEAT_PROCESS, (now, process_id)) == 1

    async def unregister(self, process_id: str) -> None:
        """Remove the row (a clean stop)."""
        await self.db.execute(sql.DELETE_PROCESS, (process_id,))

    async def all(self) -> list[ProcessInfo]:
        """Every registered process, oldest first."""
        rows = await self.db.fetchall(sql.SELECT_PROCESSES)
        return [ProcessInfo(r[0], r[1], r[2], tuple(json.loads(r[3])), r[4], r[5]) for r in rows]

    async def forget_stale(self, older_than: float) -> int:
        """Remove processes whose last heartbeat is before `older_than` (killed ones)."""
        return await self.db.execute(sql.DELETE_STALE_PROCESSES, (older_than,))
