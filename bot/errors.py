"""Domain errors: what went wrong, said so that a user or an operator can act on it."""

from __future__ import annotations

from enum import StrEnum


class BotError(Exception):
    """Base of every error the bot raises on purpose; `user_message` is safe to show."""

    def __init__(self, user_message: str) -> None:
        super().__init__(user_message)
        self.user_message = user_message


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
        super().__init__(_USER_MESSAGES[kind])
        self.kind = kind
        self.code = code
        self.message = message
        self.status = status
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"{self.kind.value} (HTTP {self.status}, code {self.code}): {self.message}"


_USER_MESSAGES: dict[ProviderErrorKind, str] = {
    ProviderErrorKind.RETRY: "The video service is busy; your request will be retried.",
    ProviderErrorKind.ACCOUNT: (
        "The bot's video service account cannot take more work right now; "
        "your credit was refunded. The moderators have been told."
    ),
    ProviderErrorKind.AUTH: (
        "The bot is misconfigured (its video service key was refused); "
        "your credit was refunded. The moderators have been told."
    ),
    ProviderErrorKind.CONTENT_FILTER: (
        "The video service refused this prompt or image under its content policy. "
        "Try different wording or another picture; your credit was refunded."
    ),
    ProviderErrorKind.BAD_REQUEST: (
        "The video service rejected the request parameters; your credit was refunded. "
        "This is a bug in the bot and has been logged."
    ),
    ProviderErrorKind.AMBIGUOUS: (
        "The connection to the video service was lost while submitting, so the bot cannot "
        "tell whether the video was started. Your credit was refunded; please ask again."
    ),
}


class ShardsRefused(Exception):
    """Discord closed the gateway over the shard settings (4010, 4011); says what to change."""
