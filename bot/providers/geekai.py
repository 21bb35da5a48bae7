"""GeekAI (seed 004): the three CogVideoX models of the catalog (one free), always `async: true`.

Pictures go by URL only: seed 004 describes `image` as "单张图片URL" (a single picture URL) and
`image_tail` as "用于视频尾帧的图片URL" (the last frame's picture URL); it mentions no base64.
Errors carry `{"code", "message", "details"}` (top level or under "error"); GeekAI relays
Zhipu's business codes for CogVideoX, so 1113 (balance) and 1301 (content) are read as Z.AI's.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import SecretStr

from bot.errors import ProviderError
from bot.models import Mode
from bot.provider import TaskState, TaskStatus
from bot.providers import Option, ProviderName, VideoRequest, catalog
from bot.providers.http import (
    CatalogProvider,
    ErrorCodes,
    json_object,
    malformed,
    percent,
)
from bot.zai import probe_key

DEFAULT_BASE_URL = "https://geekai.co/api/v1"

_ACCOUNT_CODES = frozenset(
    {"1113", "1304", "1308", "insufficient_balance", "insufficient_quota", "balance_not_enough"}
)
_AUTH_CODES = frozenset({"1000", "1001", "1002", "1003", "1004", "invalid_api_key", "unauthorized"})
_FILTER_CODES = frozenset({"1301", "content_filter", "sensitive_content"})
_RETRY_CODES = frozenset({"1302", "1305", "rate_limit", "rate_limit_exceeded", "overloaded"})
_CODES = ErrorCodes(
    account=_ACCOUNT_CODES, auth=_AUTH_CODES, content_filter=_FILTER_CODES, retry=_RETRY_CODES
)
classify = _CODES.classify  # the domain kind of an error answer (tests call it)
_STATUS = {
    "pending": TaskStatus.PROCESSING,
    "running": TaskStatus.PROCESSING,
    "processing": TaskStatus.PROCESSING,
    "succeed": TaskStatus.SUCCESS,
    "success": TaskStatus.SUCCESS,  # the English pages' spelling
    "failed": TaskStatus.FAIL,
    "fail": TaskStatus.FAIL,
}
# Neutral option -> GeekAI body field (duration and the pictures are handled apart).
_FIELDS = {
    Option.QUALITY: "quality",
    Option.AUDIO: "with_audio",
    Option.SIZE: "size",
    Option.FPS: "fps",
    Option.NEGATIVE_PROMPT: "negative_prompt",
    Option.WATERMARK: "watermark",
}


def _error_fields(data: dict[str, Any]) -> dict[str, Any]:
    """`{"error": {...}}` or a top-level `{code, message}`."""
    error = data.get("error")
    if isinstance(error, dict):
        return error
    return data if "code" in data or "message" in data else {}


def error_from_response(response: httpx.Response) -> ProviderError:
    """The domain error of a non-2xx answer (tolerant of odd bodies)."""
    error = _error_fields(json_object(response))
    code = str(error.get("code") or response.status_code)
    return _CODES.error(response, code, error.get("message"))


def build_body(request: VideoRequest) -> dict[str, Any]:
    """The seed-004 body of a request checked by `catalog.check_request`."""
    rules = catalog.rules_for(ProviderName.GEEKAI, request.model)
    body: dict[str, Any] = {"model": request.model, "prompt": request.prompt or "", "async": True}
    body["duration"] = request.option(
        Option.DURATION, catalog.option_default(rules, Option.DURATION)
    )
    for option, key in _FIELDS.items():
        value = request.option(option)
        if value is not None:
            body[key] = value
    links = [picture.link() for picture in request.pictures]
    if request.mode in (Mode.IMAGE, Mode.FRAMES):
        body["image"] = links[0]
    if request.mode is Mode.FRAMES:
        body["image_tail"] = links[1]
    return body


def parse_task(data: dict[str, Any]) -> TaskState:
    """A creation/result answer as a TaskState (unknown statuses count as processing)."""
    raw = str(data.get("task_status", "")).lower()
    status = _STATUS.get(raw, TaskStatus.PROCESSING)
    if status is TaskStatus.SUCCESS:
        result = data.get("video_result")
        if isinstance(result, list):  # tolerate Zhipu's list shape
            result = result[0] if result else {}
        result = result if isinstance(result, dict) else {}
        if not result.get("url"):
            return TaskState(TaskStatus.FAIL, message="GeekAI reported success without a video")
        cover = result.get("cover_image_url")
        return TaskState(TaskStatus.SUCCESS, str(result["url"]), cover and str(cover), progress=100)
    if status is TaskStatus.FAIL:
        error = _error_fields(data)
        message = error.get("message") or error.get("details") or "generation failed"
        return TaskState(TaskStatus.FAIL, message=str(message)[:300])
    return TaskState(TaskStatus.PROCESSING, progress=percent(data.get("progress")))


class GeekaiClient(CatalogProvider):
    """Submit and poll CogVideoX tasks at GeekAI (GEEKAI_BASE_URL, default with /api/v1)."""

    name = ProviderName.GEEKAI
    answer_error = staticmethod(error_from_response)

    def __init__(
        self,
        http: httpx.AsyncClient,
        api_key: SecretStr,
        base_url: str = DEFAULT_BASE_URL,
        models: frozenset[str] | None = None,
    ) -> None:
        super().__init__(http, base_url, api_key, models)

    def build_body(self, request: VideoRequest) -> dict[str, Any]:
        """The seed-004 body."""
        return build_body(request)

    async def submit(self, body: dict[str, Any]) -> str:
        """POST /videos/generations (async); returns the `task_id` to poll."""
        data = await self._client.post_submit("/videos/generations", body)
        task_id = data.get("task_id")
        if not task_id:
            raise malformed("answer had no task id", 200)
        if str(data.get("task_status", "")).lower() in ("failed", "fail"):
            # Refused after acceptance (e.g. a relayed content check): no task runs, nothing to poll.
            error = _error_fields(data)
            code = str(error.get("code") or "failed")
            raise ProviderError(
                classify(400, code),
                code,
                self._client.scrub(str(error.get("message") or "refused at creation")),
                status=200,
            )
        return str(task_id)

    async def get_task(self, task_id: str) -> TaskState:
        """GET /video/{task_id}/result."""
        return await self._read_task(f"/video/{task_id}/result", parse_task)

    async def check_key(self) -> None:
        """Read a task that cannot exist: a refused key answers 401, a good one 'not found'."""
        await probe_key(self.get_task)
