"""Issue 10 items 12-14: refusing to start on a busy or newer database, LOG_LEVEL checked."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from bot.settings import LogLevel, Settings
from storage import sql
from storage.db import Database, ProcessLock, SchemaTooNewError
from tests.test_cli import ROOT, run_bot

ENV = {"DISCORD_TOKEN": "discord-token-for-startup", "ZAI_API_KEY": "zai-key-for-startup"}

HOLDER = """
import sys
from pathlib import Path
from storage.db import ProcessLock
ProcessLock(Path(sys.argv[1])).acquire()
print("locked", flush=True)
sys.stdin.read()
"""


async def test_log_level_is_validated_with_the_other_settings(tmp_path: Path) -> None:
    code, _, err = await run_bot([], tmp_path, {**ENV, "LOG_LEVEL": "verbose"})
    assert code == 1 and "Traceback" not in err
    assert "LOG_LEVEL is invalid" in err and "DEBUG" in err
    code, out, err = await run_bot(["doctor"], tmp_path, {**ENV, "LOG_LEVEL": "verbose"})
    assert code == 1 and "[FAIL] settings: LOG_LEVEL is invalid" in out


def test_log_level_accepts_any_case() -> None:
    settings = Settings(discord_token="t" * 10, zai_api_key="k" * 10, log_level=" debug ")
    assert settings.log_level is LogLevel.DEBUG


async def test_a_newer_schema_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "data" / "bot.db"
    db = await Database.open(path)
    await db.close()
    newer = len(sql.MIGRATIONS) + 1
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {newer}")
    with pytest.raises(SchemaTooNewError, match=f"schema version {newer}"):
        await Database.open(path)
    env = {**ENV, "DATABASE_URL": f"sqlite:///{path}"}
    code, _, err = await run_bot([], tmp_path, env)
    assert code == 1 and "Traceback" not in err and "newer bot version" in err
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == newer


async def test_a_second_process_on_the_same_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "data" / "bot.db"
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, str(path), cwd=ROOT,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        assert await asyncio.wait_for(holder.stdout.readline(), 30) == b"locked\n"
        code, _, err = await run_bot([], tmp_path, {**ENV, "DATABASE_URL": f"sqlite:///{path}"})
        assert code == 1 and "Traceback" not in err
        assert f"another bot process (pid {holder.pid})" in err
    finally:
        holder.send_signal(signal.SIGKILL)
        await holder.wait()
    lock = ProcessLock(path)  # released by the kernel when the holder died
    lock.acquire()
    lock.release()
