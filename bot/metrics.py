"""Prometheus metrics and `/healthz` on METRICS_PORT (off by default).

Most figures are read from the database when Prometheus scrapes (jobs by state, credits, queue
depth, delivery lag, polls per job): they survive restarts and need no call sites. Only what the
database does not keep is counted in process: first-response latency and provider errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import httpx
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest

from storage import sql
from storage.db import Database

if TYPE_CHECKING:
    import discord

    from bot.app import Resources
    from bot.engine import Engine
    from bot.settings import Settings

log = logging.getLogger(__name__)

PROVIDER = "zai"  # every model goes through Z.AI today; the label keeps room for others
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0, 10.0)
LAG_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)
POLL_BUCKETS = (1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0)
DB_WRITE_TIMEOUT = 5.0
HEALTH_CLI_TIMEOUT = 8.0  # below the container's HEALTHCHECK --timeout

# In-process metrics: one registry per process, shared by every server of it.
REGISTRY = CollectorRegistry()
FIRST_RESPONSE = Histogram(
    "videobot_first_response_seconds",
    "From the interaction's creation to the bot's first answer (Discord allows 3 s)",
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
PROVIDER_ERRORS = Counter(
    "videobot_provider_errors",
    "Errors answered by (or on the way to) the video provider, by code",
    ["provider", "code"],
    registry=REGISTRY,
)


def first_response(created_at: datetime) -> None:
    """Record the time from an interaction's creation until now (its first answer)."""
    FIRST_RESPONSE.observe(max(0.0, time.time() - created_at.timestamp()))


def provider_error(code: str) -> None:
    """Count one provider error."""
    PROVIDER_ERRORS.labels(PROVIDER, code).inc()


@dataclass
class Snapshot:
    """What the database said at the last scrape."""

    jobs: list[tuple[str, str, str, int]] = field(default_factory=list)
    credits: list[tuple[str, int]] = field(default_factory=list)
    delivery_lag: tuple[list[int], int, float] = ([], 0, 0.0)
    polls: tuple[list[int], int, float] = ([], 0, 0.0)


class DatabaseCollector:
    """Metric families built from the last `refresh()` of the database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.snapshot = Snapshot()

    async def refresh(self) -> None:
        """Read the figures (a few aggregate queries)."""
        snap = Snapshot()
        snap.jobs = [(r[0], r[1], r[2], r[3]) for r in await self.db.fetchall(sql.METRICS_JOBS)]
        snap.credits = [(r[0], r[1]) for r in await self.db.fetchall(sql.METRICS_CREDITS_SPENT)]
        snap.delivery_lag = await self._histogram(sql.METRICS_DELIVERY_LAG, LAG_BUCKETS)
        snap.polls = await self._histogram(sql.METRICS_POLLS, POLL_BUCKETS)
        self.snapshot = snap

    async def _histogram(self, query: str, bounds: Sequence[float]) -> tuple[list[int], int, float]:
        """Cumulative counts per bound, the count and the sum, from one grouped query."""
        per_bucket = [0] * (len(bounds) + 1)
        total_sum = 0.0
        for bucket, count, value_sum in await self.db.fetchall(
            query, {"bounds": json.dumps(bounds)}
        ):
            per_bucket[bucket] = count
            total_sum += value_sum or 0.0
        return list(itertools.accumulate(per_bucket))[: len(bounds)], sum(per_bucket), total_sum

    def collect(self) -> Iterable[Metric]:
        """The families Prometheus sees."""
        snap = self.snapshot
        jobs = GaugeMetricFamily(
            "videobot_jobs", "Jobs in the database by state", labels=["state", "model", "provider"]
        )
        for state, model, provider, count in snap.jobs:
            jobs.add_metric([state, model, provider], count)
        yield jobs
        queued = sum(count for state, _, _, count in snap.jobs if state == "queued")
        yield GaugeMetricFamily("videobot_queue_depth", "Jobs waiting for a provider slot", queued)
        credits = CounterMetricFamily(
            "videobot_credits_spent", "Credits spent on delivered videos", labels=["model"]
        )
        for model, spent in snap.credits:
            credits.add_metric([model], spent)
        yield credits
        yield _histogram_family(
            "videobot_delivery_lag_seconds",
            "From the provider finishing to the video posted",
            LAG_BUCKETS,
            snap.delivery_lag,
        )
        yield _histogram_family(
            "videobot_polls_per_job", "Status polls per finished job", POLL_BUCKETS, snap.polls
        )


def _histogram_family(
    name: str, doc: str, bounds: Sequence[float], data: tuple[list[int], int, float]
) -> HistogramMetricFamily:
    """A histogram family from cumulative counts."""
    counts, total, total_sum = data
    if not counts:
        counts = [0] * len(bounds)
    buckets = [(str(b), c) for b, c in zip(bounds, counts, strict=True)] + [("+Inf", total)]
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=total_sum)


class _Forward:
    """Expose the process-wide registry inside a server's own registry."""

    def collect(self) -> Iterable[Metric]:
        """Everything counted in process."""
        return REGISTRY.collect()


