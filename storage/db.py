"""The database: SQLite (one file, the default) or PostgreSQL (storage/pg.py), one interface.

Store code is written once against `Conn`: `Database.run(fn)` runs `fn(conn)` as one transaction
on a thread, where `conn` is a plain sqlite3 connection or storage/pg.py's psycopg adapter; both
return cursors with fetchone/fetchall/rowcount and rows readable by index and by name.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiosqlite

from storage import sql

log = logging.getLogger(__name__)

T = TypeVar("T")
Params = Sequence[Any] | dict[str, Any]

VERSIONS = range(len(sql.MIGRATIONS) + 1)

# RETURNING (INSERT_JOB) needs SQLite 3.35 (2021).
MIN_SQLITE = (3, 35, 0)


class DatabaseError(Exception):
    """The database cannot be used as it is; the message says why and what to do."""


class DatabaseInUseError(DatabaseError):
    """Another live process runs the bot on the same database file."""


class SchemaTooNewError(DatabaseError):
    """The database was written by a newer version of the bot."""


class Cursor(Protocol):
    """What a statement returns on either backend."""

    rowcount: int

    def fetchone(self) -> Any:
        """The next row or None."""

    def fetchall(self) -> list[Any]:
        """The remaining rows."""

    def __iter__(self) -> Iterator[Any]:
        """The remaining rows, one at a time."""


class Conn(Protocol):
    """The connection a `Database.run` function gets: sqlite3's, or the PostgreSQL adapter."""

    def execute(self, query: str, params: Params = ..., /) -> Any:
        """Run one statement (SQLite dialect, `?` or `:name` parameters)."""

    def executemany(self, query: str, rows: Iterable[Params], /) -> Any:
        """Run one statement once per parameter row."""


