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
from typing import Any, ClassVar, Protocol

log = logging.getLogger(__name__)

# The NOTIFY channel on PostgreSQL: one per schema, since NOTIFY reaches every listener of the
# database: bots (or test runs) in other schemas of one database must not wake each other.
# Both ends compute it in SQL, the same way; a channel name holds at most 63 bytes.
CHANNEL = "video_bot:"
CHANNEL_OF_SCHEMA = "SELECT left(%s || coalesce(current_schema(), ''), 63)"  # psycopg's


class Notice(StrEnum):
    """What a notice asks its listeners to look at."""

    WORK = "work"  # a job was queued or a provider slot freed: fill the slots
    LEASES = "leases"  # a process gave up its leases: take its jobs over


Listener = Callable[[Notice], None]


class Notifier(Protocol):
    """What the stores send notices through and the schedulers listen on."""

    def subscribe(self, listener: Listener) -> None:
        """Call `listener` for every notice sent on this database."""

    def unsubscribe(self, listener: Listener) -> None:
        """Stop calling `listener`."""

    def send(self, conn: Any, notice: Notice) -> None:
        """Send a notice from inside a transaction."""


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


RECONNECT_SECONDS = 1.0  # between attempts to listen again after the connection broke
NOTIFY = "SELECT pg_notify(left(? || coalesce(current_schema(), ''), 63), ?)"


class PgNotifier:
    """PostgreSQL: NOTIFY inside the sending transaction (delivered when it commits), and one
    LISTEN connection per process while anyone listens."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._listeners: set[Listener] = set()
        self._task: asyncio.Task[None] | None = None

    def subscribe(self, listener: Listener) -> None:
        """Call `listener` for every notice any process sends; starts listening if needed."""
        self._listeners.add(listener)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._listen(), name="pg-listen")

    def unsubscribe(self, listener: Listener) -> None:
        """Stop calling `listener`; the last one out stops listening."""
        self._listeners.discard(listener)
        if not self._listeners:
            self.close()

    def close(self) -> None:
        """Stop listening (its connection closes as the task ends)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def send(self, conn: Any, notice: Notice) -> None:
        """NOTIFY every process, in the transaction of `conn`."""
        conn.execute(NOTIFY, (CHANNEL, notice.value))

    def _deliver(self, notice: Notice) -> None:
        """Hand one notice to every listener of this process."""
        for listener in list(self._listeners):
            listener(notice)

    async def _listen(self) -> None:
        """LISTEN until cancelled, connecting again after a failure."""
        import psycopg  # only where PostgreSQL is used

        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
                    await conn.execute(await _listen_statement(conn))
                    for notice in Notice:  # whatever was sent while nobody listened
                        self._deliver(notice)
                    async for note in conn.notifies():
                        self._deliver(Notice(note.payload))
            except (psycopg.Error, OSError, ValueError) as exc:
                log.warning("listening for notices failed (%s); again shortly", type(exc).__name__)
                await asyncio.sleep(RECONNECT_SECONDS)  # backoff before reconnecting


async def _listen_statement(conn: Any) -> Any:
    """LISTEN on this schema's channel (a quoted identifier: a schema name may need it)."""
    from psycopg import sql

    row = await (await conn.execute(CHANNEL_OF_SCHEMA, (CHANNEL,))).fetchone()
    return sql.SQL("LISTEN {}").format(sql.Identifier(row[0]))
