"""The New-API task gateway (seed 002): viduq3 models at `POST /v1/video/generations`.

Pictures go by URL only: every example of seed 002 passes https links, the reference field is
named `reference_image_urls`, and the New-API task format documents no inline images.
Errors are OpenAI-style `{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import SecretStr

from bot.errors import ProviderError, ProviderErrorKind
from bot.models import Mode
from bot.provider import TaskState, TaskStatus
from bot.providers import Option, PictureTransport, ProviderName, VideoRequest, catalog
from bot.providers.http import BearerClient, json_object, malformed, percent, retry_after

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
_STATUS = {
    "queued": TaskStatus.PROCESSING,
    "in_progress": TaskStatus.PROCESSING,
    "completed": TaskStatus.SUCCESS,
    "failed": TaskStatus.FAIL,
    # New-API's internal task words, which some versions return on this route.
    "success": TaskStatus.SUCCESS,
    "failure": TaskStatus.FAIL,
}


def classify(status: int, code: str) -> ProviderErrorKind:
    """The domain kind of an error answer: the code first, then the HTTP status."""
    if code in _ACCOUNT_CODES or status == 402:
        return ProviderErrorKind.ACCOUNT
    if code in _FILTER_CODES:
        return ProviderErrorKind.CONTENT_FILTER
    if code in _RETRY_CODES:
        return ProviderErrorKind.RETRY
    if code in _AUTH_CODES or status in (401, 403):
        return ProviderErrorKind.AUTH
    if status in (400, 404, 413, 422):
        return ProviderErrorKind.BAD_REQUEST
    return ProviderErrorKind.RETRY  # 408, 429, 5xx


def error_from_response(response: httpx.Response) -> ProviderError:
    """The domain error of a non-2xx answer (tolerant of odd bodies)."""
    error = json_object(response).get("error")
    error = error if isinstance(error, dict) else {}
    code = str(error.get("code") or error.get("type") or response.status_code)
    message = str(error.get("message") or response.reason_phrase or "no message")[:300]
    return ProviderError(
        classify(response.status_code, code),
        code,
        message,
        status=response.status_code,
        retry_after=retry_after(response),
    )


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


class NewApiClient:
    """Submit and poll viduq3 tasks at a New-API gateway (GATEWAY_BASE_URL, no /v1)."""

    name = ProviderName.GATEWAY
    picture_transport = PictureTransport.URL

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        api_key: SecretStr,
        models: frozenset[str] | None = None,
    ) -> None:
        self._client = BearerClient(http, base_url, api_key, error_from_response)
        offered = catalog.models_of(ProviderName.GATEWAY)
        self.models = tuple(m for m in offered if models is None or m in models)

    def offers(self, model: str) -> bool:
        """True for the catalog's gateway models (or the configured subset)."""
        return model in self.models

    def check(self, request: VideoRequest) -> None:
        """The catalog's rules for the model here; raises InputError."""
        catalog.check_request(catalog.rules_for(self.name, request.model), request)

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
        data = await self._client.get(f"/v1/video/generations/{task_id}")
        if not data:
            raise ProviderError(ProviderErrorKind.RETRY, "malformed", "unreadable task answer")
        state = parse_task(data)
        if state.message:
            state = TaskState(state.status, message=self._client.scrub(state.message))
        return state

    async def check_key(self) -> None:
        """GET /v1/models: the OpenAI-compatible listing every New-API gateway serves."""
        await self._client.get("/v1/models")
