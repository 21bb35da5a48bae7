"""Which provider takes a job: the first configured one offering its model; fallback on request.

Order is Z.AI (the default), then the New-API gateway, then GeekAI. With PROVIDER_FALLBACK=on a
submit refused for balance, overload or an outage (`fallback_reason`) moves to the next provider
offering the model whose rules also accept the request; never after an AMBIGUOUS submit.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import httpx
from pydantic import SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.errors import InputError, ProviderError
from bot.providers import ProviderName, RoutedProvider, VideoRequest, fallback_reason
from bot.providers.geekai import DEFAULT_BASE_URL, GeekaiClient
from bot.providers.newapi import NewApiClient
from bot.providers.zai_format import DEFAULT_MODELS, ZaiFormatProvider
from bot.zai import ZaiClient


class Fallback(StrEnum):
    """PROVIDER_FALLBACK."""

    OFF = "off"
    ON = "on"


class ProviderSettings(BaseSettings):
    """The provider settings of issue 13 (phase B folds them into bot/settings.py)."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    gateway_base_url: str | None = None
    gateway_api_key: SecretStr | None = None
    geekai_base_url: str = DEFAULT_BASE_URL
    geekai_api_key: SecretStr | None = None
    zai_models: str = ",".join(DEFAULT_MODELS)
    provider_fallback: Fallback = Fallback.OFF

    @field_validator("gateway_api_key", "geekai_api_key", mode="before")
    @classmethod
    def _empty_key_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("gateway_base_url", mode="before")
    @classmethod
    def _empty_url_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("gateway_base_url", "geekai_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if value else value

    @field_validator("zai_models")
    @classmethod
    def _known_models(cls, value: str) -> str:
        names = [name.strip() for name in value.split(",") if name.strip()]
        unknown = [name for name in names if not ZaiFormatProvider.knows(name)]
        if unknown:
            raise ValueError(f"no rules for {', '.join(unknown)} in the Z.AI format")
        return value

    @model_validator(mode="after")
    def _gateway_needs_url(self) -> ProviderSettings:
        if self.gateway_api_key is not None and not self.gateway_base_url:
            raise ValueError("GATEWAY_BASE_URL is required when GATEWAY_API_KEY is set")
        return self

    @property
    def zai_model_names(self) -> list[str]:
        """ZAI_MODELS as a list (comma-separated in the environment)."""
        return [name.strip() for name in self.zai_models.split(",") if name.strip()]


def build_providers(
    settings: ProviderSettings, http: httpx.AsyncClient, zai: ZaiClient
) -> list[RoutedProvider]:
    """The configured providers in routing order (a provider is on when its key is set)."""
    providers: list[RoutedProvider] = [ZaiFormatProvider(zai, settings.zai_model_names)]
    if settings.gateway_api_key is not None and settings.gateway_base_url:
        providers.append(NewApiClient(http, settings.gateway_base_url, settings.gateway_api_key))
    if settings.geekai_api_key is not None:
        providers.append(GeekaiClient(http, settings.geekai_api_key, settings.geekai_base_url))
    return providers


class Router:
    """Pick the provider of a request, and the next one after a refused submit."""

    def __init__(self, providers: Sequence[RoutedProvider], *, fallback: bool = False) -> None:
        self._providers = tuple(providers)
        self.fallback = fallback

    def models(self) -> list[str]:
        """Every model some configured provider offers (what the commands list)."""
        names: dict[str, None] = {}
        for provider in self._providers:
            names |= dict.fromkeys(provider.models)
        return list(names)

    def names(self) -> list[ProviderName]:
        """The configured providers' names, in routing order."""
        return [p.name for p in self._providers]

    def get(self, name: ProviderName) -> RoutedProvider | None:
        """The configured provider of that name (None: its key is no longer set)."""
        return next((p for p in self._providers if p.name is name), None)

    def providers_for(self, model: str) -> list[RoutedProvider]:
        """The providers offering `model`, in routing order."""
        return [p for p in self._providers if p.offers(model)]

    def choose(self, request: VideoRequest) -> RoutedProvider:
        """The first provider offering the model, after its rules accepted the request."""
        candidates = self.providers_for(request.model)
        if not candidates:
            offered = ", ".join(self.models())
            raise InputError("model.unknown", model=request.model, models=offered)
        candidates[0].check(request)
        return candidates[0]

    def fallback_for(
        self, request: VideoRequest, failed: ProviderName, error: ProviderError
    ) -> RoutedProvider | None:
        """The next provider for a refused submit, or None (fallback off, or not that kind)."""
        if not self.fallback or fallback_reason(error) is None:
            return None
        candidates = self.providers_for(request.model)
        names = [p.name for p in candidates]
        later = candidates[names.index(failed) + 1 :] if failed in names else []
        for provider in later:
            try:
                provider.check(request)
            except InputError:
                continue  # its rules differ (e.g. a size only the first offers): not a fallback
            return provider
        return None


_KEY_NAMES = {
    ProviderName.ZAI: "ZAI_API_KEY",
    ProviderName.GATEWAY: "GATEWAY_API_KEY",
    ProviderName.GEEKAI: "GEEKAI_API_KEY",
}


async def check_keys(providers: Sequence[RoutedProvider]) -> dict[ProviderName, str | None]:
    """For the doctor: each configured provider's key check, None when it passed.

    The verdict names the setting to fix and the error kind; adapters scrub the key out of
    every message, so the text is safe to print.
    """
    verdicts: dict[ProviderName, str | None] = {}
    for provider in providers:
        try:
            await provider.check_key()
        except ProviderError as exc:
            verdicts[provider.name] = (
                f"{_KEY_NAMES[provider.name]}: {exc.kind.value}: {exc.message}"
            )
        else:
            verdicts[provider.name] = None
    return verdicts
