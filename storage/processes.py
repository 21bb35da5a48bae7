"""Bot processes sharing one PostgreSQL database: each registers itself, renews, leaves."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from storage import sql
from storage.db import Conn, Database, lock_scope

REGISTRY_KEY = "processes"  # the advisory lock serialising starts (PostgreSQL)


@dataclass(frozen=True)
class ProcessInfo:
    """One registered process."""

    id: str
    host: str
    pid: int
    shard_ids: tuple[int, ...]  # the Discord shards it serves (empty: not sharded)
    shard_count: int | None  # its SHARD_COUNT (None: unsharded)
    started_at: float
    heartbeat_at: float

    @classmethod
    def from_row(cls, r: Any) -> ProcessInfo:
        """A row of PROCESS_COLUMNS."""
        return cls(r[0], r[1], r[2], tuple(json.loads(r[3])), r[4], r[5], r[6])


# Sees the other live processes before this one registers; raises to refuse the start.
Admit = Callable[[list[ProcessInfo]], None]


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
        *,
        shard_count: int | None = None,
        admit: tuple[Admit, float] | None = None,
    ) -> None:
        """Insert (or refresh) this process's row.

        `admit`: (check, live_after): the check sees every other process with a heartbeat since
        `live_after` first, in the same transaction under one lock, so two processes starting
        together are checked one after the other; what it raises refuses the registration.
        """
        now = time.time() if now is None else now
        row = (process_id, host, pid, json.dumps(sorted(shard_ids)), shard_count, now, now)

        def register(conn: Conn) -> None:
            if admit is not None:
                check, live_after = admit
                lock_scope(conn, REGISTRY_KEY)
                live = conn.execute(sql.SELECT_LIVE_PROCESSES, (live_after, process_id))
                check([ProcessInfo.from_row(r) for r in live.fetchall()])
            conn.execute(sql.UPSERT_PROCESS, row)

        await self.db.run(register)

    async def heartbeat(self, process_id: str, now: float | None = None) -> bool:
        """Renew the row; False if it is gone (removed as stale: register again)."""
        now = time.time() if now is None else now
        return await self.db.execute(sql.HEARTBEAT_PROCESS, (now, process_id)) == 1

    async def unregister(self, process_id: str) -> None:
        """Remove the row (a clean stop)."""
        await self.db.execute(sql.DELETE_PROCESS, (process_id,))

    async def all(self) -> list[ProcessInfo]:
        """Every registered process, oldest first."""
        return [ProcessInfo.from_row(r) for r in await self.db.fetchall(sql.SELECT_PROCESSES)]

    async def forget_stale(self, older_than: float) -> int:
        """Remove processes whose last heartbeat is before `older_than` (killed ones)."""
        return await self.db.execute(sql.DELETE_STALE_PROCESSES, (older_than,))
