"""Domain errors: what went wrong, said so that a user or an operator can act on it."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from bot.i18n import DEFAULT_LOCALE, Msg, render


class BotError(Exception):
    """Base of every error the bot raises on purpose: `text` (a catalog key and its parameters)
    is what the member reads, rendered in their language by the Discord side."""

    def __init__(self, key: str | Msg, /, **params: Any) -> None:
        self.text = key if isinstance(key, Msg) else Msg(key, params)
        super().__init__(self.text.key)

    @property
    def user_message(self) -> str:
        """The member's text in en-US (logs, the audit log, tests)."""
        return render(DEFAULT_LOCALE, self.text)

    def __str__(self) -> str:
        return self.user_message


class InputError(BotError, ValueError):
    """The user's request breaks a rule; nothing was spent and nothing was sent."""


class UnsafeURLError(InputError):
    """A download would go somewhere it must not (wrong host, private address)."""


class QuotaError(BotError):
    """The user (or the server) has no credits or slots left for this request."""


class NotAllowedError(BotError):
    """The user, channel or model is not allowed here (ban, blocklist, permissions)."""


class ProviderErrorKind(StrEnum):
    """How the engine reacts to a provider error."""

    RETRY = "retry"  # rate limited, overloaded, 5xx: try again later
    ACCOUNT = "account"  # balance exhausted, account limits: stop, refund, tell operators
    AUTH = "auth"  # key refused: stop, refund, tell operators
    CONTENT_FILTER = "content_filter"  # the provider refused the prompt or image
    BAD_REQUEST = "bad_request"  # parameters refused: a bug on our side, refund
    AMBIGUOUS = "ambiguous"  # the request may or may not have reached the provider


class ProviderError(BotError):
    """An error answered by (or on the way to) the video provider."""

    def __init__(
        self,
        kind: ProviderErrorKind,
        code: str,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"provider.{kind.value}")
        self.kind = kind
        self.code = code
        self.message = message
        self.status = status
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"{self.kind.value} (HTTP {self.status}, code {self.code}): {self.message}"


class ShardsRefused(Exception):
    """Discord closed the gateway over the shard settings (4010, 4011); says what to change."""


class ShardsTaken(ShardsRefused):
    """A live process on the database runs these shards, or another SHARD_COUNT; says what to
    change."""
