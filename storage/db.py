"""The SQLite connection: opened once, migrated at start, one writer transaction at a time."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from storage import sql
from storage.notify import LocalNotifier

log = logging.getLogger(__name__)

T = TypeVar("T")


class DatabaseError(Exception):
    """The database cannot be used as it is; the message says why and what to do."""


class DatabaseInUseError(DatabaseError):
    """Another live process runs the bot on the same database file."""


class SchemaTooNewError(DatabaseError):
    """The database was written by a newer version of the bot."""


class ProcessLock:
    """An OS lock (flock) on `<db>.lock`: one bot process per database file.

    The kernel drops it when the process ends, however it ends (kill -9 included), so a stale
    lock file never blocks a restart. Readers (doctor, tests) do not take it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path.with_name(path.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise DatabaseInUseError naming the holder's pid."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DatabaseInUseError(
                f"another bot process (pid {holder}) is using the database {self.path.parent}/"
                f"{self.path.stem}. Stop it first: one process per database file."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        """Let go of the lock (also done by the kernel when the process dies)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Database:
    """One aiosqlite connection shared by the process.

    aiosqlite runs every statement on one thread, but coroutines interleave between awaits, so a
    multi-statement transaction takes `_lock` to keep other coroutines' statements out of it.
    """

    dialect = "sqlite"

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        # Wake-ups for the schedulers on this file: in this process only (one process per file).
        self.notifier = LocalNotifier(str(path.resolve()))
        self._lock = asyncio.Lock()
        self._closed = False
        # `run` transactions: a plain sqlite3 connection on one thread of its own (aiosqlite
        # has no public way to run a function on its thread); `_lock` keeps them one at a time.
        self._runner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-run")
        self._raw: sqlite3.Connection | None = None

    @classmethod
    async def open(cls, path: Path) -> Database:
        """Open (creating owner-only if missing), set pragmas and apply migrations."""
        _create_private(path)
        conn = await aiosqlite.connect(path, isolation_level=None)
        conn.row_factory = aiosqlite.Row
        for pragma in sql.PRAGMAS:
            await conn.execute(pragma)
        await conn.create_function("sha256_hex", 1, sha256_hex, deterministic=True)
        db = cls(conn, path)
        try:
            await db.migrate()
            db._raw = await db._on_runner(_connect_raw, path)
        except BaseException:
            await db.close()  # its threads would otherwise keep the process alive
            raise
        return db

    async def close(self) -> None:
        """Close the connections (a second call does nothing)."""
        if self._closed:
            return
        self._closed = True
        if self._raw is not None:
            await self._on_runner(self._raw.close)
        self._runner.shutdown(wait=False)
        await self.conn.close()

    async def migrate(self) -> int:
        """Apply the migrations past PRAGMA user_version in one transaction; returns the version."""
        async with self.transaction() as conn:
            version = (await (await conn.execute("PRAGMA user_version")).fetchone())[0]
            _check_not_newer(self.path, version)
            for number, script in enumerate(sql.MIGRATIONS[version:], start=version + 1):
                for statement in _statements(script):
                    await conn.execute(statement)
                log.info("database migrated to schema version %d", number)
            await conn.execute(f"PRAGMA user_version = {len(sql.MIGRATIONS)}")
        return len(sql.MIGRATIONS)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """BEGIN IMMEDIATE … COMMIT, rolled back on error; one at a time per process."""
        async with self._lock:
            await self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                await self.conn.execute("ROLLBACK")
                raise
            await self.conn.execute("COMMIT")

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` as one transaction inside the database thread.

        One thread hand-off for the whole transaction instead of one per statement: a credit
        reservation is ~8 statements, and the hand-offs, not SQLite, limited it to ~260/s.
        """
        assert self._raw is not None, "Database.open sets up the runner connection"
        async with self._lock:
            return await self._on_runner(_in_transaction, self._raw, fn)

    async def _on_runner(self, fn: Callable[..., T], *args: Any) -> T:
        """Call `fn` on the runner thread (where its sqlite3 connection lives)."""
        return await asyncio.get_running_loop().run_in_executor(self._runner, fn, *args)

    async def fetchone(self, query: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        """One row (or None), outside any writer transaction."""
        async with self._lock:
            async with self.conn.execute(query, params) as cursor:
                return await cursor.fetchone()

    async def fetchall(self, query: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Any]:
        """All rows, outside any writer transaction."""
        async with self._lock:
            async with self.conn.execute(query, params) as cursor:
                return list(await cursor.fetchall())

    async def execute(self, query: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        """One autocommitted statement; returns the number of rows changed."""
        async with self._lock:
            cursor = await self.conn.execute(query, params)
            return cursor.rowcount

    async def get_meta(self, key: str) -> str | None:
        """A value of the key-value `meta` table."""
        row = await self.fetchone(sql.SELECT_META, (key,))
        return None if row is None else row[0]

    async def set_meta(self, key: str, value: str) -> None:
        """Store a value in the `meta` table."""
        await self.execute(sql.UPSERT_META, (key, value))


def _connect_raw(path: Path) -> sqlite3.Connection:
    """The runner's connection, set up like the main one (on the runner thread)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    for pragma in sql.PRAGMAS:
        conn.execute(pragma)
    return conn


def _in_transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """BEGIN IMMEDIATE … COMMIT around `fn`, rolled back if it raises (in the database thread)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


def _check_not_newer(path: Path, version: int) -> None:
    """Refuse a schema this code does not know: lowering user_version would re-run migrations."""
    known = len(sql.MIGRATIONS)
    if version > known:
        raise SchemaTooNewError(
            f"the database {path} has schema version {version}, but this version of the bot "
            f"knows up to {known}. Run the newer bot version that wrote it, or restore a backup."
        )


def sha256_hex(data: bytes) -> str:
    """The content address of a stored picture (also an SQL function, for migration 3)."""
    return hashlib.sha256(data).hexdigest()


def placeholders(values: Iterable[Any]) -> str:
    """`?, ?, ?` for an IN list (the values are still passed as parameters)."""
    return ", ".join("?" for _ in values)


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (no semicolons inside our DDL)."""
    return [s.strip() for s in script.split(";") if s.strip()]


def _create_private(path: Path) -> None:
    """Create the database file readable by its owner only, before SQLite does."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
