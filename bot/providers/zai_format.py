"""The Z.AI-format provider for routing: Z.AI itself, or a reseller speaking its API (seed 001).

It wraps the existing `ZaiClient` (which only sends bodies) with the routing surface: which
models it offers (ZAI_MODELS), the checks and the body for a neutral request. The seven models of
seed 000 keep their rules in bot/models.py; a reseller's extra models are in the catalog.
Pictures go inline as data URIs: the spec's `image_url` takes "URL or Base64" (seed 000), and the
reseller states the same field.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from typing import Any

from bot import models
from bot.errors import InputError
from bot.models import Mode, VideoOptions
from bot.provider import TaskState
from bot.providers import Option, PictureTransport, ProviderName, VideoRequest, catalog
from bot.zai import ZaiClient

DEFAULT_MODELS = tuple(models.MODELS)  # the seven of seed 000
# Neutral option -> seed-001 body field for the reseller's cogvideox-2.
_RESELLER_FIELDS = {
    Option.QUALITY: "quality",
    Option.AUDIO: "with_audio",
    Option.SIZE: "size",
    Option.DURATION: "duration",
    Option.FPS: "fps",
}


def _video_options(request: VideoRequest) -> VideoOptions:
    """The neutral options as bot/models.py's VideoOptions (unknown ones refused plainly)."""
    known = {f.name for f in fields(VideoOptions)}
    unknown = sorted(set(request.options) - known)
    if unknown:
        raise InputError("option.absent", model=request.model, option=unknown[0])
    return VideoOptions(**dict(request.options))


class ZaiFormatProvider:
    """Routing surface over a ZaiClient; `models` is ZAI_MODELS."""

    name = ProviderName.ZAI
    picture_transport = PictureTransport.DATA_URI

    def __init__(self, client: ZaiClient, offered: Iterable[str] = DEFAULT_MODELS) -> None:
        self._client = client
        self.models = tuple(offered)
        unknown = [m for m in self.models if not self.knows(m)]
        if unknown:
            raise ValueError(f"ZAI_MODELS names models the bot has no rules for: {unknown}")

    @staticmethod
    def knows(model: str) -> bool:
        """True when bot/models.py or the catalog has rules for `model` in this format."""
        return model in models.MODELS or (ProviderName.ZAI, model) in catalog.CATALOG

    def offers(self, model: str) -> bool:
        """True for the configured ZAI_MODELS."""
        return model in self.models

    def check(self, request: VideoRequest) -> None:
        """The model's rules; raises InputError."""
        if request.model in models.MODELS:
            models.check_request(
                request.model, request.mode, request.prompt, _video_options(request)
            )
        else:
            catalog.check_request(catalog.rules_for(self.name, request.model), request)

    def build_body(self, request: VideoRequest) -> dict[str, Any]:
        """bot/models.py's body for the seven; the seed-001 body for a reseller's models."""
        uris = [picture.data_uri() for picture in request.pictures]
        if request.model in models.MODELS:
            return models.build_body(
                request.model,
                request.mode,
                request.prompt,
                _video_options(request),
                uris,
                request_id=request.request_id,
                user_id=request.user_id,
            )
        body: dict[str, Any] = {"model": request.model}
        if request.prompt:
            body["prompt"] = request.prompt
        if request.mode is Mode.IMAGE:
            body["image_url"] = uris[0]  # seed 001: one string, the first frame
        for option, key in _RESELLER_FIELDS.items():
            value = request.option(option)
            if value is not None:
                body[key] = value
        return body  # seed 001 lists no request_id/user_id: a reseller may refuse them

    async def submit(self, body: dict[str, Any]) -> str:
        """Delegate to the Z.AI client."""
        return await self._client.submit(body)

    async def get_task(self, task_id: str) -> TaskState:
        """Delegate to the Z.AI client."""
        return await self._client.get_task(task_id)

    async def check_key(self) -> None:
        """Delegate to the Z.AI client."""
        await self._client.check_key()
