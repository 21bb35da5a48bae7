"""Provider-neutral requests, and what a routed provider adapter offers the engine.

The engine describes a job once (`VideoRequest`); each adapter turns that description into its
own API's body (`build_body`) and then sends it with `VideoProvider.submit`. So the same job can
go to Z.AI, the New-API gateway or GeekAI, and a fallback rebuilds the body for the next one.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol

from bot.errors import ProviderError, ProviderErrorKind
from bot.models import Mode
from bot.provider import VideoProvider


class ProviderName(StrEnum):
    """The API formats the bot speaks (one adapter each)."""

    ZAI = "zai"  # Z.AI's /paas/v4 format (seed 000), or a reseller speaking it (seed 001)
    GATEWAY = "gateway"  # the New-API task format, /v1/video/generations (seed 002)
    GEEKAI = "geekai"  # GeekAI's /api/v1/videos/generations (seed 004)


class PictureTransport(StrEnum):
    """How an API takes pictures."""

    DATA_URI = "data_uri"  # inline base64 (Z.AI: the spec's `format: byte` alternative)
    URL = "url"  # only http(s) links the provider fetches itself


class Option(StrEnum):
    """User-facing option names, shared by every provider (mapped to body fields per API)."""

    QUALITY = "quality"
    AUDIO = "audio"
    SIZE = "size"
    DURATION = "duration"
    FPS = "fps"
    STYLE = "style"
    ASPECT_RATIO = "aspect_ratio"
    MOVEMENT = "movement"
    SEED = "seed"
    BGM = "bgm"
    NEGATIVE_PROMPT = "negative_prompt"
    WATERMARK = "watermark"


@dataclass(frozen=True)
class Picture:
    """One normalised picture: its bytes, and a link where a URL-only API can fetch it.

    `url` is filled by the engine just before the body is built for a URL-only provider (for
    instance the picture attached to the bot's own status message: a Discord CDN link that
    expires and shows nothing the channel has not already seen).
    """

    data: bytes = field(repr=False)
    mime: str
    url: str | None = None

    def data_uri(self) -> str:
        """`data:<mime>;base64,...`."""
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"

    def link(self) -> str:
        """The http(s) URL; a missing one is an engine bug, never the user's."""
        if not self.url or not self.url.startswith(("https://", "http://")):
            raise ValueError("this provider takes pictures by URL: publish the picture first")
        return self.url


@dataclass(frozen=True)
class VideoRequest:
    """One job, described independently of any provider's wire format."""

    model: str
    mode: Mode
    prompt: str | None
    options: Mapping[str, Any] = field(default_factory=dict)  # Option name -> value, given only
    pictures: tuple[Picture, ...] = ()
    request_id: str = ""
    user_id: str = ""

    def option(self, name: Option, default: Any = None) -> Any:
        """A given option's value, else `default`."""
        return self.options.get(name.value, default)


class RoutedProvider(VideoProvider, Protocol):
    """A provider the router can pick: its name, models and body builder."""

    name: ProviderName
    picture_transport: PictureTransport
    models: tuple[str, ...]  # the models offered, in the order the commands list them

    def offers(self, model: str) -> bool:
        """True when this provider (as configured) serves `model`."""
        ...

    def check(self, request: VideoRequest) -> None:
        """The model's rules at this provider; raises InputError (nothing spent, nothing sent)."""
        ...

    def build_body(self, request: VideoRequest) -> dict[str, Any]:
        """The API's JSON body for a request that passed `check`."""
        ...


class PicturePublisher(Protocol):
    """Gives pictures an expiring http(s) link for URL-only providers (phase B: Discord)."""

    async def publish(self, request: VideoRequest) -> Sequence[str]:
        """One URL per picture of `request`, in order."""
        ...


async def with_links(
    request: VideoRequest, provider: RoutedProvider, publisher: PicturePublisher
) -> VideoRequest:
    """The request with picture links filled in when the provider takes URLs only.

    Called right before `build_body`, so a link is as fresh as possible when the provider
    fetches it; pictures that already have one (a resubmit, a fallback) keep it.
    """
    pictures = request.pictures
    if provider.picture_transport is not PictureTransport.URL or all(p.url for p in pictures):
        return request
    links = list(await publisher.publish(request))
    if len(links) != len(pictures):
        raise ValueError(f"publisher gave {len(links)} links for {len(pictures)} pictures")
    filled = tuple(replace(p, url=p.url or link) for p, link in zip(pictures, links, strict=True))
    return replace(request, pictures=filled)


class FallbackReason(StrEnum):
    """Why a refused submit may go to the next provider offering the model."""

    BALANCE = "balance"
    OVERLOAD = "overload"
    OUTAGE = "outage"


# Codes that mean "this provider is overloaded" rather than "you are sending too fast".
_OVERLOAD_CODES = frozenset({"1305", "upstream_unavailable", "get_channel_failed", "overloaded"})
_OUTAGE_STATUSES = frozenset({500, 502, 503})
# Transport failures before the request left us: the provider is unreachable, nothing was sent.
_UNREACHABLE = frozenset({"ConnectError", "ConnectTimeout"})


def fallback_reason(exc: ProviderError) -> FallbackReason | None:
    """Whether a failed *submit* may be tried at another provider, and why.

    Never after AMBIGUOUS (the first provider may have the task: a second would double it);
    never for our own faults (bad request, content filter, auth) nor for plain rate limits,
    which only mean "wait for a slot here".
    """
    if exc.kind is ProviderErrorKind.ACCOUNT:
        return FallbackReason.BALANCE
    if exc.kind is not ProviderErrorKind.RETRY:
        return None
    if exc.code in _OVERLOAD_CODES:
        return FallbackReason.OVERLOAD
    if exc.status in _OUTAGE_STATUSES or (exc.status is None and exc.code in _UNREACHABLE):
        return FallbackReason.OUTAGE
    return None