def is_postgres_url(target: object) -> bool:
    """Whether a DATABASE_URL names a PostgreSQL database."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def lock_scope(conn: Conn, key: str) -> None:
    """Serialise transactions over one scope (e.g. a member's admission) until commit.

    SQLite needs nothing: BEGIN IMMEDIATE already runs writers one at a time. On PostgreSQL a
    transaction-scoped advisory lock on the key's hash; a hash collision only serialises more.
    """
    if not isinstance(conn, sqlite3.Connection):
        conn.execute(sql.LOCK_SCOPE, (key,))


class Database:
    """The interface every store uses; `Database.open` picks the backend from its target."""

    backend = "sqlite"

    @classmethod
    async def open(cls, target: Path | str, *, schema: int | None = None) -> Database:
        """Open a SQLite file (a Path or sqlite:///…) or a postgresql://… URL, and migrate.

        `schema`: migrate only up to that version (tests of old schemas).
        """
        if is_postgres_url(target):
            from storage.pg import PgDatabase  # psycopg only when PostgreSQL is used

            return await PgDatabase.connect(str(target), schema=schema)
        path = Path(str(target).removeprefix("sqlite:///")) if isinstance(target, str) else target
        return await SqliteDatabase.connect(path, schema=schema)

    async def close(self) -> None:
        """Close the connections (a second call does nothing)."""
        raise NotImplementedError

    async def run(self, fn: Callable[[Any], T]) -> T:
        """Run `fn(conn)` as one transaction on a database thread; rolled back if it raises."""
        raise NotImplementedError

    async def fetchone(self, query: str, params: Params = ()) -> Any:
        """One row (or None), outside any writer transaction."""
        raise NotImplementedError

    async def fetchall(self, query: str, params: Params = ()) -> list[Any]:
        """All rows, outside any writer transaction."""
        raise NotImplementedError

    async def execute(self, query: str, params: Params = ()) -> int:
        """One autocommitted statement; returns the number of rows changed."""
        raise NotImplementedError

    @property
    def label(self) -> str:
        """Where the data is, for messages (never a password)."""
        raise NotImplementedError

    async def migrate(self, upto: int | None = None) -> int:
        """Apply the migrations past the stored version in one transaction; returns the version."""
        target = len(sql.MIGRATIONS) if upto is None else upto
        return await self.run(lambda conn: self._migrate(conn, target))

    async def schema_version(self) -> int:
        """The schema version stored in the database."""
        return await self.run(self._schema_version)

    def _migrate(self, conn: Any, target: int) -> int:
        """In the migration transaction: refuse a newer schema, apply what is missing."""
        version = self._schema_version(conn)
        _check_not_newer(self.label, version)
        for number in range(version + 1, target + 1):
            for statement in _statements(self._script(number)):
                conn.execute(statement)
            log.info("database migrated to schema version %d", number)
        if target > version:
            self._set_schema_version(conn, target)
        return max(version, target)

    def _script(self, number: int) -> str:
        """Migration `number` in this backend's dialect."""
        return sql.MIGRATIONS[number - 1]

    def _schema_version(self, conn: Any) -> int:
        """The stored schema version (0: empty)."""
        raise NotImplementedError

    def _set_schema_version(self, conn: Any, version: int) -> None:
        """Store the schema version."""
        raise NotImplementedError

    async def get_meta(self, key: str) -> str | None:
        """A value of the key-value `meta` table."""
        row = await self.fetchone(sql.SELECT_META, (key,))
        return None if row is None else row[0]

    async def set_meta(self, key: str, value: str) -> None:
        """Store a value in the `meta` table."""
        await self.execute(sql.UPSERT_META, (key, value))


class ProcessLock:
    """An OS lock (flock) on `<db>.lock`: one bot process per database file.

    The kernel drops it when the process ends, however it ends (kill -9 included), so a stale
    lock file never blocks a restart. Readers (doctor, tests) do not take it. SQLite only: on
    PostgreSQL several processes share the database and register themselves instead.
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


class SqliteDatabase(Database):
    """One aiosqlite connection for single statements, one sqlite3 connection for `run`.

    aiosqlite runs every statement on one thread; `_lock` keeps `run` transactions and single
    statements one at a time (SQLite has one writer anyway).
    """

    backend = "sqlite"

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self._lock = asyncio.Lock()
        self._closed = False
        # `run` transactions: a plain sqlite3 connection on one thread of its own (aiosqlite
        # has no public way to run a function on its thread).
        self._runner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-run")
        self._raw: sqlite3.Connection | None = None

    @classmethod
    async def connect(cls, path: Path, *, schema: int | None = None) -> SqliteDatabase:
        """Open (creating owner-only if missing), set pragmas and apply migrations."""
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise DatabaseError(
                f"SQLite {sqlite3.sqlite_version} is too old; the bot needs 3.35 or newer "
                "(use a newer Python build, or PostgreSQL)"
            )
        _create_private(path)
        conn = await aiosqlite.connect(path, isolation_level=None)
        conn.row_factory = aiosqlite.Row
        for pragma in sql.PRAGMAS:
            await conn.execute(pragma)
        db = cls(conn, path)
        try:
            db._raw = await db._on_runner(_connect_raw, path)
            await db.migrate(schema)
        except BaseException:
            await db.close()  # its threads would otherwise keep the process alive
            raise
        return db

    @property
    def label(self) -> str:
        """The file's path."""
        return str(self.path)

    async def close(self) -> None:
        """Close the connections (a second call does nothing)."""
        if self._closed:
            return
        self._closed = True
        if self._raw is not None:
            await self._on_runner(self._raw.close)
        self._runner.shutdown(wait=False)
        await self.conn.close()

    def _schema_version(self, conn: sqlite3.Connection) -> int:
        """PRAGMA user_version."""
        return int(conn.execute("PRAGMA user_version").fetchone()[0])

    def _set_schema_version(self, conn: sqlite3.Connection, version: int) -> None:
        """PRAGMA user_version = N (transactional in SQLite; a PRAGMA takes no parameters)."""
        if version not in VERSIONS:
            raise ValueError(f"no schema version {version}")
        conn.execute("PRAGMA user_version = %d" % version)  # noqa: UP031 (the checked int)

    async def run(self, fn: Callable[[Any], T]) -> T:
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

    async def fetchone(self, query: str, params: Params = ()) -> Any:
        """One row (or None), outside any writer transaction."""
        async with self._lock:
            async with self.conn.execute(query, params) as cursor:
                return await cursor.fetchone()

    async def fetchall(self, query: str, params: Params = ()) -> list[Any]:
        """All rows, outside any writer transaction."""
        async with self._lock:
            async with self.conn.execute(query, params) as cursor:
                return list(await cursor.fetchall())

    async def execute(self, query: str, params: Params = ()) -> int:
        """One autocommitted statement; returns the number of rows changed."""
        async with self._lock:
            cursor = await self.conn.execute(query, params)
            return cursor.rowcount


def _connect_raw(path: Path) -> sqlite3.Connection:
    """The runner's connection, set up like the main one (on the runner thread)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    for pragma in sql.PRAGMAS:
        conn.execute(pragma)
    conn.create_function("sha256_hex", 1, sha256_hex, deterministic=True)  # migration 6
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


def _check_not_newer(label: str, version: int) -> None:
    """Refuse a schema this code does not know: lowering the version would re-run migrations."""
    known = len(sql.MIGRATIONS)
    if version > known:
        raise SchemaTooNewError(
            f"the database {label} has schema version {version}, but this version of the bot "
            f"knows up to {known}. Run the newer bot version that wrote it, or restore a backup."
        )


def sha256_hex(data: bytes) -> str:
    """The content address of a stored picture (also an SQL function, for migration 6)."""
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
