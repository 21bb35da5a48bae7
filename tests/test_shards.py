"""Shards (issue 16): SHARD_COUNT / SHARD_IDS, end to end through the fake Discord's gateway.

The fake serves shards like Discord: a guild's events (GUILD_CREATE, INTERACTION_CREATE,
MESSAGE_CREATE ...) go only to the session whose shard is (guild_id >> 22) % count, DMs to
shard 0, and an IDENTIFY with an invalid shard is closed with 4010 (4011 when a session would
hold too many guilds). The real bot runs in this process (two bots: two sessions, two
databases) or as `python -m bot`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from bot.metrics import serve_metrics
from bot.settings import Settings, describe_errors
from storage.states import AT_PROVIDER
from tests.fakes.discord import FakeDiscord, FakeGuild, FakeInteraction, FakeUser, Intent, Perm
from tests.fakes.discord_validation import SPEC_URI, _registry
from tests.fakes.media import make_png
from tests.fakes.zai import FakeZai
from tests.harness import Harness, make_settings
from tests.procs import bot_env, query
from tests.test_operations import free_port, samples, value
from tests.util import eventually

COUNT = 2
QUESTION = "Which model should animate"


@dataclass
class World:
    """The fakes, one guild on each of two shards, and the bots started on them."""

    discord: FakeDiscord
    zai: FakeZai
    guilds: list[FakeGuild]  # guilds[i] is on shard i of COUNT
    alice: FakeUser
    bob: FakeUser
    mod: FakeUser
    tmp: Path
    stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    async def start(self, db: str, shard_ids: str, guild: int = 0, **settings: Any) -> Harness:
        """A bot with SHARD_COUNT=2 and these SHARD_IDS on database `db`; its harness guild."""
        db_path = self.tmp / db / "bot.db"
        config = make_settings(
            db_path, self.discord, self.zai, shard_count=COUNT, shard_ids=shard_ids, **settings
        )
        h = Harness(
            self.discord, self.zai, self.guilds[guild], self.alice, self.bob, self.mod,
            db_path, config,
        )  # fmt: skip
        await h.start()
        self.stack.push_async_callback(h.stop)
        return h


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    """Fakes up, no bot yet; every bot stopped after."""
    async with FakeDiscord() as fake_discord, FakeZai() as fake_zai:
        alice, bob, mod = (fake_discord.add_user(n) for n in ("alice", "bob", "mod"))
        members = [alice, bob, (mod, Perm.MANAGE_GUILD)]
        guilds = [
            fake_discord.add_guild_on_shard(
                i, COUNT, name=f"Shard {i}", channels=["general", "mods"], members=members
            )
            for i in range(COUNT)
        ]
        world = World(fake_discord, fake_zai, guilds, alice, bob, mod, tmp_path)
        with fake_discord.patch_discord_py():
            async with world.stack:
                yield world
        assert fake_discord.server_errors == []
        assert fake_discord.invalid_requests == [], fake_discord.invalid_requests


def arrived(world: World, shard: int, event: str) -> list[dict[str, Any]]:
    """The `event` dispatches the fake sent to shard `shard`'s session."""
    return [d for t, d in world.discord.gateway.events_of((shard, COUNT)) if t == event]


def interaction_ids(world: World, shard: int) -> set[str]:
    """Ids of the interactions dispatched to a shard."""
    return {d["id"] for d in arrived(world, shard, "INTERACTION_CREATE")}


async def ask(world: World, h: Harness, prompt: str) -> FakeInteraction:
    """alice asks for a video in the harness guild's #general."""
    return await world.discord.slash(
        h.guild, h.channel, world.alice, "video", subcommand="text", options={"prompt": prompt}
    )


def job_guilds(h: Harness) -> list[int]:
    """The guild of every job in the bot's database."""
    return [r["guild_id"] for r in query(h.db_path, "SELECT guild_id FROM jobs ORDER BY id")]


# --- settings ----------------------------------------------------------------------------------


