"""Pictures for URL-only providers: published under expiring links, fetched by the fakes."""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import pytest
from pydantic import SecretStr

from bot.errors import ProviderError, ProviderErrorKind
from bot.models import Mode
from bot.provider import TaskStatus
from bot.providers import Picture, VideoRequest, with_links
from bot.providers.geekai import GeekaiClient
from bot.providers.newapi import NewApiClient
from bot.providers.zai_format import ZaiFormatProvider
from bot.zai import ZaiClient
from tests.fakes.cdn import FakeCdn
from tests.fakes.geekai import FakeGeekai
from tests.fakes.media import make_jpeg, make_png, make_webp
from tests.fakes.newapi import FakeNewApi

PNG = Picture(make_png(320, 240), "image/png")
JPEG = Picture(make_jpeg(300, 200), "image/jpeg")
WEBP = Picture(make_webp(256, 256), "image/webp")
KEY = "sk-pictures-key-1"


async def test_references_arrive_intact_at_the_gateway(http: httpx.AsyncClient) -> None:
    async with FakeCdn() as cdn, FakeNewApi(api_key=KEY, fetch_pictures=True) as fake:
        client = NewApiClient(http, fake.base_url, SecretStr(KEY))
        request = VideoRequest(
            "viduq3p-mix-720p", Mode.REFERENCE, "@Image1 @Image2 @Image3", {}, (PNG, JPEG, WEBP)
        )
        client.check(request)
        ready = await with_links(request, client, cdn)
        task_id = await client.submit(client.build_body(ready))
        assert [size for _, *size in fake.fetched] == [[320, 240], [300, 200], [256, 256]]
        assert (await client.get_task(task_id)).status is TaskStatus.SUCCESS


async def test_frames_arrive_intact_at_geekai(http: httpx.AsyncClient) -> None:
    async with FakeCdn() as cdn, FakeGeekai(api_key=KEY, fetch_pictures=True) as fake:
        client = GeekaiClient(http, SecretStr(KEY), fake.base_url)
        request = VideoRequest("cogvideox-flash", Mode.FRAMES, "morph", {}, (PNG, JPEG))
        ready = await with_links(request, client, cdn)
        await client.submit(client.build_body(ready))
        assert [url for url, *_ in fake.fetched] == [p.url for p in ready.pictures]
        assert fake.submits[-1]["image_tail"] == ready.pictures[1].url


async def test_an_expired_link_is_refused_not_charged(http: httpx.AsyncClient) -> None:
    async with FakeCdn() as cdn, FakeGeekai(api_key=KEY, fetch_pictures=True, balance=5) as fake:
        client = GeekaiClient(http, SecretStr(KEY), fake.base_url)
        ready = await with_links(
            VideoRequest("cogvideox", Mode.IMAGE, "go", {}, (PNG,)), client, cdn
        )
        cdn.expire_all()
        with pytest.raises(ProviderError) as caught:
            await client.submit(client.build_body(ready))
    assert caught.value.kind is ProviderErrorKind.BAD_REQUEST and fake.balance == 5


async def test_links_are_kept_and_inline_providers_skip_publishing(
    http: httpx.AsyncClient,
) -> None:
    async with FakeCdn() as cdn:
        gateway = NewApiClient(http, "http://127.0.0.1:9", SecretStr(KEY))
        request = VideoRequest("viduq3p-720p", Mode.IMAGE, "go", {}, (PNG,))
        once = await with_links(request, gateway, cdn)
        again = await with_links(once, gateway, cdn)  # a fallback or resubmit reuses the link
        assert again == once and cdn.published == 1
        zai = ZaiFormatProvider(ZaiClient(http, "http://127.0.0.1:9", SecretStr(KEY)))
        assert await with_links(request, zai, cdn) is request and cdn.published == 1


class _ShortPublisher:
    """Returns fewer links than pictures (a bug the helper must catch)."""

    async def publish(self, request: VideoRequest) -> Sequence[str]:
        return []


async def test_a_publisher_must_link_every_picture(http: httpx.AsyncClient) -> None:
    gateway = NewApiClient(http, "http://127.0.0.1:9", SecretStr(KEY))
    request = VideoRequest("viduq3p-720p", Mode.IMAGE, "go", {}, (PNG,))
    with pytest.raises(ValueError, match="0 links for 1 pictures"):
        await with_links(request, gateway, _ShortPublisher())
