"""Run the real bot as a child process against the fakes of the test process.

The child is `python -m tests.procs`, which is `python -m bot` (the same `bot.__main__.main`:
settings from the environment, logging, `bot.runner.run`) with one difference: the poll
schedule's times are scaled down (`CHILD_POLLS`), so a job's life takes a second, not minutes.
Failpoints (`VIDEO_BOT_CRASH_AT`) work unchanged; the child's stdout and stderr go to a file
that the tests grep afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.schedule import PollPolicy
from storage.db import is_postgres_url

if TYPE_CHECKING:
    from tests.fakes.discord import FakeDiscord
    from tests.fakes.zai import FakeZai

ROOT = Path(__file__).resolve().parent.parent
CHILD_POLLS = PollPolicy(
    interval=0.05,
    min_first=0.0,
    max_interval=0.2,
    prior_low=0.0,
    prior_high=1.0,
    retry_base=0.05,
    retry_max=0.2,
)
START_TIMEOUT = 30.0


def bot_env(
    fake_discord: FakeDiscord,
    fake_zai: FakeZai,
    db_path: Path,
    database_url: str | None = None,
    **extra: str,
) -> dict[str, str]:
    """A clean environment for the child: the fakes' addresses, the database, no inherited secrets.

    `database_url`: the database (a PostgreSQL schema of the test's own); default the SQLite
    file at `db_path`, whose folder holds the scratch files either way.
    """
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "LANG": "C.UTF-8",
        "DISCORD_TOKEN": fake_discord.token,
        "ZAI_API_KEY": fake_zai.api_key,
        "ZAI_BASE_URL": fake_zai.base_url,
        "DISCORD_API_BASE": fake_discord.api_base,
        "DISCORD_GATEWAY_URL": fake_discord.gateway_url,
        "DATABASE_URL": database_url or f"sqlite:///{db_path}",
        "DATA_DIR": str(db_path.parent),
        "TRUSTED_MEDIA_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "INFO",
        "MAX_INFLIGHT_PER_USER": "5",
    }
    env.update(extra)
    return env


@dataclass
class BotProcess:
    """A running child bot."""

    proc: asyncio.subprocess.Process
    log_path: Path

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.proc.pid

    async def wait_exit(self, timeout: float = 20.0) -> int:
        """Wait for the child to end; its return code (-9 after SIGKILL)."""
        return await asyncio.wait_for(self.proc.wait(), timeout)

    async def kill(self) -> int:
        """kill -9, as a crash would, and reap the child."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
        return await self.wait_exit()

    async def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM (a clean shutdown), once more if the first was lost; SIGKILL at the end."""
        for wait in (timeout / 3, timeout * 2 / 3):
            if self.proc.returncode is not None:
                return self.proc.returncode
            self.proc.send_signal(signal.SIGTERM)
            try:
                return await self.wait_exit(wait)
            except TimeoutError:
                continue
        return await self.kill()

    def status_kib(self, field: str) -> int:
        """A size field of /proc/<pid>/status (VmRSS, VmHWM...) in KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
        raise KeyError(field)

    def log(self) -> str:
        """Everything the child wrote so far."""
        return self.log_path.read_text(errors="replace")


async def start_bot(
    fake_discord: FakeDiscord,
    env: dict[str, str],
    cwd: Path,
    log_path: Path,
    *,
    crash_at: str | None = None,
) -> BotProcess:
    """Start a child bot (optionally with a failpoint armed) and wait until it is connected."""
    await _previous_session_gone(fake_discord)
    child_env = dict(env)
    if crash_at is not None:
        child_env["VIDEO_BOT_CRASH_AT"] = crash_at
    with log_path.open("ab") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.procs",
            cwd=cwd,
            env=child_env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    bot = BotProcess(proc, log_path)
    await _connected(fake_discord, bot)
    return bot


async def _previous_session_gone(fake_discord: FakeDiscord) -> None:
    """Wait until no earlier child is still connected to the fake gateway."""
    await fake_discord.signal.wait_for(
        lambda: not fake_discord.gateway.ready, START_TIMEOUT, "the old bot to disconnect"
    )


async def _connected(fake_discord: FakeDiscord, bot: BotProcess) -> None:
    """Wait for the fake to see the child ready; fail with its log if it died first."""
    ready = asyncio.create_task(fake_discord.wait_ready(timeout=START_TIMEOUT))
    died = asyncio.create_task(bot.proc.wait())
    await asyncio.wait({ready, died}, return_when=asyncio.FIRST_COMPLETED)
    if not ready.done():
        ready.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ready
        raise AssertionError(
            f"the bot exited ({bot.proc.returncode}) before connecting:\n{bot.log()}"
        )
    died.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await died
    ready.result()


def query(database: Path | str, sql: str, params: Sequence[Any] = ()) -> list[Any]:
    """Rows of a read-only query against the child's database (a file: WAL lets both read;
    or a DATABASE_URL, SQLite or PostgreSQL)."""
    if is_postgres_url(database):
        from tests.pg import pg_query  # not in the child, which runs this module as the bot

        return pg_query(str(database), sql, params)
    conn = sqlite3.connect(str(database).removeprefix("sqlite:///"), timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return list(conn.execute(sql, params))
    finally:
        conn.close()


def child_main() -> int:
    """The child: `python -m bot` with the poll schedule scaled down."""
    import functools

    import bot.runner
    from bot.__main__ import main

    bot.runner.run = functools.partial(bot.runner.run, policy=CHILD_POLLS)  # type: ignore[assignment]
    return main([])


if __name__ == "__main__":
    sys.exit(child_main())
