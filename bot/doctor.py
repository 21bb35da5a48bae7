"""`python -m bot doctor`: settings, database, Z.AI key, Discord token and guild permissions."""

from __future__ import annotations

import enum
from typing import Any

import httpx
from pydantic import ValidationError

from bot.errors import ProviderError
from bot.providers.routing import build_providers, check_keys
from bot.settings import Settings, describe_errors
from bot.zai import DEFAULT_TIMEOUT, ZaiClient
from storage.db import Database


def _say(ok: bool, what: str, detail: str = "") -> bool:
    """Print one verdict line."""
    print(f"[{'ok' if ok else 'FAIL'}] {what}{': ' + detail if detail else ''}")
    return ok


async def doctor() -> int:
    """Run every check; exit status 0 only if all pass."""
    try:
        settings = Settings()  # type: ignore[call-arg]
    except ValidationError as exc:
        for line in describe_errors(exc):
            _say(False, "settings", line)
        return 1
    _say(True, "settings", "all required settings are present")
    ok = await _check_database(settings)
    ok = await _check_key(settings) and ok
    ok = await _check_gateway_keys(settings) and ok
    ok = await _check_discord(settings) and ok
    return 0 if ok else 1


async def _check_database(settings: Settings) -> bool:
    """The database opens, migrates and takes a write (PostgreSQL: the server, user, rights)."""
    where = settings.database_label
    try:
        db = await Database.open(settings.database)
        try:
            version = await db.migrate()
            await db.set_meta("doctor", "ok")  # a real write: read-only rights fail here
        finally:
            await db.close()
    except Exception as exc:  # any failure is the verdict here
        detail = str(exc)
        for secret in settings.secrets():
            detail = detail.replace(secret, "***")
        return _say(False, "database", f"{where}: {detail}")
    return _say(True, "database", f"{where} ({db.backend}) at schema version {version}")


async def _check_key(settings: Settings) -> bool:
    """One cheap authenticated call to Z.AI."""
    async with httpx.AsyncClient(timeout=DEFAULT_TIMEOUT) as http:
        client = ZaiClient(http, settings.zai_base_url, settings.zai_api_key)
        try:
            await client.check_key()
        except ProviderError as exc:
            return _say(
                False, "Z.AI key", f"{exc.kind.value}: {exc.message} (at {settings.zai_base_url})"
            )
    return _say(True, "Z.AI key", f"accepted by {settings.zai_base_url}")


async def _check_gateway_keys(settings: Settings) -> bool:
    """Each configured gateway key (GATEWAY_API_KEY, GEEKAI_API_KEY): one cheap call each."""
    async with httpx.AsyncClient(timeout=DEFAULT_TIMEOUT) as http:
        zai = ZaiClient(http, settings.zai_base_url, settings.zai_api_key)
        gateways = build_providers(settings, http, zai)[1:]  # Z.AI is checked above
        verdicts = await check_keys(gateways)
    ok = True
    for provider in gateways:
        problem = verdicts[provider.name]
        what = f"{provider.name.value} key"
        offered = ", ".join(provider.models)
        ok = _say(problem is None, what, problem or f"accepted; offers {offered}") and ok
    return ok


class Permission(enum.IntFlag):
    """The bot permissions the README asks for when inviting it (Discord's bit numbers)."""

    VIEW_CHANNELS = 1 << 10
    SEND_MESSAGES = 1 << 11
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    SEND_MESSAGES_IN_THREADS = 1 << 38


ADMINISTRATOR = 1 << 3
NEEDED = Permission(sum(Permission))


async def _check_discord(settings: Settings) -> bool:
    """GET /users/@me with the token; then the bot's permissions in DEV_GUILD_ID, if set."""
    base = settings.discord_api_base
    headers = {"Authorization": f"Bot {settings.discord_token.get_secret_value()}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=DEFAULT_TIMEOUT) as http:
        try:
            me = await _get(http, "/users/@me")
        except DiscordCheckError as exc:
            return _say(False, "Discord token", f"{exc} (at {base})")
        _say(True, "Discord token", f"accepted: logged in as {me.get('username')} ({me['id']})")
        if settings.dev_guild_id is None:
            return _say(True, "Discord guild", "DEV_GUILD_ID not set; no server to check")
        return await _check_guild(http, settings.dev_guild_id, int(me["id"]))


class DiscordCheckError(Exception):
    """A Discord answer that fails a check, in words."""


async def _get(http: httpx.AsyncClient, path: str) -> Any:
    """GET a Discord REST path; errors become one sentence (never the token)."""
    try:
        response = await http.get(path)
    except httpx.HTTPError as exc:
        raise DiscordCheckError(f"cannot reach Discord: {type(exc).__name__}") from None
    if response.status_code == 401:
        raise DiscordCheckError("refused (401): reset the token in the developer portal")
    if response.status_code == 404:
        raise DiscordCheckError("not found (404)")
    if response.status_code != 200:
        raise DiscordCheckError(f"HTTP {response.status_code}")
    return response.json()


async def _check_guild(http: httpx.AsyncClient, guild_id: int, bot_id: int) -> bool:
    """The bot is a member of the guild and its roles grant every needed permission."""
    what = f"Discord guild {guild_id}"
    try:
        guild = await _get(http, f"/guilds/{guild_id}")
        member = await _get(http, f"/guilds/{guild_id}/members/{bot_id}")
    except DiscordCheckError as exc:
        return _say(False, what, f"{exc}: is the bot invited there (README, step 2)?")
    granted = _permissions(guild, member, bot_id)
    missing = [p.name.replace("_", " ").title() for p in Permission if not granted & p]
    if missing:
        return _say(False, what, "missing permissions: " + ", ".join(missing) + " (re-invite)")
    return _say(True, what, f"{guild.get('name')}: the bot has every permission it needs")


def _permissions(guild: dict[str, Any], member: dict[str, Any], bot_id: int) -> int:
    """Server-wide permissions: @everyone plus the member's roles; owner or admin: all."""
    if str(guild.get("owner_id")) == str(bot_id):
        return int(NEEDED)
    roles = {str(r["id"]): int(r["permissions"]) for r in guild.get("roles", [])}
    granted = roles.get(str(guild["id"]), 0)
    for role_id in member.get("roles", []):
        granted |= roles.get(str(role_id), 0)
    return int(NEEDED) if granted & ADMINISTRATOR else granted
