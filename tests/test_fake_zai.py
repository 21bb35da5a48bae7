"""Tests of the fake Z.AI server itself, through real HTTP with httpx."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator
from typing import Any

import av
import httpx
import pytest
from PIL import Image

from tests.fakes.media import (
    data_uri,
    make_gif,
    make_jpeg,
    make_mp4,
    make_png,
    make_webp,
)
from tests.fakes.zai import FakeZai, Fault, ZaiRequestError, validate_request

KEY = "test-zai-key"
PNG = data_uri(make_png(64, 48))
JPEG = data_uri(make_jpeg(64, 48))
WEBP = data_uri(make_webp(64, 48))
SUBMIT = "/videos/generations"
TRANSPORT_ERRORS = (httpx.RemoteProtocolError, httpx.ReadError)

VALID_BODIES: dict[str, dict[str, Any]] = {
    "cogvideox-3": {
        "model": "cogvideox-3",
        "prompt": "A cat plays with a ball",
        "image_url": [PNG, JPEG],
        "quality": "speed",
        "with_audio": True,
        "size": "1920x1080",
        "fps": 30,
        "duration": 5,
        "request_id": "req-000001",
        "user_id": "user-000001",
    },
    "viduq1-text": {
        "model": "viduq1-text",
        "prompt": "An eagle soaring",
        "style": "anime",
        "duration": 5,
        "aspect_ratio": "9:16",
        "size": "1920x1080",
        "movement_amplitude": "large",
    },
    "viduq1-image": {
        "model": "viduq1-image",
        "image_url": JPEG,
        "duration": 5,
        "size": "1920x1080",
        "movement_amplitude": "small",
        "with_audio": False,
    },
    "vidu2-image": {
        "model": "vidu2-image",
        "image_url": WEBP,
        "prompt": "Make it move",
        "duration": 4,
        "size": "1280x720",
    },
    "viduq1-start-end": {
        "model": "viduq1-start-end",
        "image_url": [PNG, data_uri(make_png(64, 48, (1, 2, 3)))],
        "duration": 5,
        "size": "1920x1080",
    },
    "vidu2-start-end": {
        "model": "vidu2-start-end",
        "image_url": [JPEG, WEBP],
        "prompt": "Morph",
        "duration": 4,
        "size": "1280x720",
    },
    "vidu2-reference": {
        "model": "vidu2-reference",
        "image_url": [
            data_uri(make_png(128, 128)),
            data_uri(make_jpeg(200, 150)),
            "https://example.com/ref.webp",
        ],
        "prompt": "These characters dance",
        "aspect_ratio": "1:1",
        "duration": 4,
        "size": "1280x720",
        "movement_amplitude": "auto",
        "with_audio": True,
    },
}


def _body(model: str, **changes: Any) -> dict[str, Any]:
    """A valid body for `model` with `changes` applied (None removes a key)."""
    body = dict(VALID_BODIES[model], **changes)
    return {k: v for k, v in body.items() if v is not None}


def _client(fake: FakeZai, key: str | None = KEY) -> httpx.AsyncClient:
    """An httpx client for the fake's API, authenticated with `key`."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(base_url=fake.base_url, headers=headers, timeout=5)


def _code(response: httpx.Response) -> str:
    """The business error code of an error answer."""
    return response.json()["error"]["code"]


@pytest.fixture
async def fake() -> AsyncIterator[FakeZai]:
    """A started fake with default settings."""
    async with FakeZai() as server:
        yield server


@pytest.fixture
async def client(fake: FakeZai) -> AsyncIterator[httpx.AsyncClient]:
    """An authenticated client for `fake`."""
    async with _client(fake) as http:
        yield http


async def _submit(client: httpx.AsyncClient, body: dict[str, Any]) -> str:
    """Submit a body that must be accepted; return the task id."""
    response = await client.post(SUBMIT, json=body)
    assert response.status_code == 200, response.text
    return response.json()["id"]


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("model", sorted(VALID_BODIES))
async def test_valid_body_is_accepted(fake: FakeZai, client: httpx.AsyncClient, model: str) -> None:
    """Each model's full valid body is accepted as a PROCESSING task."""
    response = await client.post(SUBMIT, json=VALID_BODIES[model])
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["model"] == model and answer["task_status"] == "PROCESSING"
    assert answer["id"] in fake.tasks and answer["request_id"]
    assert fake.submits == [VALID_BODIES[model]] and fake.rejected == []


