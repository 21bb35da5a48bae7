"""Wake-ups between the processes (and engines) that share one database.

A store sends a notice inside the transaction that makes work for others (a job queued, a
provider slot freed, leases given up), so a waiting scheduler looks now instead of polling
the table. SQLite has one process per file: the notice reaches the listeners of this process
only (today's behaviour, and every engine a test opens on the same file). PostgreSQL sends
it with NOTIFY, delivered to every process's LISTEN connection when the transaction commits.
Schedulers keep their own timed wake-ups: a lost notice delays work, never loses it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from enum import StrEnum
from typing import Any, ClassVar

log = logging.getLogger(__name__)

CHANNEL = "video_bot"  # the NOTIFY channel on PostgreSQL


class Notice(StrEnum):
    """What a notice asks its listeners to look at."""

    WORK = "work"  # a job was queued or a provider slot freed: fill the slots
    LEASES = "leases"  # a process gave up its leases: take its jobs over


Listener = Callable[[Notice], None]


class LocalNotifier:
    """Notices within this process, to every listener on the same database file."""

    _listeners: ClassVar[dict[str, set[Listener]]] = {}

    def __init__(self, key: str) -> None:
        self.key = key  # the database file's resolved path

    def subscribe(self, listener: Listener) -> None:
        """Call `listener` (on its event loop) for every notice sent on this database."""
        loop = asyncio.get_running_loop()
        self._listeners.setdefault(self.key, set()).add(_OnLoop(loop, listener))

    def unsubscribe(self, listener: Listener) -> None:
        """Stop calling `listener`."""
        listeners = self._listeners.get(self.key, set())
        for entry in [e for e in listeners if e.listener == listener]:
            listeners.discard(entry)

    def send(self, conn: Any, notice: Notice) -> None:
        """Send a notice from inside a transaction (any thread); delivered right away."""
        for entry in list(self._listeners.get(self.key, ())):
            entry(notice)


class _OnLoop:
    """A listener called on its own event loop, whichever thread sends."""

    def __init__(self, loop: asyncio.AbstractEventLoop, listener: Listener) -> None:
        self.loop = loop
        self.listener = listener

    def __call__(self, notice: Notice) -> None:
        """Hand the notice to the listener's loop (dropped if that loop has closed)."""
        try:
            self.loop.call_soon_threadsafe(self.listener, notice)
        except RuntimeError:  # the loop closed: nobody is waiting for the notice
            log.debug("notice %s dropped: its listener's loop is closed", notice)