def shard_settings(**env: str) -> Settings:
    """Settings from these environment values (and the two required secrets)."""
    return Settings(_env_file=None, discord_token="t", zai_api_key="k", **env)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("env", "shards"),
    [
        ({}, None),
        ({"shard_count": "", "shard_ids": ""}, None),
        ({"shard_count": "3"}, (0, 1, 2)),
        ({"shard_count": "4", "shard_ids": " 3, 1 "}, (3, 1)),
    ],
)
def test_shard_settings(env: dict[str, str], shards: tuple[int, ...] | None) -> None:
    assert shard_settings(**env).shards == shards


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"shard_ids": "0"}, "SHARD_IDS is invalid: Value error, needs SHARD_COUNT"),
        ({"shard_count": "2", "shard_ids": "0,2,3"}, "shards 2, 3 are outside 0..1"),
        ({"shard_count": "2", "shard_ids": "-1"}, "shard -1 is outside 0..1"),
        ({"shard_count": "3", "shard_ids": "1,1"}, "shard 1 is listed twice"),
        ({"shard_count": "2", "shard_ids": "0;1"}, "write the ids as a comma list, e.g. 0,1"),
        ({"shard_count": "0"}, "SHARD_COUNT is invalid: Input should be greater than or equal"),
    ],
)
def test_shard_settings_refused_saying_what_to_do(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError) as refused:
        shard_settings(**env)
    [line] = describe_errors(refused.value)
    assert message in line


# --- two processes, one shard each -----------------------------------------------------------


async def test_each_interaction_reaches_only_its_shards_bot(world: World) -> None:
    first, second = await world.start("one", "0"), await world.start("two", "1", guild=1)
    await world.discord.wait_shards_ready(COUNT)
    assert sorted(i["shard"] for i in world.discord.gateway.identifies) == [[0, 2], [1, 2]]
    g0, g1 = world.guilds
    assert first.bot is not None and second.bot is not None
    assert first.bot.get_guild(g0.id) and first.bot.get_guild(g1.id) is None
    assert second.bot.get_guild(g1.id) and second.bot.get_guild(g0.id) is None

    for shard, h in enumerate((first, second)):
        interaction = await ask(world, h, f"a lighthouse on shard {shard}")
        result = await h.result_for(world.alice)
        assert result.channel_id == h.channel.id and "video-" in result.attachments[0][0]
        assert str(interaction.id) in interaction_ids(world, shard)
        assert str(interaction.id) not in interaction_ids(world, 1 - shard)
    assert job_guilds(first) == [g0.id] and job_guilds(second) == [g1.id]


async def test_a_mention_and_its_button_reach_only_their_shards_bot(world: World) -> None:
    """MESSAGE_CREATE goes to shard 1 only; the question's in-memory view answers there."""
    first, second = await world.start("one", "0"), await world.start("two", "1", guild=1)
    await world.discord.wait_shards_ready(COUNT)
    fake, me = world.discord, world.discord.bot_user
    picture = fake.add_attachment("cat.png", make_png(320, 240), "image/png")
    sent = await fake.user_message(
        second.guild, second.channel, world.alice, f"<@{me.id}> go",
        attachments=[picture], mentions=[me],
    )  # fmt: skip
    question = await fake.wait_for_message(
        lambda m: m.author_id == me.id and QUESTION in m.content and bool(m.components),
        channel=second.channel,
    )
    clicked = await fake.click(second.guild, second.channel, world.alice, question, "animate:go")
    await second.result_for(world.alice)
    created = {d["id"] for d in arrived(world, 1, "MESSAGE_CREATE")}
    assert str(sent.id) in created
    assert str(sent.id) not in {d["id"] for d in arrived(world, 0, "MESSAGE_CREATE")}
    assert str(clicked.id) in interaction_ids(world, 1) - interaction_ids(world, 0)
    assert job_guilds(second) == [second.guild.id] and job_guilds(first) == []


# --- one process, both shards ----------------------------------------------------------------


