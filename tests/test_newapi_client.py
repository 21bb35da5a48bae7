"""The New-API gateway adapter against its fake over real HTTP: every mode, progress, faults."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from bot.errors import ProviderError, ProviderErrorKind
from bot.models import Mode
from bot.provider import TaskStatus
from bot.providers import Picture, VideoRequest, catalog
from bot.providers import ProviderName as P
from bot.providers.newapi import NewApiClient, build_body, classify, parse_task
from tests.fakes.media import make_jpeg, make_png
from tests.fakes.newapi import FakeNewApi, Fault

PIC1 = Picture(make_png(320, 240), "image/png", "https://cdn.example.test/a/1.png?ex=1")
PIC2 = Picture(make_jpeg(320, 240), "image/jpeg", "https://cdn.example.test/a/2.jpg?ex=1")
PIC3 = Picture(make_png(300, 300), "image/png", "https://cdn.example.test/a/3.png?ex=1")
KEY = "sk-gateway-secret-123456"

MODE_CASES = [
    ("viduq3p-540p", Mode.TEXT, "a slow push-in", {"aspect_ratio": "16:9", "audio": False}, ()),
    ("viduq3p-720p", Mode.TEXT, "a fox", {"duration": 16, "seed": 42, "bgm": True}, ()),
    ("viduq3p-1080p", Mode.IMAGE, "natural motion", {"duration": 1}, (PIC1,)),
    ("viduq3t-540p", Mode.IMAGE, "wind", {"seed": 7}, (PIC2,)),
    ("viduq3t-720p", Mode.FRAMES, "keep identity", {"duration": 6}, (PIC1, PIC2)),
    ("viduq3t-1080p", Mode.TEXT, "rain", {"aspect_ratio": "9:16", "audio": True}, ()),
    ("viduq3p-720p", Mode.FRAMES, "morph", {}, (PIC2, PIC1)),
    (
        "viduq3p-mix-720p",
        Mode.REFERENCE,
        "A @Image1 walking on a beach in the style of @Image2 with @Image3",
        {"aspect_ratio": "1:1", "audio": False, "seed": 42},
        (PIC1, PIC2, PIC3),
    ),
]


def request(model, mode, prompt, options, pictures) -> VideoRequest:
    """A neutral request, checked by the catalog as the engine will."""
    req = VideoRequest(model, mode, prompt, options, pictures, "req-000001", "user-000001")
    catalog.check_request(catalog.rules_for(P.GATEWAY, model), req)
    return req


@pytest.fixture
async def fake() -> AsyncIterator[FakeNewApi]:
    """A running fake gateway."""
    async with FakeNewApi(api_key=KEY) as running:
        yield running


@pytest.fixture
def client(http: httpx.AsyncClient, fake: FakeNewApi) -> NewApiClient:
    """The adapter pointed at the fake."""
    return NewApiClient(http, fake.base_url, SecretStr(KEY))


TEXT = request("viduq3p-720p", Mode.TEXT, "a cat", {}, ())


@pytest.mark.parametrize(("model", "mode", "prompt", "options", "pictures"), MODE_CASES)
async def test_every_mode_passes_the_fake_and_finishes(
    client: NewApiClient, fake: FakeNewApi, model, mode, prompt, options, pictures
) -> None:
    req = request(model, mode, prompt, options, pictures)
    task_id = await client.submit(client.build_body(req))
    assert fake.rejected == []
    sent = fake.submits[-1]
    assert sent["model"] == model and sent["prompt"] == prompt
    assert sent["duration"] == options.get("duration", 5)
    state = await client.get_task(task_id)
    assert state.status is TaskStatus.SUCCESS and state.video_url == fake.video_url(task_id)
    assert state.progress == 100


def test_body_mapping_per_mode() -> None:
    frames = build_body(request("viduq3t-720p", Mode.FRAMES, "x", {"seed": 1}, (PIC1, PIC2)))
    assert frames == {
        "model": "viduq3t-720p",
        "prompt": "x",
        "duration": 5,
        "image": PIC1.url,
        "last_image": PIC2.url,
        "extra_body": {"seed": 1},
    }
    image = build_body(request("viduq3p-540p", Mode.IMAGE, "y", {}, (PIC1,)))
    assert image == {"model": "viduq3p-540p", "prompt": "y", "duration": 5, "image": PIC1.url}
    refs = build_body(request("viduq3p-mix-720p", Mode.REFERENCE, "@Image1", {}, (PIC1, PIC2)))
    assert refs["reference_image_urls"] == [PIC1.url, PIC2.url] and "image" not in refs
    text = build_body(request("viduq3p-720p", Mode.TEXT, "z", {"aspect_ratio": "1:1"}, ()))
    assert text == {"model": "viduq3p-720p", "prompt": "z", "duration": 5, "aspect_ratio": "1:1"}


def test_pictures_without_a_link_are_an_engine_bug() -> None:
    unpublished = Picture(make_png(), "image/png")
    req = VideoRequest("viduq3p-540p", Mode.IMAGE, "x", {}, (unpublished,))
    with pytest.raises(ValueError, match="publish the picture"):
        build_body(req)


async def test_progress_is_reported_while_running(http: httpx.AsyncClient) -> None:
    async with FakeNewApi(api_key=KEY, hold_all=True) as fake:
        client = NewApiClient(http, fake.base_url, SecretStr(KEY))
        task_id = await client.submit(client.build_body(TEXT))
        state = await client.get_task(task_id)
        assert state.status is TaskStatus.PROCESSING and state.progress == 0
        fake.tasks[task_id].held = False
        fake.tasks[task_id].seconds = 1e9  # far from done: progress stays below 100
        state = await client.get_task(task_id)
        assert state.status is TaskStatus.PROCESSING and 0 <= state.progress < 100
        fake.finish(task_id)
        assert (await client.get_task(task_id)).status is TaskStatus.SUCCESS


async def test_failed_task_reports_fail(client: NewApiClient) -> None:
    req = request("viduq3p-720p", Mode.TEXT, "FAILME please", {}, ())
    state = await client.get_task(await client.submit(client.build_body(req)))
    assert state.status is TaskStatus.FAIL and "FAILME" in (state.message or "")


SUBMIT_FAULTS = [
    (Fault.http(429, "rate_limit_exceeded", "slow down", retry_after=3), ProviderErrorKind.RETRY),
    (Fault.http(429, "", "too many"), ProviderErrorKind.RETRY),
    (Fault.http(500, "", "boom"), ProviderErrorKind.RETRY),
    (Fault.http(502, "", "bad gateway"), ProviderErrorKind.RETRY),
    (Fault.http(503, "upstream_unavailable", "busy"), ProviderErrorKind.RETRY),
    (Fault.http(504, "", "upstream timed out"), ProviderErrorKind.AMBIGUOUS),
    (Fault.http(403, "insufficient_user_quota", "no quota"), ProviderErrorKind.ACCOUNT),
    (Fault.http(429, "insufficient_quota", "no quota"), ProviderErrorKind.ACCOUNT),
    (Fault.http(401, "invalid_api_key", "bad key"), ProviderErrorKind.AUTH),
    (Fault.http(400, "invalid_request", "bad field"), ProviderErrorKind.BAD_REQUEST),
    (Fault.http(400, "content_policy_violation", "no"), ProviderErrorKind.CONTENT_FILTER),
    (Fault.reset(), ProviderErrorKind.AMBIGUOUS),
    (Fault.accept_then_drop(), ProviderErrorKind.AMBIGUOUS),
    (Fault.malformed(), ProviderErrorKind.AMBIGUOUS),
    (Fault.malformed(b'{"object": "video.generation.job"}'), ProviderErrorKind.AMBIGUOUS),
]


@pytest.mark.parametrize(("fault", "kind"), SUBMIT_FAULTS)
async def test_submit_fault_table(
    client: NewApiClient, fake: FakeNewApi, fault: Fault, kind: ProviderErrorKind
) -> None:
    fake.script("submit", fault)
    with pytest.raises(ProviderError) as caught:
        await client.submit(client.build_body(TEXT))
    assert caught.value.kind is kind
    assert caught.value.retry_after == fault.retry_after
    assert KEY not in str(caught.value)


async def test_lost_submit_answer_is_never_resent(client: NewApiClient, fake: FakeNewApi) -> None:
    fake.script("submit", Fault.accept_then_drop())
    with pytest.raises(ProviderError) as caught:
        await client.submit(client.build_body(TEXT))
    assert caught.value.kind is ProviderErrorKind.AMBIGUOUS
    # The task exists at the gateway, and the adapter sent exactly one POST (no hidden retry).
    assert len(fake.tasks) == 1
    assert fake.requests.count(("POST", "/v1/video/generations")) == 1


async def test_unreachable_gateway_is_safe_to_retry(http: httpx.AsyncClient) -> None:
    client = NewApiClient(http, "http://127.0.0.1:9", SecretStr(KEY))
    with pytest.raises(ProviderError) as caught:
        await client.submit(build_body(TEXT))
    assert caught.value.kind is ProviderErrorKind.RETRY and caught.value.status is None


async def test_balance_exhausted(http: httpx.AsyncClient) -> None:
    async with FakeNewApi(api_key=KEY, balance=1) as fake:
        client = NewApiClient(http, fake.base_url, SecretStr(KEY))
        await client.submit(build_body(TEXT))
        with pytest.raises(ProviderError) as caught:
            await client.submit(build_body(TEXT))
    assert caught.value.kind is ProviderErrorKind.ACCOUNT
    assert caught.value.code == "insufficient_user_quota" and caught.value.status == 403


async def test_content_filter(client: NewApiClient) -> None:
    req = request("viduq3p-720p", Mode.TEXT, "BLOCKME", {}, ())
    with pytest.raises(ProviderError) as caught:
        await client.submit(build_body(req))
    assert caught.value.kind is ProviderErrorKind.CONTENT_FILTER


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        (Fault.reset(), ProviderErrorKind.RETRY),
        (Fault.accept_then_drop(), ProviderErrorKind.RETRY),
        (Fault.malformed(), ProviderErrorKind.RETRY),
        (Fault.http(429, "", "slow"), ProviderErrorKind.RETRY),
        (Fault.http(502, "", "bad gateway"), ProviderErrorKind.RETRY),
        (Fault.http(504, "", "timeout"), ProviderErrorKind.RETRY),  # reading twice is harmless
    ],
)
async def test_poll_faults_are_retryable(
    client: NewApiClient, fake: FakeNewApi, fault: Fault, kind: ProviderErrorKind
) -> None:
    task_id = await client.submit(build_body(TEXT))
    fake.script("poll", fault)
    with pytest.raises(ProviderError) as caught:
        await client.get_task(task_id)
    assert caught.value.kind is kind
    assert (await client.get_task(task_id)).status is TaskStatus.SUCCESS


async def test_unknown_task_is_bad_request(client: NewApiClient) -> None:
    with pytest.raises(ProviderError) as caught:
        await client.get_task("task_nope")
    assert caught.value.kind is ProviderErrorKind.BAD_REQUEST


async def test_check_key(http: httpx.AsyncClient, fake: FakeNewApi, client: NewApiClient) -> None:
    await client.check_key()
    wrong = NewApiClient(http, fake.base_url, SecretStr("sk-wrong-key-987654"))
    with pytest.raises(ProviderError) as caught:
        await wrong.check_key()
    assert caught.value.kind is ProviderErrorKind.AUTH
    assert "sk-wrong-key-987654" not in str(caught.value)


async def test_key_quoted_in_an_error_is_scrubbed(client: NewApiClient, fake: FakeNewApi) -> None:
    fake.script("submit", Fault.http(400, "invalid_request", f"bad header Bearer {KEY}"))
    with pytest.raises(ProviderError) as caught:
        await client.submit(build_body(TEXT))
    assert KEY not in caught.value.message and "[redacted]" in caught.value.message


def test_offers_the_catalog_models(http: httpx.AsyncClient) -> None:
    client = NewApiClient(http, "http://127.0.0.1:9", SecretStr(KEY))
    assert all(client.offers(m) for m in catalog.models_of(P.GATEWAY))
    assert not client.offers("cogvideox-flash")


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (403, "pre_consume_token_quota_failed", ProviderErrorKind.ACCOUNT),
        (402, "402", ProviderErrorKind.ACCOUNT),
        (403, "403", ProviderErrorKind.AUTH),
        (400, "prompt_blocked", ProviderErrorKind.CONTENT_FILTER),
        (503, "get_channel_failed", ProviderErrorKind.RETRY),
        (422, "422", ProviderErrorKind.BAD_REQUEST),
        (500, "500", ProviderErrorKind.RETRY),
    ],
)
def test_classify_table(status: int, code: str, kind: ProviderErrorKind) -> None:
    assert classify(status, code) is kind


@pytest.mark.parametrize(
    ("answer", "status", "progress"),
    [
        ({"status": "SUCCESS", "url": "https://v/1.mp4"}, TaskStatus.SUCCESS, 100),
        ({"status": "FAILURE", "error": {"message": "no"}}, TaskStatus.FAIL, None),
        ({"status": "NOT_START", "progress": "30%"}, TaskStatus.PROCESSING, 30),
        ({"code": "success", "data": {"status": "in_progress", "progress": 55}}, None, 55),
        ({"status": "completed"}, TaskStatus.FAIL, None),  # success without a video
    ],
)
def test_parse_tolerates_new_api_variants(answer: dict, status, progress) -> None:
    state = parse_task(answer)
    assert state.status is (status or TaskStatus.PROCESSING)
    assert state.progress == progress