@dataclass(frozen=True)
class ShardState:
    """One gateway connection as /healthz and /metrics report it."""

    id: int
    connected: bool
    latency: float | None  # heartbeat to ACK, seconds; None before the first ACK

    def line(self) -> str:
        """'shard 1: connected, latency 42 ms'."""
        state = "connected" if self.connected else "disconnected"
        latency = "unknown" if self.latency is None else f"{self.latency * 1000:.0f} ms"
        return f"shard {self.id}: {state}, latency {latency}"


class GatewayWatch:
    """Whether the Discord gateway is connected, from discord.py's connect/disconnect events.

    Sharded (`shards` given), each of this process's shards is followed on its own through the
    shard_* events; unsharded, the one connection counts as shard 0.
    """

    def __init__(self, bot: discord.Client, shards: Sequence[int] | None = None) -> None:
        self.bot = bot
        self.shards = shards
        self.connected = bot.is_ready() and not bot.is_closed()
        self.up: set[int] = set(shards or ()) if self.connected else set()
        if shards is None:
            bot.add_listener(self._up, "on_connect")
            bot.add_listener(self._up, "on_resumed")
            bot.add_listener(self._down, "on_disconnect")
        else:
            bot.add_listener(self._shard_up, "on_shard_connect")
            bot.add_listener(self._shard_up, "on_shard_resumed")
            bot.add_listener(self._shard_down, "on_shard_disconnect")

    async def _up(self) -> None:
        self.connected = True

    async def _down(self) -> None:
        self.connected = False

    async def _shard_up(self, shard_id: int) -> None:
        self.up.add(shard_id)

    async def _shard_down(self, shard_id: int) -> None:
        self.up.discard(shard_id)

    def ok(self) -> bool:
        """Connected (every shard of this process) and not closing."""
        return all(state.connected for state in self.states())

    def states(self) -> list[ShardState]:
        """Each connection's state: this process's shards, or the one unsharded connection."""
        closed = self.bot.is_closed()
        if self.shards is None:
            return [ShardState(0, self.connected and not closed, _finite(self.bot.latency))]
        return [ShardState(i, i in self.up and not closed, self._latency(i)) for i in self.shards]

    def _latency(self, shard_id: int) -> float | None:
        """A shard's heartbeat latency, None while unknown (not launched, no ACK yet)."""
        get_shard = getattr(self.bot, "get_shard", None)  # only the sharded client has it
        shard = get_shard(shard_id) if get_shard is not None else None
        return None if shard is None else _finite(shard.latency)


def _finite(seconds: float) -> float | None:
    """discord.py says inf (no ACK yet) or nan (no shard) for an unknown latency."""
    return seconds if math.isfinite(seconds) else None


class GatewayCollector:
    """Per-shard connection state and heartbeat latency, read at each scrape."""

    def __init__(self, watch: GatewayWatch) -> None:
        self.watch = watch

    def collect(self) -> Iterable[Metric]:
        """videobot_gateway_connected and videobot_gateway_latency_seconds, by shard."""
        connected = GaugeMetricFamily(
            "videobot_gateway_connected",
            "1 while the shard's gateway connection is up (unsharded: shard 0)",
            labels=["shard"],
        )
        latency = GaugeMetricFamily(
            "videobot_gateway_latency_seconds",
            "From the shard's last heartbeat to Discord's ACK",
            labels=["shard"],
        )
        for state in self.watch.states():
            connected.add_metric([str(state.id)], float(state.connected))
            if state.latency is not None:
                latency.add_metric([str(state.id)], state.latency)
        yield connected
        yield latency


