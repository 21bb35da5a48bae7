"""The provider interface the scheduler talks to: submit a request, read a task's state."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol


class TaskStatus(StrEnum):
    """A provider task's state, as the scheduler sees it."""

    PROCESSING = "PROCESSING"
    SUCCESS = "SUCCESS"
    FAIL = "FAIL"


@dataclass(frozen=True)
class TaskState:
    """One poll's answer."""

    status: TaskStatus
    video_url: str | None = None
    cover_url: str | None = None
    message: str | None = None
    progress: int | None = None  # 0-100 where the provider reports it (gateways do, Z.AI not)


class VideoProvider(Protocol):
    """What a video API must offer the engine; Z.AI is the first, gateways come later."""

    async def submit(self, body: dict[str, Any]) -> str:
        """Start a task from a request body; returns the task id to poll. Raises ProviderError."""
        ...

    async def get_task(self, task_id: str) -> TaskState:
        """Read a task's state. Raises ProviderError."""
        ...

    async def check_key(self) -> None:
        """One cheap authenticated call; raises ProviderError if the key is refused."""
        ...
