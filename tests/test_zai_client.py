"""The Z.AI client against the fake over real HTTP: every model mode, the error taxonomy."""

from __future__ import annotations

import uuid

import httpx
import pytest
from pydantic import SecretStr

from bot import models
from bot.errors import ProviderError, ProviderErrorKind
from bot.images import to_data_uri
from bot.models import Mode, VideoOptions
from bot.provider import TaskStatus
from bot.zai import ZaiClient, classify
from tests.fakes.media import make_jpeg, make_png, make_webp
from tests.fakes.zai import FakeZai, Fault

PNG = to_data_uri(make_png(320, 240), "image/png")
JPEG = to_data_uri(make_jpeg(320, 240), "image/jpeg")
WEBP = to_data_uri(make_webp(300, 240), "image/webp")

MODE_CASES = [
    ("cogvideox-3", Mode.TEXT, "a cat", VideoOptions(quality="quality", audio=True, fps=60), []),
    ("cogvideox-3", Mode.IMAGE, "move", VideoOptions(size="1920x1080", duration=10), [PNG]),
    ("cogvideox-3", Mode.FRAMES, None, VideoOptions(quality="speed"), [PNG, JPEG]),
    ("viduq1-text", Mode.TEXT, "an eagle", VideoOptions(style="anime", aspect_ratio="1:1"), []),
    ("viduq1-image", Mode.IMAGE, None, VideoOptions(movement="large", audio=True), [WEBP]),
    ("vidu2-image", Mode.IMAGE, "wave", VideoOptions(duration=4), [JPEG]),
    ("viduq1-start-end", Mode.FRAMES, "morph", VideoOptions(), [PNG, PNG]),
    ("vidu2-start-end", Mode.FRAMES, None, VideoOptions(movement="small"), [JPEG, PNG]),
    (
        "vidu2-reference",
        Mode.REFERENCE,
        "friends",
        VideoOptions(aspect_ratio="9:16"),
        [PNG, JPEG, WEBP],
    ),
]


def body(
    model: str, mode: Mode, prompt: str | None, options: VideoOptions, images: list[str]
) -> dict:
    """A request body as the engine builds it."""
    return models.build_body(
        model, mode, prompt, options, images, request_id=uuid.uuid4().hex, user_id="123456789"
    )


@pytest.mark.parametrize(("model", "mode", "prompt", "options", "images"), MODE_CASES)
async def test_every_model_mode_passes_the_schema(
    zai_client: ZaiClient, fake_zai: FakeZai, model, mode, prompt, options, images
) -> None:
    task_id = await zai_client.submit(body(model, mode, prompt, options, images))
    assert fake_zai.rejected == []
    assert fake_zai.submits[-1]["model"] == model
    state = await zai_client.get_task(task_id)
    assert state.status is TaskStatus.SUCCESS
    assert state.video_url and state.cover_url


async def test_wrong_key_is_auth(http: httpx.AsyncClient, fake_zai: FakeZai) -> None:
    client = ZaiClient(http, fake_zai.base_url, SecretStr("wrong-key-123"))
    with pytest.raises(ProviderError) as caught:
        await client.check_key()
    assert caught.value.kind is ProviderErrorKind.AUTH
    assert "wrong-key-123" not in str(caught.value)


async def test_check_key_accepts_good_key(zai_client: ZaiClient) -> None:
    await zai_client.check_key()


ERROR_CASES = [
    (Fault.http(429, code="1302", message="rate", retry_after=3), ProviderErrorKind.RETRY, 3.0),
    (Fault.http(429, code="1305", message="overloaded"), ProviderErrorKind.RETRY, None),
    (Fault.http(429, code="1113", message="balance"), ProviderErrorKind.ACCOUNT, None),
    (Fault.http(429, code="1308", message="limit"), ProviderErrorKind.ACCOUNT, None),
    (Fault.http(401, code="1000", message="auth"), ProviderErrorKind.AUTH, None),
    (Fault.http(400, code="1301", message="filter"), ProviderErrorKind.CONTENT_FILTER, None),
    (Fault.http(400, code="1213", message="param"), ProviderErrorKind.BAD_REQUEST, None),
    (Fault.http(500, code="500", message="boom"), ProviderErrorKind.RETRY, None),
    (Fault.reset(), ProviderErrorKind.AMBIGUOUS, None),
    (Fault.accept_then_drop(), ProviderErrorKind.AMBIGUOUS, None),
]


@pytest.mark.parametrize(("fault", "kind", "retry_after"), ERROR_CASES)
async def test_submit_error_taxonomy(
    zai_client: ZaiClient, fake_zai: FakeZai, fault: Fault, kind: ProviderErrorKind, retry_after
) -> None:
    fake_zai.script("submit", fault)
    with pytest.raises(ProviderError) as caught:
        await zai_client.submit(body("viduq1-text", Mode.TEXT, "a cat", VideoOptions(), []))
    assert caught.value.kind is kind
    assert caught.value.retry_after == retry_after


async def test_connection_refused_is_safe_to_retry(http: httpx.AsyncClient) -> None:
    client = ZaiClient(http, "http://127.0.0.1:9/api/paas/v4", SecretStr("k" * 10))
    with pytest.raises(ProviderError) as caught:
        await client.submit({"model": "viduq1-text"})
    assert caught.value.kind is ProviderErrorKind.RETRY


async def test_poll_reset_is_retryable(zai_client: ZaiClient, fake_zai: FakeZai) -> None:
    task_id = await zai_client.submit(body("viduq1-text", Mode.TEXT, "a cat", VideoOptions(), []))
    fake_zai.script("poll", Fault.reset())
    with pytest.raises(ProviderError) as caught:
        await zai_client.get_task(task_id)
    assert caught.value.kind is ProviderErrorKind.RETRY
    assert (await zai_client.get_task(task_id)).status is TaskStatus.SUCCESS


async def test_failed_task_reports_fail(zai_client: ZaiClient) -> None:
    task_id = await zai_client.submit(body("viduq1-text", Mode.TEXT, "FAILME", VideoOptions(), []))
    state = await zai_client.get_task(task_id)
    assert state.status is TaskStatus.FAIL and state.message


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (429, 1302, ProviderErrorKind.RETRY),  # codes arrive as ints sometimes
        (429, "1113", ProviderErrorKind.ACCOUNT),
        (403, "", ProviderErrorKind.AUTH),
        (404, "", ProviderErrorKind.BAD_REQUEST),
        (503, "", ProviderErrorKind.RETRY),
        (400, "1004", ProviderErrorKind.AUTH),
        (400, "1210", ProviderErrorKind.BAD_REQUEST),
    ],
)
def test_classify_table(status: int, code: str | int, kind: ProviderErrorKind) -> None:
    assert classify(status, str(code)) is kind
