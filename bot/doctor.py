"""`python -m bot doctor`: check settings, database and the Z.AI key, one verdict per check."""

from __future__ import annotations

import httpx
from pydantic import ValidationError

from bot.errors import ProviderError
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
    return 0 if ok else 1


async def _check_database(settings: Settings) -> bool:
    """The database opens and migrates."""
    try:
        db = await Database.open(settings.database_path)
    except Exception as exc:  # any failure is the verdict here
        return _say(False, "database", f"{settings.database_path}: {exc}")
    version = await db.migrate()
    await db.close()
    return _say(True, "database", f"{settings.database_path} at schema version {version}")


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