async def test_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    """The body's request_id comes back in the answer."""
    response = await client.post(SUBMIT, json=VALID_BODIES["cogvideox-3"])
    assert response.json()["request_id"] == "req-000001"


def _big_data_uri(size: int) -> str:
    """A data URI of `size` bytes (a PNG signature then padding; too big to matter)."""
    raw = b"\x89PNG\r\n\x1a\n" + b"\0" * (size - 8)
    return "data:image/png;base64," + base64.b64encode(raw).decode()


INVALID: dict[str, tuple[str, dict[str, Any], str]] = {
    "extra property": ("cogvideox-3", {"seed": 3}, "'seed' was unexpected"),
    "bad enum": ("cogvideox-3", {"quality": "best"}, "is not one of"),
    "bad type": ("viduq1-text", {"duration": "5"}, "is not of type 'integer'"),
    "cog image_url as string": ("cogvideox-3", {"image_url": PNG}, "is not of type 'array'"),
    "prompt too long": ("viduq1-text", {"prompt": "x" * 513}, "at most 512"),
    "text without prompt": ("viduq1-text", {"prompt": None}, "'prompt' is a required property"),
    "text with blank prompt": ("viduq1-text", {"prompt": "   "}, "prompt is required"),
    "neither prompt nor image": (
        "vidu2-image",
        {"prompt": None, "image_url": None},
        "either prompt or image_url",
    ),
    "cog empty image list": (
        "cogvideox-3",
        {"image_url": [], "prompt": None},
        "must not be an empty list",
    ),
    "cog two images in quality mode": (
        "cogvideox-3",
        {"quality": "quality"},
        "only supports quality 'speed'",
    ),
    "cog three images": ("cogvideox-3", {"image_url": [PNG, PNG, PNG]}, "at most 2 images"),
    "cog webp": ("cogvideox-3", {"image_url": [WEBP]}, "png and jpeg only"),
    "cog image over 5 MB": (
        "cogvideox-3",
        {"image_url": [_big_data_uri(5_000_001)]},
        "less than 5000000",
    ),
    "gif data uri": (
        "viduq1-image",
        {"image_url": data_uri(make_gif(True))},
        "png/jpeg/webp data URI",
    ),
    "not an image": (
        "viduq1-image",
        {"image_url": "data:image/png;base64,aGVsbG8="},
        "does not decode",
    ),
    "declared type mismatch": (
        "viduq1-image",
        {"image_url": "data:image/png" + JPEG[15:]},
        "declared image/png but is JPEG",
    ),
    "invalid base64": (
        "viduq1-image",
        {"image_url": "data:image/png;base64,@@@"},
        "invalid base64",
    ),
    "ftp url": ("viduq1-image", {"image_url": "ftp://example.com/a.png"}, "http(s) URL"),
    "reference too small": (
        "vidu2-reference",
        {"image_url": [data_uri(make_png(64, 64))]},
        "at least 128x128",
    ),
    "aspect ratio 5:1": (
        "viduq1-image",
        {"image_url": data_uri(make_png(500, 100))},
        "not within 1:4..4:1",
    ),
    "viduq1 duration 4": ("viduq1-image", {"duration": 4}, "duration 5 only"),
    "vidu2 size 1080p": ("vidu2-image", {"size": "1920x1080"}, "size 1280x720 only"),
    "frames of different sizes": (
        "vidu2-start-end",
        {"image_url": [JPEG, data_uri(make_jpeg(128, 96))]},
        "0.8..1.25",
    ),
    "request_id too short": ("viduq1-text", {"request_id": "abc"}, "is too short"),
    "user_id too short": ("viduq1-text", {"user_id": "abc"}, "6-128"),
    "user_id too long": ("viduq1-text", {"user_id": "u" * 129}, "6-128"),
}


@pytest.mark.parametrize("case", sorted(INVALID))
async def test_invalid_body_is_refused(fake: FakeZai, client: httpx.AsyncClient, case: str) -> None:
    """Schema and prose violations answer 400/1214 for the right reason and are recorded."""
    model, changes, reason = INVALID[case]
    body = _body(model, **changes)
    response = await client.post(SUBMIT, json=body)
    assert response.status_code == 400, response.text
    assert _code(response) == "1214" and reason in response.json()["error"]["message"]
    assert fake.submits == [] and fake.tasks == {}
    assert fake.rejected == [(body, "1214", response.json()["error"]["message"])]


