"""Z.AI stills and speech: POST /images/generations and /audio/transcriptions (seed 003).

Both answer synchronously (the image link or the transcript is in the answer; no task to
poll), over the video client's base URL, key and shared httpx.AsyncClient, with the same
error mapping (bot.zai) and the same key scrubbing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx

from bot.errors import InputError, ProviderError, ProviderErrorKind
from bot.i18n import Msg
from bot.models import ASR_MODEL
from bot.stills import StillRequest
from bot.zai import NOT_SENT, ZaiClient, error_from_response, json_body, transport_error

HOTWORDS_MAX = 100  # seed 003: "max 100 items"
ASR_PROMPT_MAX = 8000  # seed 003: previous transcription for context, max 8000 chars
# An hd still takes about 20 s; the shared client's default read timeout may be shorter.
STILL_TIMEOUT = httpx.Timeout(connect=10.0, read=120.0, write=60.0, pool=30.0)
ASR_TIMEOUT = httpx.Timeout(connect=10.0, read=90.0, write=120.0, pool=30.0)


class MediaAction(StrEnum):
    """What a member asked of the media endpoints (for the wording of errors)."""

    STILL = "still"
    TRANSCRIBE = "transcribe"


# ProviderError's text speaks of videos; these say the same for pictures and speech
# (catalog keys media.<action>.<kind>, media.<action>.fallback for the other kinds).
_WORDED: dict[MediaAction, frozenset[ProviderErrorKind]] = {
    MediaAction.STILL: frozenset(
        {ProviderErrorKind.RETRY, ProviderErrorKind.CONTENT_FILTER, ProviderErrorKind.AMBIGUOUS}
    ),
    MediaAction.TRANSCRIBE: frozenset(
        {
            ProviderErrorKind.RETRY,
            ProviderErrorKind.CONTENT_FILTER,
            ProviderErrorKind.BAD_REQUEST,
            ProviderErrorKind.AMBIGUOUS,
        }
    ),
}


def member_message(action: MediaAction, exc: ProviderError) -> Msg:
    """What to tell the member when a still or a transcription failed with `exc`."""
    kind = exc.kind.value if exc.kind in _WORDED[action] else "fallback"
    return Msg(f"media.{action.value}.{kind}")


@dataclass(frozen=True)
class ContentFilter:
    """One `content_filter` entry of an image answer (seed 003: role and level)."""

    role: str
    level: int | None


@dataclass(frozen=True)
class StillResult:
    """An image answer: links (valid 30 days: download promptly), time and filter notes."""

    urls: tuple[str, ...]
    created: int | None
    content_filter: tuple[ContentFilter, ...]

    @property
    def url(self) -> str:
        """The first (with one image asked for, the only) link."""
        return self.urls[0]


@dataclass(frozen=True)
class Transcript:
    """A transcription answer: the text and the provider's ids (for the logs)."""

    text: str
    id: str | None
    request_id: str | None


class ZaiMediaClient(ZaiClient):
    """The video client plus the two synchronous media endpoints."""

    async def generate_still(
        self, request: StillRequest, user_id: str | None = None
    ) -> StillResult:
        """POST /images/generations; the answer holds the image link(s)."""
        response = await self._post(
            "images/generations",
            timeout=STILL_TIMEOUT,
            json=request.body(user_id),
        )
        return parse_still(json_body(response))

    async def transcribe(
        self,
        audio: Path,
        *,
        mime: str,
        hotwords: Sequence[str] = (),
        prompt: str | None = None,
    ) -> Transcript:
        """POST /audio/transcriptions (multipart) with a prepared wav/mp3 file; the text."""
        data = asr_fields(hotwords, prompt)
        handle = await asyncio.to_thread(audio.open, "rb")
        try:
            # httpx streams the open file in chunks; its length comes from fstat.
            files = {"file": (audio.name, handle, mime)}
            response = await self._post(
                "audio/transcriptions", timeout=ASR_TIMEOUT, data=data, files=files
            )
        finally:
            await asyncio.to_thread(handle.close)
        return parse_transcript(json_body(response))

    async def _post(self, path: str, *, timeout: httpx.Timeout, **content: Any) -> httpx.Response:
        """POST under the video client's rules: errors mapped, key scrubbed, 200 or raise."""
        url = f"{self._base}/{path}"
        try:
            response = await self._http.post(
                url, headers=self._headers(), timeout=timeout, **content
            )
        except NOT_SENT as exc:
            raise self._error(transport_error(ProviderErrorKind.RETRY, exc)) from None
        except httpx.HTTPError as exc:
            # Z.AI may have done (and billed) the work: the caller refunds and lets them retry.
            raise self._error(transport_error(ProviderErrorKind.AMBIGUOUS, exc)) from None
        if response.status_code != 200:
            raise self._error(error_from_response(response))
        return response


def asr_fields(hotwords: Sequence[str], prompt: str | None) -> dict[str, str]:
    """The non-file multipart fields, or InputError for lists the seed's limits refuse."""
    words = [w.strip() for w in hotwords if w and w.strip()]
    if len(words) > HOTWORDS_MAX:
        raise InputError("hotwords.too_many", count=len(words), limit=HOTWORDS_MAX)
    fields = {"model": ASR_MODEL, "stream": "false"}
    if words:
        fields["hotwords"] = json.dumps(words, ensure_ascii=False)
    if prompt:
        fields["prompt"] = prompt[-ASR_PROMPT_MAX:]  # the most recent context matters most
    return fields


def parse_still(data: dict[str, Any]) -> StillResult:
    """The image answer, or an AMBIGUOUS error when it holds no link (nothing to post)."""
    items = data.get("data")
    urls = tuple(
        str(item["url"]) for item in (items if isinstance(items, list) else []) if _has_url(item)
    )
    if not urls:
        raise ProviderError(
            ProviderErrorKind.AMBIGUOUS, "no_image", "answer had no image link", status=200
        )
    created = data.get("created")
    return StillResult(
        urls=urls,
        created=created if isinstance(created, int) else None,
        content_filter=_filters(data.get("content_filter")),
    )


def _has_url(item: Any) -> bool:
    """True for a `data[]` entry with a non-empty url."""
    return isinstance(item, dict) and bool(item.get("url"))


def _filters(raw: Any) -> tuple[ContentFilter, ...]:
    """`content_filter` entries, tolerant of missing or odd fields."""
    entries = raw if isinstance(raw, list) else []
    return tuple(
        ContentFilter(
            role=str(e.get("role", "")),
            level=e.get("level") if isinstance(e.get("level"), int) else None,
        )
        for e in entries
        if isinstance(e, dict)
    )


def parse_transcript(data: dict[str, Any]) -> Transcript:
    """The transcription answer; `text` may be empty (silence), never missing."""
    text = data.get("text")
    if not isinstance(text, str):
        raise ProviderError(
            ProviderErrorKind.AMBIGUOUS, "no_text", "answer had no transcript", status=200
        )
    ids = {k: (str(data[k]) if data.get(k) else None) for k in ("id", "request_id")}
    return Transcript(text=text.strip(), id=ids["id"], request_id=ids["request_id"])
