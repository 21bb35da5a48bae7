"""`python -m tests.bench.child ROLE CONFIG.json`: the process under measurement.

Roles: `bot` (the real bot), `sdkbot` (the usual way: zai-sdk in a thread pool), `engine` (the
bot's engine alone, for the 10,000-job figure) and `rawclient` (requests per CPU second).
A child reports through JSON lines appended to the file named by the config's `events`.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROLES = {
    "bot": "tests.bench.botproc:run_bot",
    "engine": "tests.bench.botproc:run_engine",
    "sdkbot": "tests.bench.sdkbot:run",
    "rawclient": "tests.bench.rawclient:child_main",
}
STARTED = time.time()


class Events:
    """Appends one JSON object per line; the parent polls the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def emit(self, event: str, **data: Any) -> None:
        """Write an event with the wall time it happened."""
        line = json.dumps({"event": event, "at": time.time(), **data})
        with self.path.open("a") as out:
            out.write(line + "\n")


async def until_stopped() -> None:
    """Wait for SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def resolve(role: str) -> Callable[[dict[str, Any], Events], Awaitable[None]]:
    """The coroutine function of a role (imported lazily: zai-sdk only when needed)."""
    module, name = ROLES[role].split(":")
    return getattr(importlib.import_module(module), name)


def main(argv: list[str]) -> int:
    """Run one role until it ends or is stopped."""
    role, config_path = argv
    config = json.loads(Path(config_path).read_text())
    events = Events(Path(config["events"]))
    events.emit("process_started", started=STARTED)
    asyncio.run(resolve(role)(config, events))
    events.emit("exited")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