@pytest.mark.parametrize("content", [b"not json", b"[1, 2]"])
async def test_non_object_body_is_refused(client: httpx.AsyncClient, content: bytes) -> None:
    """Bodies that are not JSON objects answer 1214."""
    response = await client.post(SUBMIT, content=content)
    assert response.status_code == 400 and _code(response) == "1214"


async def test_unknown_model_is_1211(client: httpx.AsyncClient) -> None:
    """An unknown model answers 400/1211."""
    response = await client.post(SUBMIT, json={"model": "cogvideox-9", "prompt": "x"})
    assert response.status_code == 400 and _code(response) == "1211"


async def test_content_filter(fake: FakeZai, client: httpx.AsyncClient) -> None:
    """A BLOCKME prompt is refused at submit with 1301."""
    body = _body("viduq1-text", prompt="please BLOCKME now")
    response = await client.post(SUBMIT, json=body)
    assert response.status_code == 400 and _code(response) == "1301"
    assert fake.rejected[0][1] == "1301" and fake.tasks == {}


def test_validate_request_directly() -> None:
    """validate_request works without HTTP."""
    assert validate_request(VALID_BODIES["vidu2-reference"]) == "vidu2-reference"
    with pytest.raises(ZaiRequestError) as caught:
        validate_request(_body("viduq1-text", style="noir"))
    assert caught.value.code == "1214" and "style" in caught.value.message


# --------------------------------------------------------------------------- auth, concurrency


@pytest.mark.parametrize("key", [None, "wrong-key"])
async def test_bearer_is_checked(fake: FakeZai, key: str | None) -> None:
    """Missing or wrong keys answer 401/1001 on submit and poll."""
    async with _client(fake, key) as http:
        submit = await http.post(SUBMIT, json=VALID_BODIES["viduq1-text"])
        poll = await http.get("/async-result/whatever")
    assert submit.status_code == 401 and _code(submit) == "1001"
    assert poll.status_code == 401 and _code(poll) == "1001"
    assert fake.tasks == {} and fake.rejected[0][1] == "1001"


async def test_concurrency_limit() -> None:
    """PROCESSING tasks count against the limit; finishing or failing frees a slot."""
    async with FakeZai(concurrency=2, hold_all=True) as fake, _client(fake) as http:
        first = await _submit(http, VALID_BODIES["viduq1-text"])
        second = await _submit(http, VALID_BODIES["viduq1-text"])
        refused = await http.post(SUBMIT, json=VALID_BODIES["viduq1-text"])
        assert refused.status_code == 429 and _code(refused) == "1302"
        fake.finish(first)
        third = await _submit(http, VALID_BODIES["viduq1-text"])
        assert (await http.post(SUBMIT, json=VALID_BODIES["viduq1-text"])).status_code == 429
        fake.fail_task(second, "boom")
        await _submit(http, VALID_BODIES["viduq1-text"])
        assert {t.id for t in fake.processing()} >= {third}
        assert len(fake.submits) == 4 and [r[1] for r in fake.rejected] == ["1302", "1302"]


# --------------------------------------------------------------------------- polling


async def test_success_on_first_poll(fake: FakeZai, client: httpx.AsyncClient) -> None:
    """With generation_seconds 0 the first poll is SUCCESS with media links."""
    task_id = await _submit(client, VALID_BODIES["viduq1-text"])
    answer = (await client.get(f"/async-result/{task_id}")).json()
    assert answer["task_status"] == "SUCCESS" and answer["id"] == task_id
    assert answer["video_result"] == [
        {"url": fake.video_url(task_id), "cover_image_url": fake.cover_url(task_id)}
    ]
    task = fake.tasks[task_id]
    assert task.finished_at is not None and task.finished_at >= task.created_at
    assert fake.polls == {task_id: 1} and task.polls == 1


async def test_failme_ends_fail(fake: FakeZai, client: httpx.AsyncClient) -> None:
    """A FAILME prompt ends FAIL with a message."""
    task_id = await _submit(client, _body("viduq1-text", prompt="FAILME please"))
    answer = (await client.get(f"/async-result/{task_id}")).json()
    assert answer["task_status"] == "FAIL" and "FAILME" in answer["message"]
    assert "video_result" not in answer


