"""The Z.AI client: one httpx.AsyncClient, errors mapped to the domain taxonomy."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
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
NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.WriteError,
    httpx.WriteTimeout,
)

MESSAGE_MAX = 300  # provider texts kept (status messages, /jobs, alerts)

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
        retry_after=retry_after(response),
    )


def _error_body(response: httpx.Response) -> tuple[str, str]:
    """Code and message of an error answer, uncut (scrub first, then cut: see ZaiClient._error).

    The spec's shape is top-level `{"code", "message"}`; the live API sends
    `{"error": {"code", "message"}}`; codes come as strings or integers.
    """
    try:
        data = response.json()
    except ValueError:
        data = None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        source: dict[str, Any] = error
    elif isinstance(data, dict) and "code" in data:
        source = data
    else:
        source = {"message": error} if isinstance(error, str) else {}
    code = source.get("code")
    code = str(code).strip() if code not in (None, "") else str(response.status_code)
    message = str(source.get("message") or response.reason_phrase or "no message")
    return code, message


def retry_after(response: httpx.Response) -> float | None:
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
        """The error with its message scrubbed, then cut (it ends up in logs, DB and status).

        Scrub first: cutting first could leave the head of a key that straddles the cut.
        """
        exc.message = self._scrub(exc.message)[:MESSAGE_MAX]
        metrics.provider_error(exc.code)
        return exc

    async def submit(self, body: dict[str, Any]) -> str:
        """POST /videos/generations; returns the task `id` to poll."""
        url = f"{self._base}/videos/generations"
        try:
            response = await self._http.post(url, json=body, headers=self._headers())
        except NOT_SENT as exc:
            raise self._error(transport_error(ProviderErrorKind.RETRY, exc)) from None
        except httpx.HTTPError as exc:
            # The body may have reached Z.AI: sending it again could start a second paid task.
            raise self._error(transport_error(ProviderErrorKind.AMBIGUOUS, exc)) from None
        if response.status_code != 200:
            raise self._error(error_from_response(response))
        data = json_body(response)
        task_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(task_id, str | int) or not str(task_id):
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
            raise self._error(transport_error(ProviderErrorKind.RETRY, exc)) from None
        if response.status_code != 200:
            raise self._error(error_from_response(response))
        try:
            state = parse_task(json_body(response))
        except ProviderError as exc:
            raise self._error(exc) from None
        if state.message:  # a FAIL message is stored and shown to the requester
            state = replace(state, message=self._scrub(state.message)[:MESSAGE_MAX])
        return state

    async def check_key(self) -> None:
        """Poll a task id that cannot exist: a refused key answers 401, a good one 'not found'."""
        await probe_key(self.get_task)


async def probe_key(get_task: Callable[[str], Awaitable[TaskState]]) -> None:
    """Poll a task id that cannot exist: a refused key answers 401, a good one 'not found'."""
    try:
        await get_task("doctor-key-check")
    except ProviderError as exc:
        if exc.kind in (ProviderErrorKind.AUTH, ProviderErrorKind.ACCOUNT, ProviderErrorKind.RETRY):
            raise


def parse_task(data: Any) -> TaskState:
    """The async-result body as a TaskState; a body of another shape is a retryable error.

    Unknown status strings count as still processing (the API may add states); a missing
    status, a `video_result` that is not a list of objects with a URL, and the like raise
    ProviderError(RETRY, "malformed_answer") so the poll is retried with backoff.
    """
    if not isinstance(data, dict) or not isinstance(data.get("task_status"), str):
        raise _malformed("no task_status", data)
    raw = data["task_status"].upper()
    if raw == "SUCCESS":
        return _success(data)
    if raw == "FAIL":
        return TaskState(TaskStatus.FAIL, message=_fail_message(data))
    return TaskState(TaskStatus.PROCESSING)


def _success(data: dict[str, Any]) -> TaskState:
    """A SUCCESS answer: the first video of `video_result` (a list of objects)."""
    results = data.get("video_result")
    if not isinstance(results, list) or not results or not isinstance(results[0], dict):
        raise _malformed("video_result is not a list of objects", data)
    url, cover = results[0].get("url"), results[0].get("cover_image_url")
    if not isinstance(url, str) or not url:
        raise _malformed("video_result has no url", data)
    return TaskState(TaskStatus.SUCCESS, url, cover if isinstance(cover, str) else None)


def _fail_message(data: dict[str, Any]) -> str:
    """The reason of a FAIL answer, wherever it is (`message`, `error.message`, `error`)."""
    error = data.get("error")
    if isinstance(error, dict):
        error = error.get("message")
    message = data.get("message") or error or "generation failed"
    return str(message)


def _malformed(what: str, data: Any) -> ProviderError:
    """The error for an answer of an unexpected shape (retried with backoff)."""
    log.warning("Z.AI answered an unexpected shape (%s): %.200r", what, data)
    return ProviderError(
        ProviderErrorKind.RETRY, "malformed_answer", f"unexpected answer: {what}", status=200
    )


def json_body(response: httpx.Response) -> Any:
    """The JSON of a 200 answer, or None when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None


def transport_error(kind: ProviderErrorKind, exc: Exception) -> ProviderError:
    """A domain error for a failure with no HTTP answer (the URL is kept out: no secrets in it)."""
    return ProviderError(kind, type(exc).__name__, str(exc)[:200] or type(exc).__name__)