async def test_one_process_with_both_shards_gets_both(world: World) -> None:
    h = await world.start("both", "0,1")
    await world.discord.wait_shards_ready(COUNT)
    assert h.bot is not None and h.bot.shard_count == COUNT and set(h.bot.shards) == {0, 1}
    g0, g1 = world.guilds
    await ask(world, h, "on shard zero")
    await h.result_for(world.alice)
    await world.discord.slash(
        g1, g1.channel("general"), world.bob, "video", subcommand="text",
        options={"prompt": "on shard one"},
    )  # fmt: skip
    bot_id = world.discord.bot_user.id
    await world.discord.wait_for_message(
        lambda m: m.author_id == bot_id and m.content.startswith(f"<@{world.bob.id}> your video"),
        channel=g1.channel("general"),
        timeout=15,
    )
    assert sorted(job_guilds(h)) == sorted([g0.id, g1.id])


# --- delivery from a process without the channel's shard ------------------------------------


async def test_a_process_without_the_channels_shard_delivers_through_rest(world: World) -> None:
    """Shard 0's process takes the request and stops; shard 1's, on the same database,
    finishes the job and posts into shard 0's channel, which it has never seen."""
    world.zai.hold_all = True
    before = await world.start("shared", "0")
    await ask(world, before, "handed over")
    await eventually(
        lambda: any(
            r["state"] in AT_PROVIDER for r in query(before.db_path, "SELECT state FROM jobs")
        ),
        what="the job at the provider",
    )
    await before.stop()
    with sqlite3.connect(before.db_path) as conn:  # a row from before the limit was recorded
        conn.execute("UPDATE jobs SET upload_limit = NULL")
    conn.close()
    after = await world.start("shared", "1", guild=0)
    assert after.bot is not None and after.bot.get_guild(before.guild.id) is None
    world.zai.finish_all()
    result = await after.result_for(world.alice)
    assert result.channel_id == before.guild.channel("general").id
    posted = [m for m in after.bot_messages() if "your video is ready" in m.content]
    assert posted == [result]
    assert ("GET", f"/guilds/{before.guild.id}") in {
        (r.method, r.path) for r in world.discord.requests
    }
    [row] = query(after.db_path, "SELECT state, result_message_id FROM jobs")
    assert (row["state"], row["result_message_id"]) == ("delivered", result.id)


# --- health and metrics per shard -------------------------------------------------------------


async def test_healthz_and_metrics_report_each_shard(world: World) -> None:
    world.discord.heartbeat_interval_ms = 50  # heartbeats (and so latencies) within the test
    port = free_port()
    h = await world.start("health", "0,1", metrics_port=port)
    assert h.bot is not None and h.resources is not None
    url = f"http://127.0.0.1:{port}"
    async with serve_metrics(h.settings, h.bot, h.resources), httpx.AsyncClient() as http:

        async def healthz() -> httpx.Response | None:
            answer = await http.get(f"{url}/healthz")
            return answer if "unknown" not in answer.text else None

        answer = await eventually(healthz, what="both shards' latencies")
        lines = answer.text.splitlines()
        assert answer.status_code == 200 and lines[0] == "ok" and len(lines) == 3
        assert all(
            line.startswith(f"shard {i}: connected, latency ")
            for i, line in zip((0, 1), lines[1:], strict=True)
        )
        page = samples((await http.get(f"{url}/metrics")).text)
        assert value(page, "videobot_gateway_connected", shard="0") == 1
        assert value(page, "videobot_gateway_connected", shard="1") == 1
        assert 0 <= value(page, "videobot_gateway_latency_seconds", shard="1") < 5

        h.bot.dispatch("shard_disconnect", 1)  # what discord.py dispatches when shard 1 drops
        answer = await http.get(f"{url}/healthz")
        assert answer.status_code == 503
        assert "discord gateway shard 1: disconnected" in answer.text
        assert "shard 0: connected" in answer.text
        page = samples((await http.get(f"{url}/metrics")).text)
        assert value(page, "videobot_gateway_connected", shard="1") == 0
        h.bot.dispatch("shard_resumed", 1)
        assert (await http.get(f"{url}/healthz")).status_code == 200


# --- Discord refusing the shards ------------------------------------------------------------


async def test_shards_discord_refuses_end_the_process_saying_what_to_change(
    world: World,
) -> None:
    world.discord.max_guilds_per_session = 0  # shard 0 holds a guild: "sharding required"
    env = bot_env(world.discord, world.zai, world.tmp / "bot.db", SHARD_COUNT="2", SHARD_IDS="0")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", cwd=world.tmp, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode()
    assert proc.returncode == 1, text
    assert "error: Discord requires more shards" in text and "raise SHARD_COUNT" in text
    assert "SHARD_COUNT=2" in text and "Traceback" not in text