async def test_hold_finish_and_fail_task() -> None:
    """hold_all keeps tasks PROCESSING until finish() or fail_task()."""
    async with FakeZai(hold_all=True) as fake, _client(fake) as http:
        done = await _submit(http, VALID_BODIES["viduq1-text"])
        failed = await _submit(http, VALID_BODIES["viduq1-text"])
        later = await _submit(http, VALID_BODIES["viduq1-text"])
        poll = (await http.get(f"/async-result/{done}")).json()
        assert poll["task_status"] == "PROCESSING" and "video_result" not in poll
        fake.finish(done)
        fake.fail_task(failed, "quota of the provider")
        statuses = [(await http.get(f"/async-result/{t}")).json() for t in (done, failed)]
        assert statuses[0]["task_status"] == "SUCCESS"
        assert statuses[1] == {
            **statuses[1],
            "task_status": "FAIL",
            "message": "quota of the provider",
        }
        fake.finish_all()
        assert fake.tasks[later].status == "SUCCESS" and fake.processing() == []


async def test_generation_seconds_callable() -> None:
    """A callable decides each task's generation time from model and body."""
    seconds = {"viduq1-text": 3600.0, "cogvideox-3": 0.0}
    async with FakeZai(generation_seconds=lambda model, body: seconds[model]) as fake:
        async with _client(fake) as http:
            slow = await _submit(http, VALID_BODIES["viduq1-text"])
            fast = await _submit(http, VALID_BODIES["cogvideox-3"])
            assert (await http.get(f"/async-result/{slow}")).json()["task_status"] == "PROCESSING"
            assert (await http.get(f"/async-result/{fast}")).json()["task_status"] == "SUCCESS"
    assert fake.tasks[slow].finish_at == pytest.approx(fake.tasks[slow].created_at + 3600)


async def test_unknown_task_is_404(client: httpx.AsyncClient) -> None:
    """Polling an unknown id answers 404 with an error body."""
    response = await client.get("/async-result/task-404")
    assert response.status_code == 404 and _code(response) == "1214"


# --------------------------------------------------------------------------- media


async def _media_for_new_task(fake: FakeZai, http: httpx.AsyncClient) -> tuple[str, str]:
    """Submit and poll a task; return its video and cover URLs."""
    task_id = await _submit(http, VALID_BODIES["viduq1-text"])
    result = (await http.get(f"/async-result/{task_id}")).json()["video_result"][0]
    return result["url"], result["cover_image_url"]


async def test_default_media_is_real(fake: FakeZai, client: httpx.AsyncClient) -> None:
    """The default video is make_mp4() byte for byte; the cover is a JPEG."""
    video_url, cover_url = await _media_for_new_task(fake, client)
    video, cover = await client.get(video_url), await client.get(cover_url)
    assert video.content == make_mp4() and video.headers["content-type"] == "video/mp4"
    assert video.headers["content-length"] == str(len(make_mp4()))
    assert cover.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(cover.content)).format == "JPEG"


async def test_video_bytes_override() -> None:
    """video_bytes is served as given."""
    async with FakeZai(video_bytes=b"0123456789" * 7) as fake, _client(fake) as http:
        video_url, _ = await _media_for_new_task(fake, http)
        assert (await http.get(video_url)).content == b"0123456789" * 7


async def test_video_size_streams() -> None:
    """video_size streams that many bytes with a Content-Length."""
    size = 300_001
    async with FakeZai(video_size=size) as fake, _client(fake) as http:
        video_url, _ = await _media_for_new_task(fake, http)
        async with http.stream("GET", video_url) as response:
            assert response.headers["content-length"] == str(size)
            received = b"".join([chunk async for chunk in response.aiter_bytes()])
    assert len(received) == size and received.startswith(make_mp4()[:16])


async def test_unknown_media_is_404(fake: FakeZai, client: httpx.AsyncClient) -> None:
    """Media of an unknown task is 404."""
    assert (await client.get(f"{fake.media_base}/media/nope.mp4")).status_code == 404


def test_media_helpers_make_real_files() -> None:
    """make_mp4 is H.264 of the asked size and length; the images decode."""
    with av.open(io.BytesIO(make_mp4(seconds=0.5, width=32, height=24, fps=10))) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.width, stream.height) == ("h264", 32, 24)
        assert sum(1 for _ in container.decode(stream)) == 5
    formats = [Image.open(io.BytesIO(d)).format for d in (make_png(), make_jpeg(), make_webp())]
    assert formats == ["PNG", "JPEG", "WEBP"]
    assert getattr(Image.open(io.BytesIO(make_gif(True))), "n_frames", 1) == 3
    assert getattr(Image.open(io.BytesIO(make_gif(False))), "n_frames", 1) == 1


# --------------------------------------------------------------------------- faults


