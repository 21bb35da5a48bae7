"""`python -m bot move-to-postgres SQLITE_PATH`: an existing SQLite database into PostgreSQL.

The copy is one PostgreSQL transaction (all or nothing) into an empty database at the same
schema version, with the identity sequences moved past the copied ids. The SQLite file is only
read, under its process lock, so no bot writes to it meanwhile.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from bot.settings import Settings
from storage import sql
from storage.db import Conn, Database, DatabaseError, ProcessLock, placeholders

BATCH = 500  # rows per executemany (pictures can be 25 MB each; fetched a batch at a time)
FIRST = ("jobs", "media")  # referenced by other tables' foreign keys
SKIPPED = frozenset({"processes"})  # registrations of running processes, not data


class MoveError(Exception):
    """A move that was refused or failed; nothing was written. The message says what to do."""


@dataclass(frozen=True)
class MoveReport:
    """What was copied."""

    rows: dict[str, int]
    seconds: float
    target: str

    def summary(self) -> str:
        """One line for the operator."""
        rows = ", ".join(f"{table} {count}" for table, count in self.rows.items())
        return f"moved to {self.target} in {self.seconds:.1f} s; rows: {rows}"


def run_move(settings: Settings, source_arg: str) -> int:
    """The CLI: one line of outcome; exit status 0 only when everything was copied."""
    if not settings.postgres:
        print("error: set DATABASE_URL to the (empty) PostgreSQL database to move into")
        return 1
    try:
        source = Path(source_arg).expanduser().resolve()
        if not source.is_file():
            raise MoveError(f"{source} does not exist; give the path of the SQLite database file")
        report = asyncio.run(move(source, settings))
    except (MoveError, DatabaseError, sqlite3.Error, psycopg.Error, OSError) as exc:
        detail = str(exc)
        for secret in settings.secrets():
            detail = detail.replace(secret, "***")
        print(f"error: move failed: {detail}", flush=True)
        return 1
    print(report.summary(), flush=True)
    return 0


async def move(source: Path, settings: Settings) -> MoveReport:
    """Copy every table of `source` into DATABASE_URL's PostgreSQL database."""
    started = time.monotonic()
    lock = ProcessLock(source)
    lock.acquire()  # DatabaseInUseError if a bot still runs on it: stop it first
    try:
        _check_version(source)
        db = await Database.open(settings.database)
        try:
            rows = await db.run(lambda conn: _copy_all(source, conn))
        finally:
            await db.close()
    finally:
        lock.release()
    return MoveReport(rows, time.monotonic() - started, settings.database_label)


def _read_only(source: Path) -> sqlite3.Connection:
    """The SQLite file, read only."""
    return sqlite3.connect(f"{source.as_uri()}?mode=ro", uri=True)


def _check_version(source: Path) -> None:
    """The SQLite file must be at this bot's schema version (so both schemas are the same)."""
    src = _read_only(source)
    try:
        version = src.execute("PRAGMA user_version").fetchone()[0]
    finally:
        src.close()
    if version != len(sql.MIGRATIONS):
        raise MoveError(
            f"{source} is at schema version {version}, this bot at {len(sql.MIGRATIONS)}: "
            "run this bot version on the SQLite file once (it migrates at start), stop it, "
            "then move"
        )


def _copy_all(source: Path, conn: Conn) -> dict[str, int]:
    """In the PostgreSQL transaction: check it is empty, copy each table, reset identities."""
    src = _read_only(source)
    try:
        tables = _tables(src, conn)
        for table in tables:
            _copy_table(src, conn, table, tables)
        for statement in sql.PG_RESET_IDENTITIES:
            conn.execute(statement)
        return {table: _verified_count(src, conn, table, tables) for table in tables}
    finally:
        src.close()


def _tables(src: sqlite3.Connection, conn: Conn) -> list[str]:
    """The tables to copy, referenced ones first; each must exist and be empty in PostgreSQL."""
    names = [r[0] for r in src.execute(sql.SELECT_TABLES) if r[0] not in SKIPPED]
    present = {r[0] for r in conn.execute(sql.PG_SELECT_TABLES)}
    for table in names:
        if table not in present:
            raise MoveError(f"table {table} is missing in PostgreSQL; is it this bot's database?")
        count = conn.execute(sql.COUNT_ROWS % table).fetchone()[0]
        if count:
            raise MoveError(
                f"the PostgreSQL database already holds data ({table}: {count} rows); "
                "move into an empty database"
            )
    return sorted(names, key=lambda t: (t not in FIRST, FIRST.index(t) if t in FIRST else 0, t))


def _copy_table(src: sqlite3.Connection, conn: Conn, table: str, tables: list[str]) -> None:
    """Copy one table in batches, column by position (the same migrations made both)."""
    if table not in tables:
        raise MoveError(f"unknown table {table!r}")
    columns = [r[0] for r in src.execute(sql.SQLITE_TABLE_COLUMNS, (table,))]
    theirs = [r[0] for r in conn.execute(sql.PG_TABLE_COLUMNS, (table,))]
    if columns != theirs:
        raise MoveError(f"{table} has columns {columns} in SQLite but {theirs} in PostgreSQL")
    insert = sql.COPY_INSERT % (table, placeholders(columns))
    cursor = src.execute(sql.COPY_SELECT % table)
    while batch := cursor.fetchmany(BATCH):
        conn.executemany(insert, [tuple(row) for row in batch])


def _verified_count(src: sqlite3.Connection, conn: Conn, table: str, tables: list[str]) -> int:
    """The table's rows, the same on both sides (else the transaction is rolled back)."""
    if table not in tables:
        raise MoveError(f"unknown table {table!r}")
    expected = src.execute(sql.COUNT_ROWS % table).fetchone()[0]
    copied = conn.execute(sql.COUNT_ROWS % table).fetchone()[0]
    if copied != expected:
        raise MoveError(f"{table}: {copied} rows copied of {expected}; nothing was moved")
    return int(copied)
