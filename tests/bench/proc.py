"""Child processes of the benchmark and what /proc says about them (CPU time, memory)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from tests.bench.common import ROOT

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
START_TIMEOUT = 60.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads (from /proc/<pid>/stat)."""
    return cpu_seconds_of(Path(f"/proc/{pid}/stat"))


def cpu_seconds_of(stat: Path) -> float:
    """User + system CPU seconds from a /proc stat file (a process's or one thread's)."""
    raw = stat.read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def status_kib(pid: int, name: str) -> int:
    """A size line of /proc/<pid>/status (VmRSS, VmHWM) in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1])
    raise KeyError(name)


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux clear_refs 5); False where not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class Child:
    """A `python -m tests.bench.child ROLE CONFIG` process; it reports through a JSONL file."""

    def __init__(self, proc: asyncio.subprocess.Process, events: Path, log: Path) -> None:
        self.proc = proc
        self.events_path = events
        self.log_path = log

    @property
    def pid(self) -> int:
        """The process id."""
        return self.proc.pid

    def cpu(self) -> float:
        """CPU seconds used so far."""
        return cpu_seconds(self.pid)

    def rss_kib(self) -> int:
        """Resident memory now."""
        return status_kib(self.pid, "VmRSS")

    def peak_kib(self) -> int:
        """Peak resident memory (since start or the last reset)."""
        return status_kib(self.pid, "VmHWM")

    def events(self) -> list[dict[str, Any]]:
        """Every event the child wrote so far."""
        if not self.events_path.exists():
            return []
        lines = self.events_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.endswith("}")]

    async def event(self, name: str, timeout: float = START_TIMEOUT) -> dict[str, Any]:
        """Wait for the child's first event called `name`; fail with its log if it died."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events():
                if event.get("event") == name:
                    return event
            if self.proc.returncode is not None:
                raise RuntimeError(f"child exited ({self.proc.returncode}):\n{self.tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {name!r} event from the child:\n{self.tail()}")
            await asyncio.sleep(0.02)

    def tail(self, lines: int = 30) -> str:
        """The end of the child's log."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    async def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (a clean shutdown), SIGKILL if it does not end in time."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                self.proc.kill()
        return await self.proc.wait()


async def start_child(role: str, config: dict[str, Any], workdir: Path) -> Child:
    """Start a child with its config written next to its log and events files."""
    workdir.mkdir(parents=True, exist_ok=True)
    events, log = workdir / f"{role}.events.jsonl", workdir / f"{role}.log"
    events.unlink(missing_ok=True)
    config_path = workdir / f"{role}.config.json"
    config_path.write_text(json.dumps({**config, "events": str(events)}))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "LANG": "C.UTF-8",
        "HOME": os.environ.get("HOME", "/tmp"),
    }
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.bench.child",
            role,
            str(config_path),
            cwd=workdir,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )
    return Child(proc, events, log)


@contextlib.asynccontextmanager
async def child(role: str, config: dict[str, Any], workdir: Path) -> AsyncIterator[Child]:
    """A child for the duration of a block (stopped cleanly after)."""
    running = await start_child(role, config, workdir)
    try:
        yield running
    finally:
        await running.stop()


class Sampler:
    """Samples a process's RSS every few milliseconds in the background; keeps the maximum."""

    def __init__(self, pid: int, every: float = 0.005) -> None:
        self.pid = pid
        self.every = every
        self.max_kib = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Sampler:
        """Start sampling."""
        self.max_kib = status_kib(self.pid, "VmRSS")
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *_exc: object) -> None:
        """Stop sampling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        """The sampling loop."""
        while True:
            with contextlib.suppress(OSError, KeyError):
                self.max_kib = max(self.max_kib, status_kib(self.pid, "VmRSS"))
            await asyncio.sleep(self.every)
