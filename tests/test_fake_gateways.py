"""The gateway fakes themselves: the seeds' examples pass, everything else is refused."""

from __future__ import annotations

import asyncio
import copy

import httpx
import pytest

from tests.fakes.geekai import FakeGeekai
from tests.fakes.geekai import validate_request as geekai_validate
from tests.fakes.media import data_uri, make_png
from tests.fakes.newapi import FakeNewApi
from tests.fakes.newapi import validate_request as newapi_validate
from tests.fakes.taskapi import ApiError, Fault

# Seed 002's four request examples, as published (prompts shortened).
NEWAPI_EXAMPLES = [
    {
        "model": "viduq3p-720p",
        "prompt": "slow camera push-in",
        "aspect_ratio": "16:9",
        "duration": 5,
        "extra_body": {"audio": False, "seed": 42, "bgm": False},
    },
    {
        "model": "viduq3t-540p",
        "prompt": "natural motion",
        "image": "https://example.com/source.png",
        "duration": 5,
        "extra_body": {"seed": 42},
    },
    {
        "model": "viduq3p-1080p-offpeak",
        "prompt": "keep identity stable",
        "image": "https://example.com/head.png",
        "last_image": "https://example.com/tail.png",
        "duration": 6,
    },
    {
        "model": "viduq3p-mix-720p",
        "prompt": "A @Image1 walking through a beach in the visual style of @Image2",
        "reference_image_urls": ["https://example.com/ref-1.png", "https://example.com/ref-2.png"],
        "aspect_ratio": "16:9",
        "duration": 5,
        "extra_body": {"audio": False, "seed": 42},
    },
]
# Seed 004's full request example with its placeholders filled in (size from the Zhipu table).
GEEKAI_EXAMPLE = {
    "model": "cogvideox-flash",
    "prompt": "Peter Rabbit drives a small car along the road",
    "negative_prompt": "blurry",
    "image": "https://example.com/first.png",
    "image_tail": "https://example.com/last.png",
    "with_audio": False,
    "size": "1024x1024",
    "resolution": "1080p",
    "aspect_ratio": "16:9",
    "quality": "speed",
    "duration": 5,
    "fps": 30,
    "watermark": False,
    "async": True,
    "extra_body": {
        "draft": False,
        "return_last_frame": False,
        "movement_amplitude": "auto",
        "camera_strength": "low",
        "image_list": ["https://example.com/a.png"],
        "video_list": [],
        "camera_control": "none",
        "static_mask": "",
    },
    "retries": 0,
}


@pytest.mark.parametrize("body", NEWAPI_EXAMPLES, ids=lambda b: b["model"])
def test_newapi_seed_examples_pass(body: dict) -> None:
    assert newapi_validate(body) == body["model"]


def _changed(body: dict, **changes) -> dict:
    """A deep copy with top-level keys changed (None removes)."""
    out = copy.deepcopy(body)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


TEXT, IMAGE, FRAMES, MIX = NEWAPI_EXAMPLES
NEWAPI_REFUSED = [
    (_changed(TEXT, size="1280x720"), "Additional properties"),
    (_changed(TEXT, extra_body={"audio": True, "style": "anime"}), "Additional properties"),
    (_changed(TEXT, duration=17), "17"),
    (_changed(TEXT, duration=0), "0"),
    (_changed(TEXT, duration="5"), "integer"),
    (_changed(TEXT, prompt=None), "prompt"),
    (_changed(TEXT, model="viduq9-720p"), "not available"),
    (_changed(IMAGE, image=data_uri(make_png())), "http(s) URL"),
    (_changed(FRAMES, image=None), "last_image needs image"),
    (_changed(MIX, reference_image_urls=None), "needs reference_image_urls"),
    (_changed(MIX, image="https://example.com/x.png"), "reference_image_urls only"),
    (_changed(TEXT, reference_image_urls=["https://example.com/x.png"]), "mix models only"),
    (_changed(TEXT, aspect_ratio="wide"), "does not match"),
]


@pytest.mark.parametrize(("body", "says"), NEWAPI_REFUSED)
def test_newapi_refuses(body: dict, says: str) -> None:
    with pytest.raises(ApiError) as caught:
        newapi_validate(body)
    assert says in caught.value.message


def test_geekai_seed_example_passes() -> None:
    assert geekai_validate(GEEKAI_EXAMPLE) == "cogvideox-flash"


