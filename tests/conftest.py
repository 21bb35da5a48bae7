"""Shared fixtures: the loopback fake of Z.AI, a real database (SQLite, and PostgreSQL when
TEST_DATABASE_URL is set), an engine wired to both."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from bot.engine import Engine, EngineConfig, JobEvent
from bot.schedule import PollPolicy
from bot.zai import ZaiClient
from storage.credits import Credits
from storage.db import Database
from storage.jobs import Job, JobStore
from tests.fakes.zai import FakeZai
from tests.pg import BACKENDS, pg_schema, pg_summary


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One plain line saying whether the PostgreSQL half ran."""
    terminalreporter.write_line(pg_summary())


FAST_POLLS = PollPolicy(
    interval=0.02,
    min_first=0.0,
    max_interval=0.1,
    prior_low=0.0,
    prior_high=1.0,
    retry_base=0.01,
    retry_max=0.05,
)


class Recorder:
    """A JobListener that keeps every event, and lets tests wait for them."""

    def __init__(self) -> None:
        self.events: list[tuple[JobEvent, Job]] = []
        self._changed = asyncio.Condition()

    async def job_event(self, event: JobEvent, job: Job) -> None:
        """Record and notify."""
        async with self._changed:
            self.events.append((event, job))
            self._changed.notify_all()

    def of(self, event: JobEvent) -> list[Job]:
        """Jobs that got this event, in order."""
        return [job for ev, job in self.events if ev is event]

    async def wait(self, event: JobEvent, count: int = 1, timeout: float = 10.0) -> list[Job]:
        """Wait until `count` events of a kind arrived."""
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: len(self.of(event)) >= count), timeout
            )
        return self.of(event)


@pytest.fixture
async def fake_zai() -> AsyncIterator[FakeZai]:
    """A running fake Z.AI on a random loopback port."""
    async with FakeZai() as fake:
        yield fake


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A fresh database file path."""
    return tmp_path / "data" / "bot.db"


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, db_path: Path) -> Iterator[str]:
    """A fresh database's DATABASE_URL, per backend: a SQLite file, or a PostgreSQL schema of
    its own (skipped, and counted in the summary, when TEST_DATABASE_URL is not set)."""
    if request.param == "sqlite":
        yield f"sqlite:///{db_path}"
        return
    with pg_schema() as url:
        yield url


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """An opened, migrated database (each backend)."""
    database = await Database.open(database_url)
    yield database
    await database.close()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """The one HTTP client, as the bot opens it."""
    async with httpx.AsyncClient(timeout=10.0) as client:
        yield client


@pytest.fixture
def zai_client(http: httpx.AsyncClient, fake_zai: FakeZai) -> ZaiClient:
    """A Z.AI client pointed at the fake."""
    return ZaiClient(http, fake_zai.base_url, SecretStr(fake_zai.api_key))


def make_engine(
    db: Database, provider: ZaiClient, *, allowance: int = 10, **config: int
) -> tuple[Engine, Recorder]:
    """An engine with fast polls and a recording listener."""
    engine = Engine(
        JobStore(db), Credits(db, allowance), provider, EngineConfig(**config), FAST_POLLS
    )
    recorder = Recorder()
    engine.listener = recorder
    return engine, recorder


@pytest.fixture
async def engine(db: Database, zai_client: ZaiClient) -> AsyncIterator[tuple[Engine, Recorder]]:
    """A started engine against the fake (closed after the test)."""
    eng, recorder = make_engine(db, zai_client)
    await eng.start()
    yield eng, recorder
    await eng.close()