# --- the fake gateway itself ----------------------------------------------------------------


async def identify(fake: FakeDiscord, shard: Any, intents: int = 0) -> aiohttp.WSMessage:
    """Open a raw gateway connection, IDENTIFY with `shard`; the first frame after HELLO."""
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{fake.gateway_url}?v=10&encoding=json") as ws:
            hello = await ws.receive_json(timeout=5)
            assert hello["op"] == 10
            data: dict[str, Any] = {
                "token": fake.token,
                "intents": intents,
                "properties": {"os": "linux", "browser": "test", "device": "test"},
            }
            if shard is not None:
                data["shard"] = shard
            await ws.send_json({"op": 2, "d": data})
            return await ws.receive(timeout=5)


@pytest.mark.parametrize("shard", [[2, 2], [-1, 2], [0, 0], [0], ["0", "2"], "0,2"])
async def test_fake_closes_an_invalid_shard_with_4010(world: World, shard: Any) -> None:
    message = await identify(world.discord, shard)
    assert message.type is aiohttp.WSMsgType.CLOSE and message.data == 4010


async def test_fake_requires_sharding_past_the_guild_limit_with_4011(world: World) -> None:
    world.discord.max_guilds_per_session = 1  # two guilds: one session would hold both
    refused = await identify(world.discord, None)
    assert refused.type is aiohttp.WSMsgType.CLOSE and refused.data == 4011
    ready = json.loads((await identify(world.discord, [1, 2])).data)
    assert ready["t"] == "READY" and ready["d"]["shard"] == [1, 2]
    assert [g["id"] for g in ready["d"]["guilds"]] == [str(world.guilds[1].id)]


async def test_fake_gateway_bot_recommends_a_shard_count(world: World) -> None:
    fake = world.discord
    fake.guilds_per_shard = 1
    fake.add_guild(name="third")
    async with httpx.AsyncClient() as http:
        answer = await http.get(
            f"{fake.api_base}/gateway/bot", headers={"Authorization": f"Bot {fake.token}"}
        )
    body = answer.json()
    schema = {"$ref": SPEC_URI + "#/components/schemas/GatewayBotResponse"}
    assert list(Draft202012Validator(schema, registry=_registry()).iter_errors(body)) == []
    assert body["shards"] == 3 and body["url"] == fake.gateway_url


async def test_fake_sends_guild_messages_to_their_shard_and_dms_to_shard_0(world: World) -> None:
    """Two raw sessions, one per shard, with the message intents."""
    fake, g1 = world.discord, world.guilds[1]
    intents = int(Intent.GUILDS | Intent.GUILD_MESSAGES | Intent.DIRECT_MESSAGES)
    async with aiohttp.ClientSession() as http, contextlib.AsyncExitStack() as stack:
        for shard in range(COUNT):
            ws = await stack.enter_async_context(
                http.ws_connect(f"{fake.gateway_url}?v=10&encoding=json")
            )
            await ws.receive_json(timeout=5)
            await ws.send_json(
                {"op": 2, "d": {"token": fake.token, "intents": intents, "shard": [shard, COUNT],
                                "properties": {"os": "linux", "browser": "t", "device": "t"}}}
            )  # fmt: skip
        await fake.wait_shards_ready(COUNT)
        in_guild = await fake.user_message(g1, g1.channel("general"), world.alice, "hello")
        in_dm = await fake.user_message(None, fake.dm_channel(world.alice), world.alice, "psst")
        shard_of_message = {
            shard: {d["id"] for d in arrived(world, shard, "MESSAGE_CREATE")}
            for shard in range(COUNT)
        }
        guilds_of = {
            shard: [d["id"] for d in arrived(world, shard, "GUILD_CREATE")]
            for shard in range(COUNT)
        }
    assert shard_of_message == {0: {str(in_dm.id)}, 1: {str(in_guild.id)}}
    assert guilds_of == {shard: [str(world.guilds[shard].id)] for shard in range(COUNT)}
