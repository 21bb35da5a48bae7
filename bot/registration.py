"""On PostgreSQL each bot process registers itself (id, host, pid, shards) and keeps a heartbeat.

SQLite needs none of this: one process per file, held by storage.db.ProcessLock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Sequence

from storage.db import Database
from storage.processes import ProcessRegistry

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15.0
STALE_AFTER = 4 * HEARTBEAT_SECONDS  # a process silent this long is taken for dead


def new_process_id() -> str:
    """host:pid:random, unique even when a pid is reused after a restart."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@contextlib.asynccontextmanager
async def registered(
    db: Database, shard_ids: Sequence[int] = (), every: float = HEARTBEAT_SECONDS
) -> AsyncIterator[str | None]:
    """Register for the block's duration (PostgreSQL only); yields the process id or None."""
    if db.backend != "postgresql":
        yield None
        return
    registry, process_id = ProcessRegistry(db), new_process_id()
    await registry.register(process_id, socket.gethostname(), os.getpid(), shard_ids)
    log.info("registered as process %s", process_id)
    beat = asyncio.create_task(_heartbeat(registry, process_id, shard_ids, every))
    try:
        yield process_id
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat
        await registry.unregister(process_id)


async def _heartbeat(
    registry: ProcessRegistry, process_id: str, shard_ids: Sequence[int], every: float
) -> None:
    """Renew the row; register again if it was removed; a failed beat is retried next time."""
    while True:
        await asyncio.sleep(every)
        try:
            if not await registry.heartbeat(process_id):
                await registry.register(process_id, socket.gethostname(), os.getpid(), shard_ids)
            await registry.forget_stale(time.time() - STALE_AFTER)
        except Exception:  # the database may be briefly away; the next beat tries again
            log.warning("process heartbeat failed", exc_info=True)
