"""Requests per CPU second of the two clients at several concurrencies (the poll bound)."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from pydantic import SecretStr

from bot.zai import DEFAULT_TIMEOUT, ZaiClient
from tests.bench.child import Events
from tests.bench.common import Context, Figure, Table, fmt
from tests.bench.proc import child
from tests.fakes.zai import FakeZai

# (client, requests in flight, max_connections, max_keepalive_connections)
CASES: list[tuple[str, int, int, int]] = [
    ("httpx", 1, 32, 16),
    ("httpx", 8, 32, 16),
    ("httpx", 16, 32, 16),
    ("httpx", 32, 32, 16),
    ("httpx", 100, 32, 16),
    ("httpx", 32, 32, 32),
    ("httpx", 100, 32, 32),
    ("sdk", 8, 0, 0),
    ("sdk", 16, 0, 0),
]
WARMUP = 200


async def _httpx_run(config: dict[str, Any]) -> tuple[float, float]:
    """(CPU, wall) seconds of `count` polls through the bot's client at `concurrency`."""
    limits = httpx.Limits(
        max_connections=config["max_connections"],
        max_keepalive_connections=config["max_keepalive"],
    )
    async with httpx.AsyncClient(timeout=DEFAULT_TIMEOUT, limits=limits) as http:
        client = ZaiClient(http, config["base_url"], SecretStr(config["api_key"]))
        task_id, concurrency = config["task_id"], config["concurrency"]

        async def worker(count: int) -> None:
            for _ in range(count):
                await client.get_task(task_id)

        await asyncio.gather(*(worker(WARMUP // concurrency + 1) for _ in range(concurrency)))
        cpu, wall = time.process_time(), time.perf_counter()
        per_worker = config["count"] // concurrency
        await asyncio.gather(*(worker(per_worker) for _ in range(concurrency)))
        return time.process_time() - cpu, time.perf_counter() - wall


def _sdk_run(config: dict[str, Any]) -> tuple[float, float]:
    """(CPU, wall) seconds of `count` polls through zai-sdk in `concurrency` threads."""
    from zai import ZaiClient as SdkClient  # only this baseline needs zai-sdk

    sdk = SdkClient(api_key=config["api_key"], base_url=config["base_url"])
    task_id, concurrency = config["task_id"], config["concurrency"]
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda _: sdk.videos.retrieve_videos_result(task_id), range(WARMUP)))
        cpu, wall = time.process_time(), time.perf_counter()
        list(pool.map(lambda _: sdk.videos.retrieve_videos_result(task_id), range(config["count"])))
        return time.process_time() - cpu, time.perf_counter() - wall


async def child_main(config: dict[str, Any], events: Events) -> None:
    """The child: one measurement, reported as a `result` event."""
    if config["kind"] == "sdk":
        cpu, wall = await asyncio.to_thread(_sdk_run, config)
    else:
        cpu, wall = await _httpx_run(config)
    events.emit("result", cpu=cpu, wall=wall, count=config["count"])


async def _held_task(fake: FakeZai) -> str:
    """Create one task that stays PROCESSING; its id."""
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            f"{fake.base_url}/videos/generations",
            json={"model": "cogvideox-3", "prompt": "a held task"},
            headers={"Authorization": f"Bearer {fake.api_key}"},
        )
    return str(answer.json()["id"])


async def requests_figure(ctx: Context) -> Figure:
    """Requests per CPU second of the bot's client and of zai-sdk against the fake."""
    count = 1_000 if ctx.quick else 4_000
    table = Table(
        [
            "client",
            "in flight",
            "pool (max / keep-alive)",
            "req per CPU-s",
            "req per s",
            "CPU per req",
        ]
    )
    raw = []
    async with FakeZai(hold_all=True) as fake:
        task_id = await _held_task(fake)
        for kind, concurrency, max_conn, keepalive in CASES:
            config = {
                "kind": kind,
                "concurrency": concurrency,
                "max_connections": max_conn,
                "max_keepalive": keepalive,
                "count": count,
                "base_url": fake.base_url,
                "api_key": fake.api_key,
                "task_id": task_id,
            }
            async with child("rawclient", config, ctx.dir(f"raw-{kind}-{concurrency}")) as proc:
                result = await proc.event("result", timeout=300)
            per_cpu, per_wall = count / result["cpu"], count / result["wall"]
            label = "bot (httpx.AsyncClient)" if kind == "httpx" else "zai-sdk (threads)"
            pool = f"{max_conn} / {keepalive}" if kind == "httpx" else "SDK default"
            table.rows.append(
                [
                    label,
                    str(concurrency),
                    pool,
                    fmt(per_cpu, 0),
                    fmt(per_wall, 0),
                    fmt(1000 * result["cpu"] / count, 2) + " ms",
                ]
            )
            raw.append({**config, **result, "per_cpu_second": per_cpu})
            if kind == "sdk" and concurrency == 16:
                ctx.cache["sdk_cpu_per_request"] = result["cpu"] / count
    method = (
        f"{count} polls (GET /async-result of one held task) per row, after {WARMUP} to warm "
        "up, each client in its own process against the fake Z.AI (served by the benchmark's "
        "process). The bot's row is `bot.zai.ZaiClient.get_task` over one `httpx.AsyncClient` "
        "(the pool `bot/app.py` opens is 32 connections, 16 kept alive); zai-sdk's is "
        "`videos.retrieve_videos_result` from a thread pool. CPU is the client process's "
        "(all threads)."
    )
    best = max((r for r in raw if r["kind"] == "httpx"), key=lambda r: r["per_cpu_second"])
    note = (
        f"The bot's client does the most requests per CPU second at {best['concurrency']} in "
        "flight; past 16 in flight the cost of a request roughly doubles (httpx's pool work "
        "grows with the requests waiting in it), and keeping more connections alive does not "
        "help. So polls in flight stay bounded: `EngineConfig.poll_concurrency` = 8, which is "
        "also more than the bot ever needs (a poll takes milliseconds; 8 in flight carry "
        "hundreds of polls a second). Submits are not bounded this way (scale figure)."
    )
    return Figure(
        "requests",
        "Raw client cost: requests per CPU second",
        method,
        [table],
        notes=[note],
        raw={"rows": raw},
    )
