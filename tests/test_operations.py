"""Operators' tools on the real bot: backup while jobs run and restore, metrics, /healthz, JSON logs.

The bot runs as a child process (tests/procs.py) against the fakes of this process, like
`python -m bot` with METRICS_PORT and LOG_FORMAT=json; the backup is `python -m bot backup`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import socket
import sqlite3
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bot.logs import log_ids, setup_logging
from bot.metrics import DatabaseCollector, serve_metrics
from storage import sql
from storage.db import Database
from tests.fakes.discord import FakeDiscord, FakeGuild, FakeUser
from tests.fakes.zai import FakeZai, Fault
from tests.harness import harness
from tests.procs import ROOT, BotProcess, bot_env, query, start_bot
from tests.util import eventually

JOBS = 3


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class World:
    """Fakes, one guild with alice, and the child's environment."""

    discord: FakeDiscord
    zai: FakeZai
    guild: FakeGuild
    alice: FakeUser
    tmp: Path
    port: int

    def env(self, db_path: Path) -> dict[str, str]:
        """The child's environment for a database file."""
        return bot_env(
            self.discord,
            self.zai,
            db_path,
            METRICS_PORT=str(self.port),
            LOG_FORMAT="json",
        )

    async def start(self, db_path: Path, log_name: str) -> BotProcess:
        """A child bot on that database."""
        cwd = self.tmp / "cwd"
        cwd.mkdir(exist_ok=True)
        return await start_bot(self.discord, self.env(db_path), cwd, self.tmp / log_name)

    async def get(self, path: str) -> httpx.Response:
        """GET from the child's metrics port."""
        async with httpx.AsyncClient(timeout=10) as http:
            return await http.get(f"http://127.0.0.1:{self.port}{path}")


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    """The fakes in this process."""
    async with FakeDiscord() as fake_discord, FakeZai() as fake_zai:
        alice = fake_discord.add_user("alice")
        guild = fake_discord.add_guild(name="Ops", channels=["general"], members=[alice])
        yield World(fake_discord, fake_zai, guild, alice, tmp_path, free_port())


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus text page, keyed by name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(
    page: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    """One sample's value (0 when absent)."""
    return page.get((name, frozenset(labels.items())), 0.0)


async def scrape(world: World) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """GET /metrics, parsed."""
    response = await world.get("/metrics")
    assert response.status_code == 200
    return samples(response.text)


async def run_backup(env: dict[str, str], dest: Path, cwd: Path) -> tuple[int, str]:
    """`python -m bot backup DEST` as an operator runs it beside the bot."""
    return await run_cli(env, cwd, "backup", str(dest))


async def run_cli(env: dict[str, str], cwd: Path, *args: str) -> tuple[int, str]:
    """`python -m bot ARGS`: exit status and output."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


def states(db_path: Path) -> list[str]:
    """Every job's state, by id."""
    return [r["state"] for r in query(db_path, "SELECT state FROM jobs ORDER BY id")]


async def ask(world: World, n: int) -> None:
    """alice asks for `n` videos."""
    channel = world.guild.channel("general")
    for i in range(n):
        await world.discord.slash(
            world.guild, channel, world.alice, "video", subcommand="text",
            options={"prompt": f"operations test {i}"},
        )  # fmt: skip


async def test_backup_while_jobs_run_restores_and_metrics_follow(world: World) -> None:
    db_path = world.tmp / "data" / "bot.db"
    world.zai.hold_all = True  # tasks stay PROCESSING: the bot polls and writes during the backup
    world.zai.script("poll", Fault.http(500, "500", "injected"))
    bot = await world.start(db_path, "bot.log")
    try:
        assert (await world.get("/healthz")).text == "ok\n"
        assert await run_cli(world.env(db_path), world.tmp, "health") == (0, "ok\n")
        await ask(world, JOBS)
        await eventually(lambda: states(db_path) == ["processing"] * JOBS, what="jobs processing")
        await eventually(lambda: world.zai.faults_applied, what="the injected poll error")
        page = await scrape(world)
        assert (
            value(page, "videobot_jobs", state="processing", model="cogvideox-3", provider="zai")
            == JOBS
        )
        assert value(page, "videobot_first_response_seconds_count") == JOBS
        assert value(page, "videobot_provider_errors_total", provider="zai", code="500") == 1

        backup = world.tmp / "backups" / "bot-copy.db"
        backup.parent.mkdir()
        code, out = await run_backup(world.env(db_path), backup, world.tmp / "cwd")
        assert code == 0, out
        schema = f"schema version {len(sql.MIGRATIONS)}"  # other branches append migrations
        assert f"verified: integrity ok, {schema}" in out and "jobs 3" in out

        world.zai.hold_all = False
        world.zai.finish_all()
        await eventually(lambda: states(db_path) == ["delivered"] * JOBS, what="deliveries")
        page = await scrape(world)
        assert (
            value(page, "videobot_jobs", state="delivered", model="cogvideox-3", provider="zai")
            == JOBS
        )
        assert value(page, "videobot_credits_spent_total", model="cogvideox-3") == JOBS
        assert value(page, "videobot_delivery_lag_seconds_count") == JOBS
        assert value(page, "videobot_polls_per_job_count") == JOBS
        assert value(page, "videobot_queue_depth") == 0
    finally:
        assert await bot.stop() == 0, bot.log()
    check_json_log(bot.log(), world)
    code, out = await run_cli(world.env(db_path), world.tmp, "health")  # the container's check
    assert code == 1 and "unhealthy: no answer" in out
    await restore(world, backup)


async def restore(world: World, backup: Path) -> None:
    """Stop, put the copy in place, start: the bot opens it and finishes the jobs it holds."""
    restored = world.tmp / "restored" / "bot.db"
    restored.parent.mkdir()
    shutil.copy(backup, restored)
    assert states(restored) == ["processing"] * JOBS  # the snapshot taken while they ran
    bot = await world.start(restored, "restored.log")
    try:
        await eventually(lambda: states(restored) == ["delivered"] * JOBS, what="restored jobs")
        assert (await world.get("/healthz")).status_code == 200
    finally:
        assert await bot.stop() == 0, bot.log()
    conn = sqlite3.connect(restored)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert (
        conn.execute("SELECT count(*) FROM credit_ledger WHERE reason = 'reserve'").fetchone()[0]
        == JOBS
    )
    conn.close()
    assert "Traceback" not in bot.log()


def check_json_log(text: str, world: World) -> None:
    """Every line is one JSON object; job, guild and user ids appear; no secret does."""
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert lines and all({"ts", "level", "logger", "message"} <= set(e) for e in lines)
    assert any(e.get("job_id") == 1 and "submitted" in e["message"] for e in lines)
    accepted = [e for e in lines if "accepted" in e["message"]]
    assert accepted and all(e.get("guild_id") == world.guild.id for e in accepted)
    assert all(e.get("user_id") == world.alice.id for e in accepted)
    assert world.discord.token not in text and world.zai.api_key not in text


async def test_backup_refuses_clearly(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "DISCORD_TOKEN": "discord-token-for-backup",
        "ZAI_API_KEY": "zai-key-for-backup",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'missing.db'}",
    }
    code, out = await run_backup(env, tmp_path / "copy.db", tmp_path)
    assert code == 1 and "database" in out and "does not exist" in out and "Traceback" not in out
    (tmp_path / "taken.db").write_bytes(b"")
    sqlite3.connect(tmp_path / "missing.db").close()
    code, out = await run_backup(env, tmp_path / "taken.db", tmp_path)
    assert code == 1 and "already exists" in out and "never overwrites" in out
    assert not (tmp_path / "taken.db.partial").exists()


