"""The engine's hold on the jobs it works on, so several processes can share one database.

`LeaseKeeper` renews this process's leases while it runs, takes over the jobs of a process whose
leases ran out (the engine decides what a taken-over job needs), gives its own up at a clean
stop, and turns the database's notices into wake-ups. The claims themselves are storage's
(storage/leases.py): one guarded transaction each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable

from bot.tasks import spawn
from storage.leases import TAKEOVER_BATCH, Claim, LeaseStore
from storage.notify import Notice
from storage.rows import Job

log = logging.getLogger(__name__)

TakenOver = Callable[[Job], Awaitable[None]]


def process_name() -> str:
    """This process's lease owner: host and pid for the operator, a random part for uniqueness."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class LeaseKeeper:
    """Renews, takes over and releases one process's leases; relays the database's notices."""

    def __init__(self, store: LeaseStore, on_taken: TakenOver, wake: Callable[[], None]) -> None:
        self.store = store
        self._on_taken = on_taken  # what the engine does with a job it took over
        self._wake = wake  # the scheduler's wake-up (work queued, a slot freed)
        self._soon = asyncio.Event()
        # One claim at a time per process, first come first served: submits are spawned in the
        # fair order, and claims racing on the database's threads would lose it.
        self._claiming = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.made_here: set[int] = set()  # jobs this process finished (nobody posted them yet)

    @property
    def owner(self) -> str:
        """This process's name in `lease_owner`."""
        return self.store.owner

    async def start(self, *, sole_process: bool = False) -> None:
        """Take over what is free now (`sole_process`: every other lease is dead), then keep the
        leases in the background and listen for notices."""
        self.store.db.notifier.subscribe(self._notice)
        await self.sweep(every=sole_process)
        self._task = spawn(self._keep(), name="engine-leases")

    async def close(self, *, release: bool = True) -> None:
        """Stop renewing and give every lease up: other processes take the jobs over at once."""
        self.store.db.notifier.unsubscribe(self._notice)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if not release:
            return
        with contextlib.suppress(Exception):  # not given up: they run out instead
            released = await self.store.release()
            log.info("gave up %d lease(s)", released)

    async def claim_submit(self, job_id: int, limit: int) -> bool:
        """queued → submitting under this process's lease, within the shared provider limit."""
        async with self._claiming:
            claim = await self.store.claim_submit(job_id, limit)
        if claim is Claim.FULL:  # another process filled the last slot: a freed one wakes us
            log.debug("job %d: every provider slot is taken; it stays queued", job_id)
        return claim is Claim.CLAIMED

    async def claim_delivery(self, job_id: int) -> bool:
        """Hold a finished job for delivery (False: another live process holds it)."""
        return await self.store.claim_delivery(job_id)

    def delivered(self, job_id: int) -> None:
        """The job's result is posted (or it ended): forget it."""
        self.made_here.discard(job_id)

    def sweep_soon(self) -> None:
        """Look for leases to take over now (another process gave its leases up)."""
        self._soon.set()

    async def sweep(self, *, every: bool = False) -> int:
        """Take over every job whose lease ran out, in batches; how many."""
        total = 0
        while True:
            jobs = await self.store.take_expired(every=every)
            for job in jobs:
                log.info("job %d (%s): taken over, its previous holder stopped", job.id, job.state)
                await self._on_taken(job)
            total += len(jobs)
            if len(jobs) < TAKEOVER_BATCH:
                return total

    def _notice(self, notice: Notice) -> None:
        """A notice from the database: wake the scheduler, or sweep for given-up leases."""
        if notice is Notice.LEASES:
            self.sweep_soon()
        else:
            self._wake()

    async def _keep(self) -> None:
        """Renew this process's leases and take over expired ones, three times per lease."""
        every = self.store.seconds / 3
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(every):
                    await self._soon.wait()
            self._soon.clear()
            try:
                await self.store.renew()
                await self.sweep()
            except Exception:  # the database is briefly unavailable: the next round retries
                log.exception("lease renewal or takeover failed; retrying in %.0fs", every)
