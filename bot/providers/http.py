"""What the gateway adapters share: one httpx client, the bearer key kept secret, error plumbing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from pydantic import SecretStr

from bot.errors import ProviderError, ProviderErrorKind

# Failing before the request left us: safe to send again. Failing after: the provider may have it.
NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.WriteError,
    httpx.WriteTimeout,
)
# A relaying gateway answering 504 timed out waiting for the upstream, which may have started the
# task: for a submit that is as unknown as a lost answer.
AMBIGUOUS_SUBMIT_STATUSES = frozenset({504})

Classifier = Callable[[httpx.Response], ProviderError]


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The JSON object of an answer, or an empty dict (HTML error pages, arrays, garbage)."""
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds, if given as a number."""
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def transport_error(kind: ProviderErrorKind, exc: Exception) -> ProviderError:
    """A domain error for a failure with no HTTP answer (the URL is kept out: no secrets in it)."""
    return ProviderError(kind, type(exc).__name__, str(exc)[:200] or type(exc).__name__)


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
