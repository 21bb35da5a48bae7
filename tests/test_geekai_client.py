"""The GeekAI adapter against its fake over real HTTP: every mode, progress, faults."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest
from pydantic import SecretStr

from bot.errors import ProviderError, ProviderErrorKind
from bot.models import Mode
from bot.provider import TaskStatus
from bot.providers import Picture, VideoRequest, catalog
from bot.providers import ProviderName as P
from bot.providers.geekai import DEFAULT_BASE_URL, GeekaiClient, build_body, classify, parse_task
from tests.fakes.geekai import FakeGeekai, Fault
from tests.fakes.media import make_jpeg, make_png

PIC1 = Picture(make_png(320, 240), "image/png", "https://cdn.example.test/b/1.png?ex=1")
PIC2 = Picture(make_jpeg(320, 240), "image/jpeg", "https://cdn.example.test/b/2.jpg?ex=1")
KEY = "geek-secret-key-abcdef"

MODE_CASES = [
    ("cogvideox-flash", Mode.TEXT, "rabbit driving", {}),
    (
        "cogvideox-flash",
        Mode.TEXT,
        "kittens",
        {"size": "720x480", "fps": 24, "quality": "speed", "negative_prompt": "blur"},
    ),
    ("cogvideox-flash", Mode.IMAGE, "move", {}),
    ("cogvideox-flash", Mode.FRAMES, "morph", {"fps": 60, "duration": 10}),
    ("cogvideox", Mode.TEXT, "a city", {"audio": True, "watermark": True, "size": "1920x1080"}),
    ("cogvideox", Mode.IMAGE, "breeze", {"quality": "quality", "duration": 10}),
    ("cogvideox", Mode.FRAMES, "turn", {}),
    ("cogvideox-2", Mode.TEXT, "waves", {"size": "3840x2160", "fps": 30}),
    ("cogvideox-2", Mode.IMAGE, "smile", {"size": "960x1280", "audio": False}),
    ("cogvideox-2", Mode.FRAMES, "walk", {"watermark": False}),
]
PICTURES = {Mode.TEXT: (), Mode.IMAGE: (PIC1,), Mode.FRAMES: (PIC1, PIC2)}


def request(model: str, mode: Mode, prompt: str | None, options: dict) -> VideoRequest:
    """A neutral request, checked by the catalog as the engine will."""
    req = VideoRequest(model, mode, prompt, options, PICTURES[mode], "req-000001", "user-000001")
    catalog.check_request(catalog.rules_for(P.GEEKAI, model), req)
    return req


@pytest.fixture
async def fake() -> AsyncIterator[FakeGeekai]:
    """A running fake GeekAI."""
    async with FakeGeekai(api_key=KEY) as running:
        yield running


@pytest.fixture
def client(http: httpx.AsyncClient, fake: FakeGeekai) -> GeekaiClient:
    """The adapter pointed at the fake."""
    return GeekaiClient(http, SecretStr(KEY), fake.base_url)


TEXT = request("cogvideox-flash", Mode.TEXT, "a cat", {})


@pytest.mark.parametrize(("model", "mode", "prompt", "options"), MODE_CASES)
async def test_every_mode_passes_the_fake_and_finishes(
    client: GeekaiClient, fake: FakeGeekai, model, mode, prompt, options
) -> None:
    task_id = await client.submit(client.build_body(request(model, mode, prompt, options)))
    assert fake.rejected == []
    sent = fake.submits[-1]
    assert sent["model"] == model and sent["async"] is True
    state = await client.get_task(task_id)
    assert state.status is TaskStatus.SUCCESS
    assert state.video_url == fake.video_url(task_id) and state.cover_url == fake.cover_url(task_id)


def test_body_mapping_per_mode() -> None:
    text = build_body(
        request("cogvideox", Mode.TEXT, "t", {"audio": True, "negative_prompt": "n", "fps": 60})
    )
    assert text == {
        "model": "cogvideox",
        "prompt": "t",
        "async": True,
        "duration": 5,
        "with_audio": True,
        "negative_prompt": "n",
        "fps": 60,
    }
    image = build_body(request("cogvideox-2", Mode.IMAGE, "i", {"size": "1280x960"}))
    assert image["image"] == PIC1.url and "image_tail" not in image and image["size"] == "1280x960"
    frames = build_body(request("cogvideox-flash", Mode.FRAMES, "f", {"watermark": True}))
    assert (frames["image"], frames["image_tail"]) == (PIC1.url, PIC2.url)
    assert frames["watermark"] is True


def test_default_base_url_is_the_seeds() -> None:
    parts = urlsplit(DEFAULT_BASE_URL)  # the seed's root (a constant; tests never dial it)
    assert (parts.scheme, parts.hostname, parts.path) == ("https", "geekai.co", "/api/v1")


@pytest.mark.parametrize("word", ["succeed", "success"])
async def test_both_spellings_of_success(http: httpx.AsyncClient, word: str) -> None:
    async with FakeGeekai(api_key=KEY, success_word=word) as fake:
        client = GeekaiClient(http, SecretStr(KEY), fake.base_url)
        state = await client.get_task(await client.submit(build_body(TEXT)))
    assert state.status is TaskStatus.SUCCESS and state.progress == 100


async def test_progress_is_reported_while_running(http: httpx.AsyncClient) -> None:
    async with FakeGeekai(api_key=KEY, hold_all=True) as fake:
        client = GeekaiClient(http, SecretStr(KEY), fake.base_url)
        task_id = await client.submit(build_body(TEXT))
        state = await client.get_task(task_id)
        assert state.status is TaskStatus.PROCESSING and state.progress == 0
        fake.tasks[task_id].held = False
        fake.tasks[task_id].seconds = 1e9
        state = await client.get_task(task_id)
        assert state.status is TaskStatus.PROCESSING and state.progress is not None
        fake.finish(task_id)
        assert (await client.get_task(task_id)).status is TaskStatus.SUCCESS


async def test_failed_task_reports_fail(client: GeekaiClient) -> None:
    req = request("cogvideox-flash", Mode.TEXT, "FAILME", {})
    state = await client.get_task(await client.submit(build_body(req)))
    assert state.status is TaskStatus.FAIL and "FAILME" in (state.message or "")


SUBMIT_FAULTS = [
    (Fault.http(429, "1302", "rate limit", retry_after=2), ProviderErrorKind.RETRY),
    (Fault.http(429, "1305", "overloaded"), ProviderErrorKind.RETRY),
    (Fault.http(429, "1113", "balance"), ProviderErrorKind.ACCOUNT),
    (Fault.http(402, "", "pay up"), ProviderErrorKind.ACCOUNT),
    (Fault.http(500, "", "boom"), ProviderErrorKind.RETRY),
    (Fault.http(503, "", "down"), ProviderErrorKind.RETRY),
    (Fault.http(504, "", "upstream timed out"), ProviderErrorKind.AMBIGUOUS),
    (Fault.http(401, "", "bad key"), ProviderErrorKind.AUTH),
    (Fault.http(400, "1301", "filter"), ProviderErrorKind.CONTENT_FILTER),
    (Fault.http(400, "invalid_parameter", "bad"), ProviderErrorKind.BAD_REQUEST),
    (Fault.reset(), ProviderErrorKind.AMBIGUOUS),
    (Fault.accept_then_drop(), ProviderErrorKind.AMBIGUOUS),
    (Fault.malformed(), ProviderErrorKind.AMBIGUOUS),
    (Fault.malformed(b'{"task_status": "pending"}'), ProviderErrorKind.AMBIGUOUS),
]


@pytest.mark.parametrize(("fault", "kind"), SUBMIT_FAULTS)
async def test_submit_fault_table(
    client: GeekaiClient, fake: FakeGeekai, fault: Fault, kind: ProviderErrorKind
) -> None:
    fake.script("submit", fault)
    with pytest.raises(ProviderError) as caught:
        await client.submit(build_body(TEXT))
    assert caught.value.kind is kind
    assert caught.value.retry_after == fault.retry_after
    assert KEY not in str(caught.value)


async def test_lost_submit_answer_is_never_resent(client: GeekaiClient, fake: FakeGeekai) -> None:
    fake.script("submit", Fault.accept_then_drop())
    with pytest.raises(ProviderError) as caught:
        await client.submit(build_body(TEXT))
    assert caught.value.kind is ProviderErrorKind.AMBIGUOUS
    assert len(fake.tasks) == 1
    assert fake.requests.count(("POST", "/api/v1/videos/generations")) == 1


async def test_balance_exhausted(http: httpx.AsyncClient) -> None:
    async with FakeGeekai(api_key=KEY, balance=0) as fake:
        client = GeekaiClient(http, SecretStr(KEY), fake.base_url)
        with pytest.raises(ProviderError) as caught:
            await client.submit(build_body(TEXT))
    assert caught.value.kind is ProviderErrorKind.ACCOUNT and caught.value.code == "1113"


async def test_content_filter(client: GeekaiClient) -> None:
    with pytest.raises(ProviderError) as caught:
        await client.submit(build_body(request("cogvideox", Mode.TEXT, "BLOCKME", {})))
    assert caught.value.kind is ProviderErrorKind.CONTENT_FILTER


@pytest.mark.parametrize(
    "fault",
    [
        Fault.reset(),
        Fault.accept_then_drop(),
        Fault.malformed(),
        Fault.http(429, "1302", "slow"),
        Fault.http(502, "", "bad gateway"),
    ],
)
async def test_poll_faults_are_retryable(
    client: GeekaiClient, fake: FakeGeekai, fault: Fault
) -> None:
    task_id = await client.submit(build_body(TEXT))
    fake.script("poll", fault)
    with pytest.raises(ProviderError) as caught:
        await client.get_task(task_id)
    assert caught.value.kind is ProviderErrorKind.RETRY
    assert (await client.get_task(task_id)).status is TaskStatus.SUCCESS


async def test_check_key(http: httpx.AsyncClient, fake: FakeGeekai, client: GeekaiClient) -> None:
    await client.check_key()
    wrong = GeekaiClient(http, SecretStr("geek-wrong-key-000"), fake.base_url)
    with pytest.raises(ProviderError) as caught:
        await wrong.check_key()
    assert caught.value.kind is ProviderErrorKind.AUTH
    assert "geek-wrong-key-000" not in str(caught.value)


def test_parse_tolerates_shapes() -> None:
    listed = parse_task({"task_status": "SUCCESS", "video_result": [{"url": "https://v/1.mp4"}]})
    assert listed.status is TaskStatus.SUCCESS and listed.video_url == "https://v/1.mp4"
    empty = parse_task({"task_status": "succeed", "video_result": None})
    assert empty.status is TaskStatus.FAIL
    failed = parse_task({"task_status": "failed", "error": {"code": "x", "details": "why"}})
    assert failed.status is TaskStatus.FAIL and failed.message == "why"
    odd = parse_task({"task_status": "weird", "progress": "45%"})
    assert odd.status is TaskStatus.PROCESSING and odd.progress == 45


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (429, "1113", ProviderErrorKind.ACCOUNT),
        (400, "1301", ProviderErrorKind.CONTENT_FILTER),
        (401, "401", ProviderErrorKind.AUTH),
        (404, "404", ProviderErrorKind.BAD_REQUEST),
        (503, "503", ProviderErrorKind.RETRY),
    ],
)
def test_classify_table(status: int, code: str, kind: ProviderErrorKind) -> None:
    assert classify(status, code) is kind


async def test_refused_at_creation_is_not_a_task(client: GeekaiClient, fake: FakeGeekai) -> None:
    answer = (
        b'{"task_id": "t-1", "task_status": "failed", "error": {"code": "1301", "message": "no"}}'
    )
    fake.script("submit", Fault.malformed(answer))
    with pytest.raises(ProviderError) as caught:
        await client.submit(build_body(TEXT))
    assert caught.value.kind is ProviderErrorKind.CONTENT_FILTER and caught.value.code == "1301"
