"""The Z.AI client: one httpx.AsyncClient, errors mapped to the domain taxonomy."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import httpx
from pydantic import SecretStr

from bot import metrics
from bot.errors import ProviderError, ProviderErrorKind
from bot.provider import TaskState, TaskStatus

log = logging.getLogger(__name__)

# Business codes decide, not only the HTTP status (429 carries both 1302 and 1113).
_RETRY_CODES = {"1302", "1305"}
_ACCOUNT_CODES = {"1113", "1304", "1308", "1310"}
_AUTH_CODES = {"1000", "1001", "1002", "1003", "1004"}
_BAD_REQUEST_CODES = {"1210", "1211", "1212", "1213", "1214"}
_FILTER_CODES = {"1301"}

# Failing before the request left us: safe to send again. Failing after: the provider may have it.
_NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.WriteError,
    httpx.WriteTimeout,
)

DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=120.0, pool=30.0)


def classify(status: int, code: str) -> ProviderErrorKind:
    """The domain kind of an error answer, from its business code first, then its status."""
    if code in _RETRY_CODES:
        return ProviderErrorKind.RETRY
    if code in _ACCOUNT_CODES:
        return ProviderErrorKind.ACCOUNT
    if code in _AUTH_CODES or status in (401, 403):
        return ProviderErrorKind.AUTH
    if code in _FILTER_CODES:
        return ProviderErrorKind.CONTENT_FILTER
    if code in _BAD_REQUEST_CODES or status in (400, 404, 422):
        return ProviderErrorKind.BAD_REQUEST
    return ProviderErrorKind.RETRY  # 408, 429 without a known code, 5xx


def error_from_response(response: httpx.Response) -> ProviderError:
    """Build the domain error of a non-2xx answer."""
    code, message = _error_body(response)
    return ProviderError(
        classify(response.status_code, code),
        code,
        message,
        status=response.status_code,
        retry_after=_retry_after(response),
    )


def _error_body(response: httpx.Response) -> tuple[str, str]:
    """`{"error": {"code": ..., "message": ...}}`, tolerant of ints and odd bodies."""
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    code = str(error.get("code", response.status_code))
    message = str(error.get("message") or response.reason_phrase or "no message")[:300]
    return code, message


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds, if given as a number."""
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class ZaiClient:
    """Submit and poll Z.AI video tasks over one shared HTTP client."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, api_key: SecretStr) -> None:
        self._http = http
        self._base = base_url.rstrip("/")
        self._key = api_key

    def _headers(self) -> dict[str, str]:
        """Per-request auth header, so the key never sits in the client's shared defaults."""
        return {
            "Authorization": f"Bearer {self._key.get_secret_value()}",
            "Accept-Language": "en-US,en",
        }

    def _scrub(self, text: str) -> str:
        """Provider text with our key blanked out: an error may quote the request it refused."""
        key = self._key.get_secret_value()
        return text.replace(key, "[redacted]") if key else text

    def _error(self, exc: ProviderError) -> ProviderError:
        """The error with its message scrubbed (it ends up in logs, the database and status)."""
        exc.message = self._scrub(exc.message)
        metrics.provider_error(exc.code)
        return exc

    async def submit(self, body: dict[str, Any]) -> str:
        """POST /videos/generations; returns the task `id` to poll."""
        url = f"{self._base}/videos/generations"
        try:
            response = await self._http.post(url, json=body, headers=self._headers())
        except _NOT_SENT as exc:
            raise self._error(_transport_error(ProviderErrorKind.RETRY, exc)) from None
        except httpx.HTTPError as exc:
            # The body may have reached Z.AI: sending it again could start a second paid task.
            raise self._error(_transport_error(ProviderErrorKind.AMBIGUOUS, exc)) from None
        if response.status_code != 200:
            raise self._error(error_from_response(response))
        task_id = _json(response).get("id")
        if not task_id:
            raise ProviderError(
                ProviderErrorKind.AMBIGUOUS, "no_id", "answer had no task id", status=200
            )
        return str(task_id)

    async def get_task(self, task_id: str) -> TaskState:
        """GET /async-result/{id}."""
        url = f"{self._base}/async-result/{task_id}"
        try:
            response = await self._http.get(url, headers=self._headers())
        except httpx.HTTPError as exc:
            raise self._error(_transport_error(ProviderErrorKind.RETRY, exc)) from None
        if response.status_code != 200:
            raise self._error(error_from_response(response))
        state = parse_task(_json(response))
        if state.message:  # a FAIL message is stored and shown to the requester
            state = replace(state, message=self._scrub(state.message))
        return state

    async def check_key(self) -> None:
        """Poll a task id that cannot exist: a refused key answers 401, a good one 'not found'."""
        try:
            await self.get_task("doctor-key-check")
        except ProviderError as exc:
            if exc.kind in (
                ProviderErrorKind.AUTH,
                ProviderErrorKind.ACCOUNT,
                ProviderErrorKind.RETRY,
            ):
                raise


def parse_task(data: dict[str, Any]) -> TaskState:
    """The async-result body as a TaskState (unknown statuses count as still processing)."""
    raw = str(data.get("task_status", "PROCESSING")).upper()
    if raw == "SUCCESS":
        results = data.get("video_result") or [{}]
        first = results[0] if results else {}
        if not first.get("url"):
            return TaskState(
                TaskStatus.FAIL, message="the provider reported success without a video"
            )
        return TaskState(TaskStatus.SUCCESS, first["url"], first.get("cover_image_url"))
    if raw == "FAIL":
        message = (
            data.get("message") or (data.get("error") or {}).get("message") or "generation failed"
        )
        return TaskState(TaskStatus.FAIL, message=str(message)[:300])
    return TaskState(TaskStatus.PROCESSING)


def _json(response: httpx.Response) -> dict[str, Any]:
    """The JSON object of a 200 answer, or an empty dict."""
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _transport_error(kind: ProviderErrorKind, exc: Exception) -> ProviderError:
    """A domain error for a failure with no HTTP answer (the URL is kept out: no secrets in it)."""
    return ProviderError(kind, type(exc).__name__, str(exc)[:200] or type(exc).__name__)
