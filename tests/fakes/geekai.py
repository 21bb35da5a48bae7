"""A fake GeekAI video API (seed 004): CogVideoX tasks at /api/v1/videos/generations.

Request bodies are checked against seed 004's body schema, encoded below (nothing is read from
../shared): model, prompt (both required), negative_prompt, image, image_tail, with_audio, size,
resolution, aspect_ratio, quality, duration 5|6|10, fps 24|30|60, watermark, async, extra_body
(its eight documented keys), retries; anything else is refused. Stricter than GeekAI, on purpose:
- models: cogvideox-flash, cogvideox, cogvideox-2 only (the seed's "currently supported" list);
- for these Zhipu models: `size` from the seed's Zhipu table, `quality` speed|quality (the seed:
  "智谱清言支持 speed、quality"), `duration` 5|10 (6 is Hailuo's);
- `async` must be true (the bot never waits on a synchronous generation);
- `image`/`image_tail` must be http(s) URLs (the seed: "图片URL"), never fetched; `image_tail`
  only with `image`.
Answers: the creation shape `{model, task_id (uuid), task_status, video_result, error}`; the
result at /api/v1/video/{task_id}/result in the same shape plus `progress` (seeds README), status
pending | running | succeed (or `success`, the English pages' word: `success_word`) | failed.
Errors are `{"error": {"code", "message", "details"}}`; the balance refusal relays Zhipu's 1113
on HTTP 429 unless `balance_status`/`balance_code` say otherwise.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator

from tests.fakes.taskapi import ApiError, Fault, Task, TaskApiFake

__all__ = ["FakeGeekai", "Fault", "ApiError", "validate_request", "MODELS", "PREFIX"]

PREFIX = "/api/v1"
MODELS = frozenset({"cogvideox-flash", "cogvideox", "cogvideox-2"})
ZHIPU_SIZES = frozenset(
    {
        "720x480",
        "1024x1024",
        "1280x960",
        "960x1280",
        "1920x1080",
        "1080x1920",
        "2048x1080",
        "3840x2160",
    }
)
_STR = {"type": "string"}
_BOOL = {"type": "boolean"}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["model", "prompt"],
    "additionalProperties": False,
    "properties": {
        "model": _STR,
        "prompt": {"type": "string", "minLength": 1},
        "negative_prompt": _STR,
        "image": _STR,
        "image_tail": _STR,
        "with_audio": _BOOL,
        "size": _STR,
        "resolution": _STR,
        "aspect_ratio": _STR,
        "quality": _STR,
        "duration": {"type": "integer", "enum": [5, 6, 10]},
        "fps": {"type": "integer", "enum": [24, 30, 60]},
        "watermark": _BOOL,
        "async": _BOOL,
        "extra_body": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "draft": _BOOL,
                "return_last_frame": _BOOL,
                "movement_amplitude": _STR,
                "camera_strength": _STR,
                "image_list": {"type": "array", "items": _STR},
                "video_list": {"type": "array", "items": _STR},
                "camera_control": _STR,
                "static_mask": _STR,
            },
        },
        "retries": {"type": "integer", "minimum": 0},
    },
}
_VALIDATOR = Draft202012Validator(SCHEMA)


def _bad(message: str) -> ApiError:
    """A 400 parameter error."""
    return ApiError(400, "invalid_parameter", message)


def validate_request(body: Any) -> str:
    """Validate a submit body like the fake does; return its model or raise ApiError."""
    if not isinstance(body, dict):
        raise _bad("body must be a JSON object")
    errors = sorted(_VALIDATOR.iter_errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path) or "body"
        raise _bad(f"{where}: {errors[0].message[:200]}")
    model = body["model"]
    if model not in MODELS:
        raise _bad(f"unsupported video model {model}")
    if body.get("async") is not True:
        raise _bad("this fake serves async generation only (send async: true)")
    _check_zhipu(body)
    for field in ("image", "image_tail"):
        if field in body:
            parts = urlsplit(body[field])
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise _bad(f"{field} must be an image URL")
    if "image_tail" in body and "image" not in body:
        raise _bad("image_tail needs image (first frame)")
    return model


def _check_zhipu(body: dict[str, Any]) -> None:
    """The Zhipu values of size, quality and duration."""
    if "size" in body and body["size"] not in ZHIPU_SIZES:
        raise _bad(f"size {body['size']} is not supported by CogVideoX")
    if "quality" in body and body["quality"] not in ("speed", "quality"):
        raise _bad("quality must be speed or quality for CogVideoX")
    if body.get("duration", 5) not in (5, 10):
        raise _bad("CogVideoX makes 5 or 10 second videos")


class FakeGeekai(TaskApiFake):
    """The fake GeekAI; `base_url` is what GEEKAI_BASE_URL would be (with /api/v1)."""

    submit_path = f"{PREFIX}/videos/generations"
    poll_path = f"{PREFIX}/video/{{task_id}}/result"
    filter_code = "1301"

    def __init__(
        self,
        *,
        success_word: str = "succeed",
        balance_status: int = 429,
        balance_code: str = "1113",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("api_key", "test-geekai-key")
        super().__init__(**kwargs)
        self.success_word = success_word
        self.balance_status = balance_status
        self.balance_code = balance_code

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:{port}/api/v1`."""
        return self.root + PREFIX

    def new_task_id(self) -> str:
        """A uuid, as the seed types `task_id`."""
        return str(uuid.uuid4())

    def validate(self, body: Any) -> str:
        """Seed-004 rules."""
        return validate_request(body)

    def picture_urls(self, body: dict[str, Any]) -> list[str]:
        """image, image_tail."""
        return [body[k] for k in ("image", "image_tail") if k in body]

    def error_body(self, code: str, message: str) -> dict[str, Any]:
        """GeekAI's envelope."""
        return {"error": {"code": code, "message": message, "details": ""}}

    def balance_error(self) -> ApiError:
        """The relayed balance refusal."""
        return ApiError(self.balance_status, self.balance_code, "insufficient balance")

    def _state(self, task: Task) -> str:
        """The seed's task_status word."""
        words = {"queued": "pending", "running": "running", "failed": "failed"}
        return words.get(task.state, self.success_word)

    def submit_answer(self, task: Task) -> dict[str, Any]:
        """The creation answer of an async request."""
        return {"model": task.model, "task_id": task.id, "task_status": "pending"}

    def poll_answer(self, task: Task) -> dict[str, Any]:
        """The result answer."""
        answer: dict[str, Any] = {
            "model": task.model,
            "task_id": task.id,
            "task_status": self._state(task),
            "progress": self.progress(task),
        }
        if task.state == "success":
            answer["video_result"] = {
                "id": task.id,
                "url": self.video_url(task.id),
                "cover_image_url": self.cover_url(task.id),
                "duration": task.body.get("duration", 5),
                "revised_prompt": task.body.get("prompt"),
            }
        elif task.state == "failed":
            answer["error"] = {"code": "generation_failed", "message": task.message, "details": ""}
        return answer