async def test_healthz_fails_for_each_cause(tmp_path: Path) -> None:
    port = free_port()
    async with harness(tmp_path, metrics_port=port) as h:
        assert h.bot is not None and h.resources is not None
        async with serve_metrics(h.settings, h.bot, h.resources) as server:
            assert server is not None
            server.health.write_timeout = 0.5
            url = f"http://127.0.0.1:{port}/healthz"
            async with httpx.AsyncClient(timeout=10) as http:
                assert (await http.get(url)).status_code == 200

                h.bot.dispatch("disconnect")  # what discord.py dispatches when the socket drops
                await expect_unhealthy(http, url, "discord gateway disconnected")
                h.bot.dispatch("resumed")
                assert (await http.get(url)).status_code == 200

                h.resources.engine.last_pass -= 3600  # a scheduler stuck for an hour
                await expect_unhealthy(http, url, "scheduler has not run for 36")
                h.resources.engine.wake()
                await eventually(
                    lambda: _status(http, url, 200), what="healthy again after the scheduler ran"
                )

                locker = sqlite3.connect(h.db_path, timeout=1)
                locker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
                try:
                    await expect_unhealthy(http, url, "database not writable")
                finally:
                    locker.rollback()
                    locker.close()
                await eventually(lambda: _status(http, url, 200), what="writable again")


