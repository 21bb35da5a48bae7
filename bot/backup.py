"""`python -m bot backup PATH`: a consistent, verified copy of the database while the bot runs."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from bot.settings import Settings
from storage import sql


class BackupError(Exception):
    """A backup that was not made or did not verify; the message says what to do."""


@dataclass(frozen=True)
class BackupReport:
    """What was copied and checked."""

    path: Path
    size: int
    seconds: float
    schema_version: int
    rows: dict[str, int]

    def summary(self) -> str:
        """One line for the operator."""
        rows = ", ".join(f"{table} {count}" for table, count in self.rows.items())
        return (
            f"backup written to {self.path} ({self.size / 1e6:.1f} MB in {self.seconds:.1f} s); "
            f"verified: integrity ok, schema version {self.schema_version}, rows: {rows}"
        )


def backup(source: Path, dest: Path) -> BackupReport:
    """Copy `source` to `dest` with SQLite's backup API, then verify the copy."""
    _check_paths(source, dest)
    partial = dest.with_name(dest.name + ".partial")
    started = time.monotonic()
    try:
        version, rows = _copy(source, partial)
        _verify(partial, version, rows)
        os.replace(partial, dest)  # only a verified copy ever gets the name asked for
    finally:
        partial.unlink(missing_ok=True)
    return BackupReport(dest, dest.stat().st_size, time.monotonic() - started, version, rows)


def _check_paths(source: Path, dest: Path) -> None:
    """Refuse what would lose data or cannot work, before touching anything."""
    if not source.is_file():
        raise BackupError(f"database {source} does not exist; check DATABASE_URL")
    if dest.exists():
        raise BackupError(f"{dest} already exists; a backup never overwrites, choose a new name")
    if not dest.parent.is_dir():
        raise BackupError(f"directory {dest.parent} does not exist; create it first")


def _copy(source: Path, partial: Path) -> tuple[int, dict[str, int]]:
    """Copy in one step inside one read transaction; the schema version and row counts it saw.

    WAL readers do not block the bot's writes, and one step (not page batches) means a write
    during the copy cannot restart it: the copy is the snapshot the counts were taken from.
    """
    src = sqlite3.connect(source, timeout=30)
    try:
        src.execute("BEGIN")
        version, rows = _describe(src)
        fd = os.open(partial, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)  # private, like the db
        os.close(fd)
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        finally:
            dst.close()
        src.rollback()
    finally:
        src.close()
    return version, rows


def _describe(conn: sqlite3.Connection) -> tuple[int, dict[str, int]]:
    """Schema version and the row count of every table."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    tables = [r[0] for r in conn.execute(sql.SELECT_TABLES)]
    return version, {table: _count(conn, table, tables) for table in tables}


def _count(conn: sqlite3.Connection, table: str, tables: list[str]) -> int:
    """Rows of one table (a name read from sqlite_schema, never from input)."""
    if table not in tables:
        raise BackupError(f"unknown table {table!r}")
    return int(conn.execute(sql.COUNT_ROWS % table).fetchone()[0])


def _verify(path: Path, version: int, rows: dict[str, int]) -> None:
    """integrity_check, the same schema version and the same row counts as the snapshot."""
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        check = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        if check != ["ok"]:
            raise BackupError(f"the copy failed integrity_check: {'; '.join(check[:5])}")
        copy_version, copy_rows = _describe(conn)
    finally:
        conn.close()
    if copy_version != version or copy_rows != rows:
        raise BackupError(
            f"the copy differs from the database (schema {copy_version} vs {version}, "
            f"rows {copy_rows} vs {rows}); try again"
        )
    if version > len(sql.MIGRATIONS):
        raise BackupError(
            f"the database is at schema version {version}, newer than this bot knows "
            f"({len(sql.MIGRATIONS)}); back up with the newer bot"
        )


def run_backup(settings: Settings, dest_arg: str) -> int:
    """The CLI: one line of outcome, exit status 0 only for a verified copy."""
    if settings.postgres:
        print(
            "error: backup copies the SQLite file; on PostgreSQL use pg_dump, e.g. "
            "`pg_dump --format=custom --file=bot.dump DBNAME` (restore with pg_restore; "
            "docs/scaling.md)",
            flush=True,
        )
        return 1
    source = settings.database_path
    dest = Path(dest_arg).expanduser().resolve()
    with contextlib.suppress(OSError):
        if dest.is_dir():
            dest = dest / time.strftime("bot-%Y%m%d-%H%M%S.db", time.gmtime())
    try:
        report = backup(source.resolve(), dest)
    except (BackupError, sqlite3.Error, OSError) as exc:
        print(f"error: backup failed: {exc}", flush=True)
        return 1
    print(report.summary(), flush=True)
    return 0
