"""The New-API task gateway (seed 002): viduq3 models at `POST /v1/video/generations`.

Pictures go by URL only: every example of seed 002 passes https links, the reference field is
named `reference_image_urls`, and the New-API task format documents no inline images.
Errors are OpenAI-style `{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

from typing import Any

import httpx

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

# New-API's own codes (types.ErrorCode) and OpenAI's, by what the bot does about them.
_ACCOUNT_CODES = frozenset(
    {
        "insufficient_user_quota",
        "pre_consume_token_quota_failed",
        "insufficient_quota",
        "token_quota_exhausted",
        "tenant_quota_exceeded",
        "billing_not_active",
    }
)
_AUTH_CODES = frozenset({"invalid_api_key", "access_denied", "channel:invalid_key"})
_FILTER_CODES = frozenset(
    {"prompt_blocked", "content_policy_violation", "sensitive_words_detected", "content_filter"}
)
_RETRY_CODES = frozenset(
    {"rate_limit_exceeded", "model_rate_limited", "upstream_unavailable", "get_channel_failed"}
)
_CODES = ErrorCodes(
    account=_ACCOUNT_CODES, auth=_AUTH_CODES, content_filter=_FILTER_CODES, retry=_RETRY_CODES
)
classify = _CODES.classify  # the domain kind of an error answer (tests call it)
_STATUS = {
    "queued": TaskStatus.PROCESSING,
    "in_progress": TaskStatus.PROCESSING,
    "completed": TaskStatus.SUCCESS,
    "failed": TaskStatus.FAIL,
    # New-API's internal task words, which some versions return on this route.
    "success": TaskStatus.SUCCESS,
    "failure": TaskStatus.FAIL,
}


def error_from_response(response: httpx.Response) -> ProviderError:
    """The domain error of a non-2xx answer (tolerant of odd bodies)."""
    error = json_object(response).get("error")
    error = error if isinstance(error, dict) else {}
    code = str(error.get("code") or error.get("type") or response.status_code)
    return _CODES.error(response, code, error.get("message"))


def build_body(request: VideoRequest) -> dict[str, Any]:
    """The seed-002 body of a request checked by `catalog.check_request`."""
    rules = catalog.rules_for(ProviderName.GATEWAY, request.model)
    duration = request.option(Option.DURATION, catalog.option_default(rules, Option.DURATION))
    body: dict[str, Any] = {"model": request.model, "prompt": request.prompt or ""}
    body["duration"] = duration
    ratio = request.option(Option.ASPECT_RATIO)
    if ratio is not None:
        body["aspect_ratio"] = ratio
    body |= _pictures(request)
    extra = {
        key: request.option(option)
        for key, option in (("audio", Option.AUDIO), ("seed", Option.SEED), ("bgm", Option.BGM))
        if request.option(option) is not None
    }
    if extra:
        body["extra_body"] = extra
    return body


def _pictures(request: VideoRequest) -> dict[str, Any]:
    """Picture fields by mode: image; image + last_image; reference_image_urls."""
    links = [picture.link() for picture in request.pictures]
    if request.mode is Mode.IMAGE:
        return {"image": links[0]}
    if request.mode is Mode.FRAMES:
        return {"image": links[0], "last_image": links[1]}
    if request.mode is Mode.REFERENCE:
        return {"reference_image_urls": links}
    return {}


def parse_task(data: dict[str, Any]) -> TaskState:
    """A job object as a TaskState (unknown statuses count as still processing)."""
    if "status" not in data and isinstance(data.get("data"), dict):
        data = data["data"]  # some versions wrap the job in {"code", "data"}
    status = _STATUS.get(str(data.get("status", "")).lower(), TaskStatus.PROCESSING)
    progress = percent(data.get("progress"))
    if status is TaskStatus.SUCCESS:
        url = data.get("url") or (data.get("metadata") or {}).get("url")
        if not url:
            return TaskState(
                TaskStatus.FAIL, message="the gateway reported success without a video"
            )
        return TaskState(TaskStatus.SUCCESS, str(url), progress=100)
    if status is TaskStatus.FAIL:
        error = data.get("error") if isinstance(data.get("error"), dict) else {}
        message = error.get("message") or data.get("message") or "generation failed"
        return TaskState(TaskStatus.FAIL, message=str(message)[:300])
    return TaskState(TaskStatus.PROCESSING, progress=progress)


class NewApiClient(CatalogProvider):
    """Submit and poll viduq3 tasks at a New-API gateway (GATEWAY_BASE_URL, no /v1)."""

    name = ProviderName.GATEWAY
    answer_error = staticmethod(error_from_response)

    def build_body(self, request: VideoRequest) -> dict[str, Any]:
        """The seed-002 body."""
        return build_body(request)

    async def submit(self, body: dict[str, Any]) -> str:
        """POST /v1/video/generations; returns the `task_id` to poll."""
        data = await self._client.post_submit("/v1/video/generations", body)
        task_id = data.get("task_id") or data.get("id")
        if not task_id:
            raise malformed("answer had no task id", 200)
        return str(task_id)

    async def get_task(self, task_id: str) -> TaskState:
        """GET /v1/video/generations/{task_id}."""
        return await self._read_task(f"/v1/video/generations/{task_id}", parse_task)

    async def check_key(self) -> None:
        """GET /v1/models: the OpenAI-compatible listing every New-API gateway serves."""
        await self._client.get("/v1/models")