async def _status(http: httpx.AsyncClient, url: str, status: int) -> bool:
    """The endpoint answers `status`."""
    return (await http.get(url)).status_code == status


async def expect_unhealthy(http: httpx.AsyncClient, url: str, reason: str) -> None:
    """503 with the reason in the body."""
    response = await http.get(url)
    assert response.status_code == 503, response.text
    assert reason in response.text


async def test_json_log_lines_carry_ids_and_stay_redacted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret = "very-secret-token-123"
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    setup_logging("INFO", [secret], "json")
    log = logging.getLogger("tests.json")
    try:
        with log_ids(guild_id=5, user_id=6):
            log.info("asked with %s", secret)
        await asyncio.create_task(_log_in_job_task(log), name="poll-job-42")
        log.warning("explicit", extra={"job_id": 7})
        try:
            raise RuntimeError(f"boom {secret}")
        except RuntimeError:
            log.exception("failed")
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines()]
    assert [e["message"] for e in lines] == [
        "asked with [redacted]", "in a job task", "explicit", "failed",
    ]  # fmt: skip
    assert (lines[0]["guild_id"], lines[0]["user_id"]) == (5, 6) and "job_id" not in lines[0]
    assert lines[1]["job_id"] == 42 and "guild_id" not in lines[1]
    assert lines[2]["job_id"] == 7 and lines[2]["level"] == "WARNING"
    assert "RuntimeError: boom [redacted]" in lines[3]["exception"]
    assert secret not in err


async def _log_in_job_task(log: logging.Logger) -> None:
    """A line logged by one of the engine's per-job tasks."""
    log.info("in a job task")


async def test_delivery_lag_histogram_buckets_from_the_database(db: Database) -> None:
    lags = [0.3, 1.5, 100.0, 1000.0]  # LAG_BUCKETS: 0.5 1 2 5 10 30 60 300
    for i, lag in enumerate(lags):
        await db.execute(
            "INSERT INTO jobs (guild_id, channel_id, user_id, model, mode, options, origin, cost,"
            " credit_day, request_id, state, created_at, updated_at, finished_at, delivered_at,"
            " task_id, polls) VALUES (1, 2, 3, 'cogvideox-3', 'text', '{}', 'slash', 1,"
            " '2026-12-01', ?, 'delivered', 0, 0, 10, ?, 't', ?)",
            (f"r{i}", 10 + lag, i + 1),
        )
    collector = DatabaseCollector(db)
    await collector.refresh()
    page = samples(generate_latest(collector).decode())  # type: ignore[arg-type]
    lag = "videobot_delivery_lag_seconds_bucket"
    assert [value(page, lag, le=le) for le in ("0.5", "1.0", "2.0", "60.0", "300.0", "+Inf")] == [
        1, 1, 2, 2, 3, 4,
    ]  # fmt: skip
    assert value(page, "videobot_delivery_lag_seconds_sum") == pytest.approx(sum(lags))
    assert value(page, "videobot_polls_per_job_bucket", le="2.0") == 2
    assert value(page, "videobot_polls_per_job_count") == 4
    assert value(page, "videobot_credits_spent_total", model="cogvideox-3") == 4
