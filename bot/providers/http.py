"""What the gateway adapters share: one httpx client, the bearer key kept secret, error plumbing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr

from bot.errors import ProviderError, ProviderErrorKind
from bot.provider import TaskState
from bot.providers import PictureTransport, ProviderName, VideoRequest, catalog
from bot.zai import MESSAGE_MAX, NOT_SENT, json_body, retry_after, transport_error

# A relaying gateway answering 504 timed out waiting for the upstream, which may have started the
# task: for a submit that is as unknown as a lost answer.
AMBIGUOUS_SUBMIT_STATUSES = frozenset({504})

Classifier = Callable[[httpx.Response], ProviderError]


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The JSON object of an answer, or an empty dict (HTML error pages, arrays, garbage)."""
    data = json_body(response)
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class ErrorCodes:
    """A gateway's error codes, by what the bot does about them."""

    account: frozenset[str]
    auth: frozenset[str]
    content_filter: frozenset[str]
    retry: frozenset[str]

    def classify(self, status: int, code: str) -> ProviderErrorKind:
        """The domain kind of an error answer: the code first, then the HTTP status."""
        if code in self.account or status == 402:
            return ProviderErrorKind.ACCOUNT
        if code in self.content_filter:
            return ProviderErrorKind.CONTENT_FILTER
        if code in self.retry:
            return ProviderErrorKind.RETRY
        if code in self.auth or status in (401, 403):
            return ProviderErrorKind.AUTH
        if status in (400, 404, 413, 422):
            return ProviderErrorKind.BAD_REQUEST
        return ProviderErrorKind.RETRY  # 408, 429, 5xx

    def error(self, response: httpx.Response, code: str, message: Any) -> ProviderError:
        """The domain error of a non-2xx answer, its message cut and Retry-After kept."""
        text = str(message or response.reason_phrase or "no message")[:MESSAGE_MAX]
        return ProviderError(
            self.classify(response.status_code, code),
            code,
            text,
            status=response.status_code,
            retry_after=retry_after(response),
        )


def malformed(what: str, status: int) -> ProviderError:
    """A 200 answer we cannot read; on submit the task may exist, so it is ambiguous."""
    return ProviderError(ProviderErrorKind.AMBIGUOUS, "malformed", what, status=status)


def percent(value: Any) -> int | None:
    """0-100 from an int, a float or a "45%" string; None when absent or unreadable."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(str(value).rstrip("%"))
    except ValueError:
        return None
    return max(0, min(100, int(number)))


class BearerClient:
    """Authenticated JSON calls whose errors are scrubbed of the key."""

    def __init__(
        self, http: httpx.AsyncClient, base_url: str, api_key: SecretStr, classify: Classifier
    ) -> None:
        self._http = http
        self._base = base_url.rstrip("/")
        self._key = api_key
        self._classify = classify

    def _headers(self) -> dict[str, str]:
        """Per-request auth header, so the key never sits in the client's shared defaults."""
        return {"Authorization": f"Bearer {self._key.get_secret_value()}"}

    def scrub(self, text: str) -> str:
        """Provider text with our key blanked out: an error may quote the request it refused."""
        key = self._key.get_secret_value()
        return text.replace(key, "[redacted]") if key else text

    def _error(self, exc: ProviderError) -> ProviderError:
        """The error with its message scrubbed (it ends up in logs, the database and status)."""
        exc.message = self.scrub(exc.message)
        return exc

    async def post_submit(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST a task; any doubt about whether it arrived is AMBIGUOUS, never resent."""
        try:
            response = await self._http.post(self._base + path, json=body, headers=self._headers())
        except NOT_SENT as exc:
            raise self._error(transport_error(ProviderErrorKind.RETRY, exc)) from None
        except httpx.HTTPError as exc:
            raise self._error(transport_error(ProviderErrorKind.AMBIGUOUS, exc)) from None
        if response.status_code in AMBIGUOUS_SUBMIT_STATUSES:
            error = self._classify(response)
            raise self._error(
                ProviderError(
                    ProviderErrorKind.AMBIGUOUS,
                    error.code,
                    error.message,
                    status=response.status_code,
                )
            )
        return self._ok(response)

    async def get(self, path: str) -> dict[str, Any]:
        """GET a JSON object; transport failures are retryable (reading twice is harmless)."""
        try:
            response = await self._http.get(self._base + path, headers=self._headers())
        except httpx.HTTPError as exc:
            raise self._error(transport_error(ProviderErrorKind.RETRY, exc)) from None
        return self._ok(response)

    def _ok(self, response: httpx.Response) -> dict[str, Any]:
        """The body of a 2xx answer, else the classified error."""
        if not 200 <= response.status_code < 300:
            raise self._error(self._classify(response))
        return json_object(response)


class CatalogProvider:
    """A URL-only gateway adapter whose models and rules come from the catalog."""

    name: ProviderName
    picture_transport = PictureTransport.URL
    answer_error: Classifier  # the adapter's reading of a non-2xx answer (a staticmethod)

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        api_key: SecretStr,
        models: frozenset[str] | None = None,
    ) -> None:
        self._client = BearerClient(http, base_url, api_key, self.answer_error)
        offered = catalog.models_of(self.name)
        self.models = tuple(m for m in offered if models is None or m in models)

    def offers(self, model: str) -> bool:
        """True for the catalog's models of this provider (or the configured subset)."""
        return model in self.models

    def check(self, request: VideoRequest) -> None:
        """The catalog's rules for the model here; raises InputError."""
        catalog.check_request(catalog.rules_for(self.name, request.model), request)

    async def _read_task(
        self, path: str, parse: Callable[[dict[str, Any]], TaskState]
    ) -> TaskState:
        """GET a task answer and parse it, its failure message scrubbed of the key."""
        data = await self._client.get(path)
        if not data:
            raise ProviderError(ProviderErrorKind.RETRY, "malformed", "unreadable task answer")
        state = parse(data)
        if state.message:
            state = TaskState(state.status, message=self._client.scrub(state.message))
        return state
