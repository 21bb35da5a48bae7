"""`python -m bot prune`: the retention sweep now, beside the running bot or without it."""

from __future__ import annotations

import sqlite3
import time

import psycopg

from bot.settings import Settings
from storage.db import Database, DatabaseError
from storage.retention import Retention


async def run_prune(settings: Settings, now: float | None = None) -> int:
    """Sweep once; one line saying what was deleted, exit status 0 unless it failed."""
    path = settings.database_path
    if not settings.postgres and not path.is_file():
        print(f"error: prune failed: database {path} does not exist; check DATABASE_URL")
        return 1
    try:
        # Its transactions are small batches like the bot's: they interleave with its writes.
        db = await Database.open(settings.database)
        try:
            report = await Retention(db, settings.retention).sweep(
                time.time() if now is None else now
            )
        finally:
            await db.close()
    except (DatabaseError, sqlite3.Error, psycopg.Error, OSError) as exc:
        print(f"error: prune failed: {exc}", flush=True)
        return 1
    print(report.summary(), flush=True)
    return 0
