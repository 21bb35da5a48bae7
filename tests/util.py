"""Test helpers: wait on conditions with a deadline (never sleep to synchronise)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

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
