"""On PostgreSQL each bot process registers itself (id, host, pid, shards) and keeps a heartbeat.

At registration the shards are checked against the live processes (a heartbeat within
STALE_AFTER): every sharded process needs the same SHARD_COUNT, and each shard one process.
Unsharded processes may run side by side (a restart without a gap); a stale row never blocks.
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

from bot.errors import ShardsTaken
from storage.db import Database
from storage.processes import ProcessInfo, ProcessRegistry

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15.0
STALE_AFTER = 4 * HEARTBEAT_SECONDS  # a process silent this long is taken for dead


def new_process_id() -> str:
    """host:pid:random, unique even when a pid is reused after a restart."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@contextlib.asynccontextmanager
async def registered(
    db: Database,
    shard_ids: Sequence[int] = (),
    shard_count: int | None = None,
    every: float = HEARTBEAT_SECONDS,
) -> AsyncIterator[str | None]:
    """Register for the block's duration (PostgreSQL only); yields the process id or None.

    Raises ShardsTaken, registering nothing, when the shards clash with a live process's.
    """
    if db.backend != "postgresql":
        yield None
        return
    registry, process_id = ProcessRegistry(db), new_process_id()
    check = (lambda live: check_shards(shard_ids, shard_count, live), time.time() - STALE_AFTER)
    await registry.register(
        process_id, socket.gethostname(), os.getpid(), shard_ids, shard_count=shard_count,
        admit=check,
    )  # fmt: skip
    log.info("registered as process %s", process_id)
    beat = asyncio.create_task(_heartbeat(registry, process_id, shard_ids, shard_count, every))
    try:
        yield process_id
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat
        await registry.unregister(process_id)


def check_shards(ids: Sequence[int], count: int | None, live: list[ProcessInfo]) -> None:
    """Refuse (ShardsTaken) shards that clash with a live process's; the first clash is named."""
    for other in live:
        who = f"process {other.id} (pid {other.pid} on {other.host})"
        if other.shard_count != count:
            raise ShardsTaken(
                f"this process has SHARD_COUNT={_count(count)} but {who} runs "
                f"SHARD_COUNT={_count(other.shard_count)}; every process needs the same "
                f"SHARD_COUNT: set SHARD_COUNT={_count(other.shard_count)}, or stop every "
                "process to change it"
            )
        overlap = sorted(set(ids) & set(other.shard_ids))
        if overlap:
            raise ShardsTaken(
                f"shard {_listed(overlap)} of SHARD_IDS={_listed(ids)} already runs in {who}; "
                f"set SHARD_IDS to shards no live process runs ({_free(count, live)}), or stop "
                "that process first"
            )


def _count(count: int | None) -> str:
    """A SHARD_COUNT as the operator writes it ('unset' for an unsharded process)."""
    return "unset" if count is None else str(count)


def _listed(ids: Sequence[int]) -> str:
    """Shard ids as a comma list."""
    return ",".join(map(str, sorted(ids)))


def _free(count: int | None, live: list[ProcessInfo]) -> str:
    """The shards no live process runs: 'free: 2,3' or 'none is free'."""
    taken = {i for other in live for i in other.shard_ids}
    free = [i for i in range(count or 0) if i not in taken]
    return f"free: {_listed(free)}" if free else "none is free"


async def _heartbeat(
    registry: ProcessRegistry,
    process_id: str,
    shard_ids: Sequence[int],
    shard_count: int | None,
    every: float,
) -> None:
    """Renew the row; register again if it was removed; a failed beat is retried next time."""
    while True:
        await asyncio.sleep(every)
        try:
            if not await registry.heartbeat(process_id):
                host, pid = socket.gethostname(), os.getpid()  # checked once, at the start
                await registry.register(process_id, host, pid, shard_ids, shard_count=shard_count)
            await registry.forget_stale(time.time() - STALE_AFTER)
        except Exception:  # the database may be briefly away; the next beat tries again
            log.warning("process heartbeat failed", exc_info=True)