GEEKAI_REFUSED = [
    (_changed(GEEKAI_EXAMPLE, image_url="https://example.com/x.png"), "Additional properties"),
    (_changed(GEEKAI_EXAMPLE, extra_body={"seed": 1}), "Additional properties"),
    (_changed(GEEKAI_EXAMPLE, fps=25), "25"),
    (_changed(GEEKAI_EXAMPLE, duration=6), "5 or 10"),
    (_changed(GEEKAI_EXAMPLE, size="720x720"), "not supported"),
    (_changed(GEEKAI_EXAMPLE, quality="pro"), "speed or quality"),
    (_changed(GEEKAI_EXAMPLE, model="kling-v1"), "unsupported video model"),
    (_changed(GEEKAI_EXAMPLE, **{"async": False}), "async"),
    (_changed(GEEKAI_EXAMPLE, image=data_uri(make_png())), "image URL"),
    (_changed(GEEKAI_EXAMPLE, image=None), "image_tail needs image"),
    (_changed(GEEKAI_EXAMPLE, prompt=None), "prompt"),
]


@pytest.mark.parametrize(("body", "says"), GEEKAI_REFUSED)
def test_geekai_refuses(body: dict, says: str) -> None:
    with pytest.raises(ApiError) as caught:
        geekai_validate(body)
    assert says in caught.value.message


async def test_newapi_fake_over_http(http: httpx.AsyncClient) -> None:
    async with FakeNewApi(api_key="k-123456") as fake:
        url = f"{fake.base_url}/v1/video/generations"
        auth = {"Authorization": "Bearer k-123456"}
        bad = await http.post(url, json=TEXT, headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401 and set(bad.json()["error"]) == {
            "message",
            "type",
            "param",
            "code",
        }
        garbage = await http.post(url, content=b"{", headers=auth)
        assert garbage.status_code == 400
        job = (await http.post(url, json=TEXT, headers=auth)).json()
        assert job["status"] == "queued" and job["progress"] == 0 and job["task_id"] == job["id"]
        result = (await http.get(f"{url}/{job['task_id']}", headers=auth)).json()
        assert result["status"] == "completed" and result["format"] == "mp4"
        assert set(result["metadata"]) == {"duration", "fps", "width", "height", "seed"}
        video = await http.get(result["url"])
        assert video.headers["content-type"] == "video/mp4" and video.content[4:8] == b"ftyp"
        assert [body for body, _, _ in fake.rejected] == [TEXT, "{"]


async def test_geekai_fake_over_http(http: httpx.AsyncClient) -> None:
    async with FakeGeekai(api_key="g-123456", hold_all=True) as fake:
        auth = {"Authorization": "Bearer g-123456"}
        created = await http.post(
            f"{fake.base_url}/videos/generations", json=GEEKAI_EXAMPLE, headers=auth
        )
        job = created.json()
        assert job["task_status"] == "pending" and len(job["task_id"]) == 36
        poll = f"{fake.base_url}/video/{job['task_id']}/result"
        assert (await http.get(poll, headers=auth)).json()["progress"] == 0
        fake.finish(job["task_id"])
        done = (await http.get(poll, headers=auth)).json()
        assert done["task_status"] == "succeed" and done["video_result"]["url"].endswith(".mp4")
        missing = await http.get(f"{fake.base_url}/video/nope/result", headers=auth)
        assert missing.status_code == 404 and set(missing.json()["error"]) == {
            "code",
            "message",
            "details",
        }


async def test_fault_reset_creates_nothing(http: httpx.AsyncClient) -> None:
    async with FakeNewApi(api_key="k-123456") as fake:
        fake.script("submit", Fault.reset())
        with pytest.raises(httpx.TransportError):
            await http.post(
                f"{fake.base_url}/v1/video/generations",
                json=TEXT,
                headers={"Authorization": "Bearer k-123456"},
            )
        assert fake.tasks == {}


async def test_tasks_finish_after_their_generation_time(http: httpx.AsyncClient) -> None:
    """Progress only grows, and the task completes on its own (polled with a deadline)."""
    async with FakeNewApi(api_key="k-123456", generation_seconds=0.5) as fake:
        auth = {"Authorization": "Bearer k-123456"}
        url = f"{fake.base_url}/v1/video/generations"
        job = (await http.post(url, json=TEXT, headers=auth)).json()
        seen: list[int] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10.0
        while loop.time() < deadline:
            result = (await http.get(f"{url}/{job['task_id']}", headers=auth)).json()
            seen.append(result["progress"])
            if result["status"] == "completed":
                break
            await asyncio.sleep(0.05)
        assert result["status"] == "completed" and seen[-1] == 100
        assert seen == sorted(seen)