async def test_scripted_http_faults(fake: FakeZai, client: httpx.AsyncClient) -> None:
    """Scripted http faults answer their status, code and Retry-After, in FIFO order."""
    fake.script("submit", Fault.http(429, "1305", retry_after=7), Fault.http(401, "1000"))
    body = VALID_BODIES["viduq1-text"]
    first, second, third = [await client.post(SUBMIT, json=body) for _ in range(3)]
    assert (first.status_code, _code(first), first.headers["retry-after"]) == (429, "1305", "7")
    assert (second.status_code, _code(second)) == (401, "1000")
    assert "retry-after" not in second.headers
    assert third.status_code == 200 and len(fake.tasks) == 1


async def test_poll_and_media_http_faults(fake: FakeZai, client: httpx.AsyncClient) -> None:
    """Poll and media requests take their own scripted faults."""
    task_id = await _submit(client, VALID_BODIES["viduq1-text"])
    fake.script("poll", Fault.http(500, "500"))
    fake.script("media", Fault.http(429, "1113"))
    poll = await client.get(f"/async-result/{task_id}")
    assert (poll.status_code, _code(poll)) == (500, "500")
    media = await client.get(fake.video_url(task_id))
    assert (media.status_code, _code(media)) == (429, "1113")
    assert (await client.get(fake.video_url(task_id))).content == make_mp4()


@pytest.mark.parametrize("kind", ["submit", "poll", "media"])
async def test_reset_fault(fake: FakeZai, client: httpx.AsyncClient, kind: str) -> None:
    """A reset closes the connection: httpx raises a transport error."""
    task_id = await _submit(client, VALID_BODIES["viduq1-text"])
    fake.script(kind, Fault.reset())  # type: ignore[arg-type]
    with pytest.raises(TRANSPORT_ERRORS):
        if kind == "submit":
            await client.post(SUBMIT, json=VALID_BODIES["viduq1-text"])
        elif kind == "poll":
            await client.get(f"/async-result/{task_id}")
        else:
            await client.get(fake.video_url(task_id))
    assert len(fake.tasks) == 1


async def test_delay_fault_answers_normally(fake: FakeZai, client: httpx.AsyncClient) -> None:
    """A delay fault still answers normally."""
    fake.script("submit", Fault.delay(0.01))
    response = await client.post(SUBMIT, json=VALID_BODIES["viduq1-text"])
    assert response.status_code == 200 and len(fake.tasks) == 1
    assert fake.faults_applied == [("submit", Fault.delay(0.01))]


async def test_accept_then_drop(fake: FakeZai, client: httpx.AsyncClient) -> None:
    """The task is created but the client only sees a dropped connection."""
    fake.script("submit", Fault.accept_then_drop())
    with pytest.raises(TRANSPORT_ERRORS):
        await client.post(SUBMIT, json=VALID_BODIES["viduq1-text"])
    assert len(fake.tasks) == 1 and fake.submits == [VALID_BODIES["viduq1-text"]]
    with pytest.raises(ValueError):
        fake.script("media", Fault.accept_then_drop())


async def test_chaos_faults_every_request() -> None:
    """With fault_rate 1 every request gets one of the chaos faults."""
    async with FakeZai(fault_rate=1.0, seed=7, slow_seconds=0.01) as fake, _client(fake) as http:
        outcomes = [await _outcome(http) for _ in range(12)]
    assert set(outcomes) <= {"429", "500", "reset", "200"}
    assert len(fake.faults_applied) == 12
    assert {f.kind for _, f in fake.faults_applied} <= {"http", "reset", "delay"}
    assert outcomes.count("200") == sum(f.kind == "delay" for _, f in fake.faults_applied)


async def _outcome(http: httpx.AsyncClient) -> str:
    """Submit once and name what happened."""
    try:
        response = await http.post(SUBMIT, json=VALID_BODIES["viduq1-text"])
    except TRANSPORT_ERRORS:
        return "reset"
    return str(response.status_code)


async def test_requests_are_recorded(fake: FakeZai, client: httpx.AsyncClient) -> None:
    """Every request is recorded as (method, path)."""
    task_id = await _submit(client, VALID_BODIES["viduq1-text"])
    await client.get(f"/async-result/{task_id}")
    await client.get(fake.cover_url(task_id))
    assert fake.requests == [
        ("POST", "/api/paas/v4/videos/generations"),
        ("GET", f"/api/paas/v4/async-result/{task_id}"),
        ("GET", f"/media/{task_id}.jpg"),
    ]
