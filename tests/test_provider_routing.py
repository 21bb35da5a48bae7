"""Routing: settings, the order of providers, fallback rules, and a fallback across two fakes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from bot.errors import InputError, ProviderError, ProviderErrorKind
from bot.models import Mode
from bot.provider import TaskStatus
from bot.providers import Picture, ProviderName, VideoRequest
from bot.providers.geekai import DEFAULT_BASE_URL as GEEKAI_DEFAULT_BASE_URL
from bot.providers.geekai import GeekaiClient
from bot.providers.routing import (
    Fallback,
    ProviderSettings,
    Router,
    build_providers,
    check_keys,
)
from bot.providers.zai_format import DEFAULT_MODELS, ZaiFormatProvider
from bot.zai import ZaiClient
from tests.fakes.geekai import FakeGeekai
from tests.fakes.media import make_png
from tests.fakes.reseller import FakeReseller
from tests.fakes.zai import Fault as ZaiFault

ZAI_KEY, GEEK_KEY = "zai-key-0001", "geek-key-0001"
PIC = Picture(make_png(320, 240), "image/png", "https://cdn.example.test/c/1.png?ex=1")
ENV = (
    "GATEWAY_BASE_URL",
    "GATEWAY_API_KEY",
    "GEEKAI_BASE_URL",
    "GEEKAI_API_KEY",
    "ZAI_MODELS",
    "PROVIDER_FALLBACK",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def settings(**values: object) -> ProviderSettings:
    """Settings from values only (no .env)."""
    return ProviderSettings(_env_file=None, **values)  # type: ignore[call-arg]


def test_settings_defaults() -> None:
    s = settings()
    assert s.gateway_api_key is None and s.geekai_api_key is None
    assert s.geekai_base_url == GEEKAI_DEFAULT_BASE_URL
    assert s.zai_model_names == list(DEFAULT_MODELS) and len(DEFAULT_MODELS) == 7
    assert s.provider_fallback is Fallback.OFF


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_BASE_URL", "https://gw.example.test/")
    monkeypatch.setenv("GATEWAY_API_KEY", "sk-env-secret")
    monkeypatch.setenv("ZAI_MODELS", "cogvideox-3, cogvideox-2")
    monkeypatch.setenv("PROVIDER_FALLBACK", "on")
    s = settings()
    assert s.gateway_base_url == "https://gw.example.test"
    assert s.zai_model_names == ["cogvideox-3", "cogvideox-2"]
    assert s.provider_fallback is Fallback.ON
    assert "sk-env-secret" not in repr(s)


def test_gateway_key_needs_its_url() -> None:
    with pytest.raises(ValidationError, match="GATEWAY_BASE_URL is required"):
        settings(gateway_api_key="sk-1")
    assert settings(gateway_api_key="").gateway_api_key is None


def _providers(http: httpx.AsyncClient, **values: object):
    zai = ZaiClient(http, "http://127.0.0.1:9/api/paas/v4", SecretStr(ZAI_KEY))
    return build_providers(settings(**values), http, zai)


def test_a_provider_is_on_when_its_key_is_set(http: httpx.AsyncClient) -> None:
    assert [p.name for p in _providers(http)] == [ProviderName.ZAI]
    every = _providers(
        http, gateway_base_url="http://gw", gateway_api_key="k1", geekai_api_key="k2"
    )
    assert [p.name for p in every] == [ProviderName.ZAI, ProviderName.GATEWAY, ProviderName.GEEKAI]
    router = Router(every)
    assert router.models()[:7] == list(DEFAULT_MODELS)
    assert {"viduq3p-720p", "viduq3p-mix-720p", "cogvideox-flash"} <= set(router.models())


def test_unknown_zai_model_is_refused(http: httpx.AsyncClient) -> None:
    with pytest.raises(ValueError, match="no rules for"):
        _providers(http, zai_models="cogvideox-3,kling-v2")


def test_first_configured_provider_wins(http: httpx.AsyncClient) -> None:
    text = VideoRequest("cogvideox-2", Mode.TEXT, "waves")
    reseller = Router(_providers(http, zai_models="cogvideox-2", geekai_api_key="k"))
    assert reseller.choose(text).name is ProviderName.ZAI
    plain = Router(_providers(http, geekai_api_key="k"))
    assert plain.choose(text).name is ProviderName.GEEKAI
    with pytest.raises(InputError, match="Unknown model `viduq3p-720p`"):
        plain.choose(VideoRequest("viduq3p-720p", Mode.TEXT, "x"))
    with pytest.raises(InputError, match="1 to 16 seconds"):
        Router(_providers(http, gateway_base_url="http://gw", gateway_api_key="k")).choose(
            VideoRequest("viduq3p-720p", Mode.TEXT, "x", {"duration": 17})
        )


def _err(kind: ProviderErrorKind, code: str, status: int | None) -> ProviderError:
    return ProviderError(kind, code, "m", status=status)


def test_fallback_rules(http: httpx.AsyncClient) -> None:
    providers = _providers(http, zai_models="cogvideox-2", geekai_api_key="k")
    text = VideoRequest("cogvideox-2", Mode.TEXT, "waves", {"size": "720x480"})
    balance = _err(ProviderErrorKind.ACCOUNT, "1113", 429)
    assert Router(providers).fallback_for(text, ProviderName.ZAI, balance) is None  # off
    router = Router(providers, fallback=True)
    assert router.fallback_for(text, ProviderName.ZAI, balance).name is ProviderName.GEEKAI
    outage = _err(ProviderErrorKind.RETRY, "502", 502)
    assert router.fallback_for(text, ProviderName.ZAI, outage).name is ProviderName.GEEKAI
    lost = _err(ProviderErrorKind.AMBIGUOUS, "ReadError", None)
    assert router.fallback_for(text, ProviderName.ZAI, lost) is None
    assert (
        router.fallback_for(text, ProviderName.ZAI, _err(ProviderErrorKind.RETRY, "1302", 429))
        is None
    )
    assert router.fallback_for(text, ProviderName.GEEKAI, balance) is None  # nothing after it
    # GeekAI needs a prompt; the reseller took a picture alone: no fallback for that request.
    bare = VideoRequest("cogvideox-2", Mode.IMAGE, None, {}, (PIC,))
    assert router.fallback_for(bare, ProviderName.ZAI, balance) is None


@pytest.fixture
async def two_fakes() -> AsyncIterator[tuple[FakeReseller, FakeGeekai]]:
    """A reseller and GeekAI, both offering cogvideox-2."""
    async with FakeReseller(api_key=ZAI_KEY) as reseller, FakeGeekai(api_key=GEEK_KEY) as geek:
        yield reseller, geek


def _live_router(http: httpx.AsyncClient, reseller: FakeReseller, geek: FakeGeekai) -> Router:
    zai = ZaiFormatProvider(
        ZaiClient(http, reseller.base_url, SecretStr(ZAI_KEY)), ["cogvideox-2", "viduq1-text"]
    )
    return Router([zai, GeekaiClient(http, SecretStr(GEEK_KEY), geek.base_url)], fallback=True)


async def test_balance_refusal_falls_back_to_the_next_provider(
    http: httpx.AsyncClient, two_fakes: tuple[FakeReseller, FakeGeekai]
) -> None:
    reseller, geek = two_fakes
    router = _live_router(http, reseller, geek)
    request = VideoRequest("cogvideox-2", Mode.IMAGE, "smile", {"fps": 60}, (PIC,))
    first = router.choose(request)
    reseller.script("submit", ZaiFault.http(429, "1113", "balance exhausted"))
    with pytest.raises(ProviderError) as caught:
        await first.submit(first.build_body(request))
    second = router.fallback_for(request, first.name, caught.value)
    assert second is not None and second.name is ProviderName.GEEKAI
    task_id = await second.submit(second.build_body(request))
    assert geek.submits[-1]["image"] == PIC.url and reseller.tasks == {}
    assert (await second.get_task(task_id)).status is TaskStatus.SUCCESS


async def test_lost_submit_answer_never_falls_back(
    http: httpx.AsyncClient, two_fakes: tuple[FakeReseller, FakeGeekai]
) -> None:
    reseller, geek = two_fakes
    router = _live_router(http, reseller, geek)
    request = VideoRequest("cogvideox-2", Mode.TEXT, "waves")
    first = router.choose(request)
    reseller.script("submit", ZaiFault.accept_then_drop())
    with pytest.raises(ProviderError) as caught:
        await first.submit(first.build_body(request))
    assert caught.value.kind is ProviderErrorKind.AMBIGUOUS
    assert router.fallback_for(request, first.name, caught.value) is None
    assert len(reseller.tasks) == 1 and geek.submits == []


@pytest.mark.parametrize(
    ("model", "mode", "prompt", "options", "pictures"),
    [
        ("cogvideox-2", Mode.TEXT, "waves", {"size": "1280x960", "fps": 60, "audio": True}, ()),
        ("cogvideox-2", Mode.IMAGE, None, {"quality": "quality", "duration": 10}, (PIC,)),
        ("viduq1-text", Mode.TEXT, "an eagle", {"style": "anime"}, ()),
    ],
)
async def test_zai_format_bodies_pass_the_reseller(
    http: httpx.AsyncClient,
    two_fakes: tuple[FakeReseller, FakeGeekai],
    model,
    mode,
    prompt,
    options,
    pictures,
) -> None:
    reseller, geek = two_fakes
    provider = _live_router(http, reseller, geek).choose(
        VideoRequest(model, mode, prompt, options, pictures, "req-000001", "user-000001")
    )
    request = VideoRequest(model, mode, prompt, options, pictures, "req-000001", "user-000001")
    task_id = await provider.submit(provider.build_body(request))
    assert reseller.rejected == []
    if pictures:
        assert reseller.submits[-1]["image_url"].startswith("data:image/png;base64,")
    assert (await provider.get_task(task_id)).status is TaskStatus.SUCCESS


async def test_doctor_checks_each_configured_key(
    http: httpx.AsyncClient, two_fakes: tuple[FakeReseller, FakeGeekai]
) -> None:
    reseller, geek = two_fakes
    good = _live_router(http, reseller, geek)
    providers = [*good.providers_for("cogvideox-2")]
    assert await check_keys(providers) == {ProviderName.ZAI: None, ProviderName.GEEKAI: None}
    wrong = GeekaiClient(http, SecretStr("geek-wrong-999"), geek.base_url)
    verdicts = await check_keys([providers[0], wrong])
    assert verdicts[ProviderName.ZAI] is None
    assert verdicts[ProviderName.GEEKAI].startswith("GEEKAI_API_KEY: auth")
    assert "geek-wrong-999" not in verdicts[ProviderName.GEEKAI]


def test_zai_format_checks_use_the_model_table(http: httpx.AsyncClient) -> None:
    router = Router(_providers(http, zai_models="cogvideox-3,cogvideox-2"))
    with pytest.raises(InputError, match="no `seed` option"):
        router.choose(VideoRequest("cogvideox-3", Mode.TEXT, "x", {"seed": 1}))
    with pytest.raises(InputError, match="5 / 10"):
        router.choose(VideoRequest("cogvideox-3", Mode.TEXT, "x", {"duration": 7}))
    assert router.choose(VideoRequest("cogvideox-2", Mode.TEXT, "x", {"fps": 60})).name == "zai"


def test_zai_models_naming_an_unknown_model_is_one_settings_line() -> None:
    from bot.settings import Settings, describe_errors

    with pytest.raises(ValidationError) as caught:
        Settings(
            _env_file=None,
            discord_token="t" * 10,
            zai_api_key="k" * 10,
            zai_models="cogvideox-3,nope",
        )  # type: ignore[call-arg]
    assert describe_errors(caught.value) == [
        "ZAI_MODELS is invalid: Value error, no rules for nope in the Z.AI format"
    ]
