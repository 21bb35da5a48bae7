"""Test helpers: wait on conditions with a deadline (never sleep to synchronise)."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from storage.rows import NewJob

Condition = Callable[[], Any] | Callable[[], Awaitable[Any]]


async def eventually(
    condition: Condition, *, timeout: float = 10.0, what: str = "condition"
) -> Any:
    """Re-check `condition` until it returns something truthy; fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


def reason(text: str | None) -> str:
    """A job's stored reason as an en-US member reads it (catalog messages rendered)."""
    from cogs.common import stored_text

    return stored_text("en-US", text, 2000)


def text_job(user: int, guild: int, channel: int, **fields: Any) -> NewJob:
    """A text job of cost 1 as a front end creates it (`fields` override any column)."""
    values: dict[str, Any] = {
        "guild_id": guild,
        "channel_id": channel,
        "user_id": user,
        "model": "cogvideox-3",
        "mode": "text",
        "prompt": "a cat",
        "options": {},
        "origin": "test",
        "cost": 1,
        "request_id": uuid.uuid4().hex,
    }
    return NewJob(**(values | fields))