class Health:
    """The three checks of /healthz."""

    def __init__(
        self, gateway: GatewayWatch, engine: Engine, db: Database, scheduler_bound: float
    ) -> None:
        self.gateway = gateway
        self.engine = engine
        self.db = db
        self.scheduler_bound = scheduler_bound
        self.write_timeout = DB_WRITE_TIMEOUT

    async def problems(self) -> list[str]:
        """What is wrong; empty when healthy."""
        found = []
        if self.gateway.shards is None and not self.gateway.ok():
            found.append("discord gateway disconnected")
        elif self.gateway.shards is not None:
            found += [
                f"discord gateway {s.line()}" for s in self.gateway.states() if not s.connected
            ]
        idle = time.time() - self.engine.last_pass
        if idle > self.scheduler_bound:
            found.append(f"scheduler has not run for {idle:.0f} s")
        if not await self._db_writable():
            found.append("database not writable")
        return found

    async def _db_writable(self) -> bool:
        """A real write (a meta row), within a bound."""
        try:
            async with asyncio.timeout(self.write_timeout):
                await self.db.set_meta("healthz", f"{time.time():.0f}")
        except Exception as exc:  # locked, read-only, disk full: all mean "not writable"
            log.warning("health check: database write failed: %r", exc)
            return False
        return True


class MetricsServer:
    """GET /metrics (Prometheus text) and GET /healthz (200 or 503 with the reasons)."""

    def __init__(self, db: Database, health: Health) -> None:
        self.collector = DatabaseCollector(db)
        self.registry = CollectorRegistry()
        self.registry.register(self.collector)  # type: ignore[arg-type]
        self.registry.register(GatewayCollector(health.gateway))  # type: ignore[arg-type]
        self.registry.register(_Forward())  # type: ignore[arg-type]
        self.health = health

    def app(self) -> web.Application:
        """The routes."""
        app = web.Application()
        app.add_routes([web.get("/metrics", self.metrics), web.get("/healthz", self.healthz)])
        return app

    async def metrics(self, _request: web.Request) -> web.Response:
        """Refresh the database figures, then render everything."""
        await self.collector.refresh()
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(self, _request: web.Request) -> web.Response:
        """200 "ok", or 503 with one problem per line; sharded, then one line per shard."""
        problems = await self.health.problems()
        lines = problems or ["ok"]
        if self.health.gateway.shards is not None:
            lines += [state.line() for state in self.health.gateway.states()]
        return web.Response(status=503 if problems else 200, text="\n".join(lines) + "\n")


@contextlib.asynccontextmanager
async def serve_metrics(
    settings: Settings, bot: discord.Client, resources: Resources
) -> AsyncIterator[MetricsServer | None]:
    """Listen on METRICS_HOST:METRICS_PORT while the bot runs; nothing when the port is unset."""
    if settings.metrics_port is None:
        yield None
        return
    db, bound = resources.db, settings.health_scheduler_seconds
    watch = GatewayWatch(bot, settings.shards)
    server = MetricsServer(db, Health(watch, resources.engine, db, bound))
    runner = web.AppRunner(server.app(), access_log=None)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, settings.metrics_host, settings.metrics_port).start()
        except OSError as exc:  # a port in use is a setting to change, not a crash
            raise SystemExit(
                f"error: cannot serve metrics on {settings.metrics_host}:{settings.metrics_port}"
                f" ({exc.strerror}); choose another METRICS_PORT or leave it empty"
            ) from None
        log.info("metrics and /healthz on port %d", settings.metrics_port)
        yield server
    finally:
        await runner.cleanup()


def check_health(settings: Settings) -> int:
    """`python -m bot health`: GET the running bot's /healthz; 0 only for 200."""
    if settings.metrics_port is None:
        print("error: METRICS_PORT is not set, so the bot serves no /healthz; set it and restart")
        return 1
    host = settings.metrics_host if settings.metrics_host not in ("0.0.0.0", "::", "") else None
    url = f"http://{host or '127.0.0.1'}:{settings.metrics_port}/healthz"
    try:
        response = httpx.get(url, timeout=HEALTH_CLI_TIMEOUT)
    except httpx.HTTPError as exc:
        print(f"unhealthy: no answer from {url} ({type(exc).__name__}); is the bot running?")
        return 1
    text = response.text.strip().replace("\n", "; ")
    print(text if response.status_code == 200 else f"unhealthy ({response.status_code}): {text}")
    return 0 if response.status_code == 200 else 1
