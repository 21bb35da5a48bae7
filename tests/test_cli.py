"""`python -m bot` and `python -m bot doctor` as a user runs them."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

from tests.fakes.discord import FakeDiscord, Perm
from tests.fakes.zai import FakeZai

ROOT = Path(__file__).resolve().parent.parent


async def run_bot(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    """Run the bot's entry point in a clean environment; return (code, stdout, stderr)."""
    base = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=cwd,
        env={**base, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_missing_settings_give_one_line_each_and_no_traceback(tmp_path: Path) -> None:
    code, _, err = await run_bot([], tmp_path, {"QUOTA_DAILY_CREDITS": "many"})
    assert code != 0
    assert "Traceback" not in err
    assert "DISCORD_TOKEN is not set" in err
    assert "ZAI_API_KEY is not set" in err
    assert "QUOTA_DAILY_CREDITS is invalid" in err


async def test_doctor_reports_missing_key(tmp_path: Path) -> None:
    code, out, err = await run_bot(["doctor"], tmp_path, {"DISCORD_TOKEN": "x" * 20})
    assert code != 0 and "Traceback" not in out + err
    assert "[FAIL] settings: ZAI_API_KEY is not set" in out


async def test_doctor_checks_database_and_key(tmp_path: Path) -> None:
    async with FakeZai() as fake, FakeDiscord() as discord:
        env = {
            "DISCORD_TOKEN": discord.token,
            "DISCORD_API_BASE": discord.api_base,
            "ZAI_BASE_URL": fake.base_url,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'bot.db'}",
        }
        good = await run_bot(["doctor"], tmp_path, {**env, "ZAI_API_KEY": fake.api_key})
        bad = await run_bot(["doctor"], tmp_path, {**env, "ZAI_API_KEY": "refused-key-123"})
    assert good[0] == 0, good
    assert "[ok] database" in good[1] and "[ok] Z.AI key" in good[1]
    assert bad[0] != 0 and "[FAIL] Z.AI key: auth" in bad[1]
    assert "refused-key-123" not in bad[1] + bad[2]


async def test_doctor_checks_discord_token_and_guild_permissions(tmp_path: Path) -> None:
    async with FakeZai() as fake, FakeDiscord() as discord:
        ready = discord.add_guild(name="Ready")
        lacking = discord.add_guild(name="Lacking", bot_permissions=0)
        lacking.roles[lacking.id].permissions = int(
            Perm.VIEW_CHANNEL | Perm.SEND_MESSAGES_IN_THREADS
        )
        env = {
            "DISCORD_TOKEN": discord.token,
            "DISCORD_API_BASE": discord.api_base,
            "ZAI_API_KEY": fake.api_key,
            "ZAI_BASE_URL": fake.base_url,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'bot.db'}",
        }
        runs = {
            name: await run_bot(["doctor"], tmp_path, {**env, **extra})
            for name, extra in {
                "good": {"DEV_GUILD_ID": str(ready.id)},
                "lacking": {"DEV_GUILD_ID": str(lacking.id)},
                "unknown": {"DEV_GUILD_ID": "123456789012345678"},
                "bad_token": {"DISCORD_TOKEN": "not-the-discord-token-456"},
            }.items()
        }
    code, out, _ = runs["good"]
    assert code == 0, out
    assert f"[ok] Discord token: accepted: logged in as {discord.bot_user.username}" in out
    assert f"[ok] Discord guild {ready.id}: Ready: the bot has every permission it needs" in out
    code, out, _ = runs["lacking"]
    assert code == 1 and f"[FAIL] Discord guild {lacking.id}: missing permissions: " in out
    assert "Send Messages, Embed Links, Attach Files, Read Message History" in out
    assert "View Channels" not in out
    code, out, _ = runs["unknown"]
    assert code == 1 and "[FAIL] Discord guild 123456789012345678: not found (404)" in out
    code, out, err = runs["bad_token"]
    assert code == 1 and "[FAIL] Discord token: refused (401)" in out
    assert "[ok] Z.AI key" in out and "Discord guild" not in out
    assert "not-the-discord-token-456" not in out + err


async def test_metrics_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            "DISCORD_TOKEN": "discord-token-for-metrics",
            "ZAI_API_KEY": "zai-key-for-metrics",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'bot.db'}",
            "METRICS_PORT": str(port),
        }
        code, _, err = await run_bot([], tmp_path, env)
    assert code == 1 and "Traceback" not in err
    assert f"error: cannot serve metrics on 127.0.0.1:{port}" in err and "METRICS_PORT" in err


async def test_doctor_checks_each_configured_gateway_key(tmp_path: Path) -> None:
    from tests.fakes.geekai import FakeGeekai
    from tests.fakes.newapi import FakeNewApi

    async with (
        FakeZai() as fake,
        FakeDiscord() as discord,
        FakeNewApi() as gateway,
        FakeGeekai() as geekai,
    ):
        env = {
            "DISCORD_TOKEN": discord.token,
            "DISCORD_API_BASE": discord.api_base,
            "ZAI_BASE_URL": fake.base_url,
            "ZAI_API_KEY": fake.api_key,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'bot.db'}",
            "GATEWAY_BASE_URL": gateway.base_url,
            "GATEWAY_API_KEY": gateway.api_key,
            "GEEKAI_BASE_URL": geekai.base_url,
        }
        only_z = await run_bot(["doctor"], tmp_path, {**env, "GATEWAY_API_KEY": ""})
        good = await run_bot(["doctor"], tmp_path, {**env, "GEEKAI_API_KEY": geekai.api_key})
        bad = await run_bot(["doctor"], tmp_path, {**env, "GEEKAI_API_KEY": "refused-geek-9"})
    assert only_z[0] == 0 and "gateway key" not in only_z[1] and "geekai key" not in only_z[1]
    assert good[0] == 0, good
    assert "[ok] gateway key: accepted; offers viduq3p-540p" in good[1]
    assert "[ok] geekai key: accepted" in good[1]
    assert bad[0] != 0 and "[FAIL] geekai key: GEEKAI_API_KEY: auth" in bad[1]
    assert "[ok] gateway key" in bad[1]
    assert "refused-geek-9" not in bad[1] + bad[2]
