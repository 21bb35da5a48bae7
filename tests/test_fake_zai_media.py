"""The fake Z.AI's still and speech routes themselves, through raw httpx requests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.fakes.audio import make_audio
from tests.fakes.zai import FakeZai, Fault
from tests.fakes.zai_media import check_size

KEY = "test-zai-key"
WAV = make_audio(2.0, "wav")
MP3 = make_audio(2.0, "mp3")


@pytest.fixture
async def fake() -> AsyncIterator[FakeZai]:
    """A started fake."""
    async with FakeZai() as server:
        yield server


@pytest.fixture
async def api(fake: FakeZai) -> AsyncIterator[httpx.AsyncClient]:
    """An authenticated raw client for the fake's API."""
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=fake.base_url, headers=headers, timeout=10) as http:
        yield http


def _error(response: httpx.Response) -> tuple[int, str]:
    """Status and business code of an error answer."""
    return response.status_code, response.json()["error"]["code"]


# --------------------------------------------------------------------------- images


async def test_image_answer_shape_and_png(api: httpx.AsyncClient, fake: FakeZai) -> None:
    body = {"model": "glm-image", "prompt": "a fox", "quality": "hd", "size": "1568x1056"}
    answer = (await api.post("/images/generations", json=body)).json()
    assert set(answer) == {"created", "data", "content_filter"}
    assert answer["content_filter"] == [{"role": "assistant", "level": 3}]
    png = await api.get(answer["data"][0]["url"])
    assert png.headers["content-type"] == "image/png" and png.content.startswith(b"\x89PNG")
    assert fake.media_api.images == [body]


@pytest.mark.parametrize(
    ("changes", "status", "code"),
    [
        ({"model": "dall-e-3"}, 400, "1211"),
        ({"n": 2}, 400, "1214"),
        ({"prompt": ""}, 400, "1214"),
        ({"prompt": "x" * 1001}, 400, "1214"),
        ({"quality": "ultra"}, 400, "1214"),
        ({"size": "1000x1000"}, 400, "1214"),
        ({"user_id": "abc"}, 400, "1214"),
        ({"prompt": "BLOCKME now"}, 400, "1301"),
    ],
)
async def test_image_refusals(
    api: httpx.AsyncClient, fake: FakeZai, changes: dict[str, Any], status: int, code: str
) -> None:
    body = {"model": "glm-image", "prompt": "a fox", **changes}
    assert _error(await api.post("/images/generations", json=body)) == (status, code)
    assert fake.media_api.images == []


@pytest.mark.parametrize(
    ("model", "size", "ok"),
    [
        ("glm-image", "960x1728", True),
        ("glm-image", "2048x2048", True),
        ("glm-image", "2048x2080", False),
        ("glm-image", "1056x1040", False),
        ("cogview-4-250304", "720x1440", True),
        ("cogview-4-250304", "2048x1024", True),
        ("cogview-4-250304", "2048x1040", False),
        ("cogview-4-250304", "504x512", False),
    ],
)
def test_size_rules(model: str, size: str, ok: bool) -> None:
    if ok:
        check_size(model, size)
    else:
        with pytest.raises(Exception, match="size"):
            check_size(model, size)


async def test_image_needs_the_key(fake: FakeZai) -> None:
    async with httpx.AsyncClient(base_url=fake.base_url) as http:
        body = {"model": "glm-image", "prompt": "a fox"}
        assert _error(await http.post("/images/generations", json=body)) == (401, "1001")


async def test_still_download_faults(api: httpx.AsyncClient, fake: FakeZai) -> None:
    answer = await api.post("/images/generations", json={"model": "glm-image", "prompt": "a"})
    fake.media_api.script("still", Fault.http(503, "503", "cdn down"))
    url = answer.json()["data"][0]["url"]
    assert (await api.get(url)).status_code == 503
    assert (await api.get(url)).status_code == 200
    assert (await api.get(url.replace("img-", "nope-"))).status_code == 404


# --------------------------------------------------------------------------- speech


def _form(**fields: str) -> dict[str, str]:
    """Text fields with the model filled in."""
    return {"model": "glm-asr-2512", "stream": "false", **fields}


async def test_transcription_shape(api: httpx.AsyncClient, fake: FakeZai) -> None:
    files = {"file": ("audio.mp3", MP3, "audio/mpeg")}
    data = _form(hotwords=json.dumps(["fox"]), prompt="ctx")
    answer = (await api.post("/audio/transcriptions", data=data, files=files)).json()
    assert set(answer) == {"id", "created", "request_id", "model", "text"}
    assert answer["model"] == "glm-asr-2512" and answer["text"] == fake.media_api.transcript
    [seen] = fake.media_api.transcriptions
    assert (seen.filename, seen.content_type, seen.size) == ("audio.mp3", "audio/mpeg", len(MP3))


ASR_REFUSALS = [
    (_form(), {"file": ("a.wav", WAV, "audio/ogg")}, "1214", "not wav or mp3"),
    (_form(), {"file": ("a.wav", WAV, "audio/mpeg")}, "1214", "declared mp3 but is wav"),
    (
        _form(),
        {"file": ("a.wav", b"RIFF\0\0\0\0WAVE" + b"\0" * 64, "audio/wav")},
        "1214",
        "does not decode",
    ),
    (_form(), {"file": ("a.wav", make_audio(31.0, "wav"), "audio/wav")}, "1214", "at most 30"),
    (_form(model="whisper-1"), {"file": ("a.wav", WAV, "audio/wav")}, "1211", "unknown model"),
    (_form(stream="true"), {"file": ("a.wav", WAV, "audio/wav")}, "1214", "stream=false"),
    (_form(hotwords="fox, snow"), {"file": ("a.wav", WAV, "audio/wav")}, "1214", "JSON list"),
    (
        _form(hotwords=json.dumps([str(i) for i in range(101)])),
        {"file": ("a.wav", WAV, "audio/wav")},
        "1214",
        "at most 100",
    ),
    (_form(prompt="x" * 8001), {"file": ("a.wav", WAV, "audio/wav")}, "1214", "8000"),
    (_form(language="en"), {"file": ("a.wav", WAV, "audio/wav")}, "1214", "unknown field"),
    (_form(), {"prompt": (None, "ctx")}, "1214", "multipart `file` part"),
]


@pytest.mark.parametrize(("data", "files", "code", "reason"), ASR_REFUSALS)
async def test_transcription_refusals(
    api: httpx.AsyncClient, fake: FakeZai, data: dict, files: dict, code: str, reason: str
) -> None:
    response = await api.post("/audio/transcriptions", data=data, files=files)
    assert _error(response) == (400, code)
    assert reason in response.json()["error"]["message"]
    assert fake.media_api.transcriptions == []


async def test_transcription_must_be_multipart(api: httpx.AsyncClient) -> None:
    response = await api.post("/audio/transcriptions", json={"model": "glm-asr-2512"})
    assert _error(response) == (400, "1214")
    assert "multipart" in response.json()["error"]["message"]
