"""The provider interface the scheduler talks to: submit a request, read a task's state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from bot.stills import StillRequest
    from bot.zai_media import StillResult, Transcript


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


class MediaProvider(Protocol):
    """Stills and speech (seed 003): both answer synchronously."""

    async def generate_still(
        self, request: StillRequest, user_id: str | None = None
    ) -> StillResult:
        """Make a picture; its link. Raises ProviderError."""
        ...

    async def transcribe(
        self, audio: Path, *, mime: str, hotwords: Sequence[str] = (), prompt: str | None = None
    ) -> Transcript:
        """Speech to text. Raises ProviderError (InputError for too many hotwords)."""
        ...
