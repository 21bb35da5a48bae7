"""A fake New-API video gateway (seed 002): viduq3 tasks at /v1/video/generations.

Request bodies are checked against seed 002, encoded below (nothing is read from ../shared):
- fields: model, prompt, image, last_image, reference_image_urls, aspect_ratio, duration,
  extra_body {audio, seed, bgm}; anything else is refused (stricter than the gateway, on purpose);
- models: the six viduq3p/viduq3t resolutions, viduq3p-mix-720p and viduq3p-1080p-offpeak
  (every model the seed names or shows);
- `duration` an integer 1-16 (the table says "string", every example sends a number);
- `last_image` only with `image`; `reference_image_urls` only for (and required by) mix models,
  which take no `image`; pictures must be http(s) URLs (data URIs are refused: the seed shows
  links only) and are never fetched.
Answers follow the New-API task format (seeds README): a job object
`{id, task_id, object, model, status, progress, created_at}`, statuses queued | in_progress |
completed | failed, `url`, `format`, `metadata`, and OpenAI-style errors
`{"error": {"message", "type", "param", "code"}}`; balance exhausted is New-API's
403 `insufficient_user_quota`.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from jsonschema import Draft202012Validator

from tests.fakes.taskapi import ApiError, Fault, Task, TaskApiFake

__all__ = ["FakeNewApi", "Fault", "ApiError", "validate_request", "MODELS"]

MODELS = frozenset(
    {
        *(f"viduq3{kind}-{res}" for kind in "pt" for res in ("540p", "720p", "1080p")),
        "viduq3p-mix-720p",
        "viduq3p-1080p-offpeak",
    }
)
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["model", "prompt"],
    "additionalProperties": False,
    "properties": {
        "model": {"type": "string"},
        "prompt": {"type": "string", "minLength": 1},
        "image": {"type": "string"},
        "last_image": {"type": "string"},
        "reference_image_urls": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "aspect_ratio": {"type": "string", "pattern": r"^[1-9][0-9]*:[1-9][0-9]*$"},
        "duration": {"type": "integer", "minimum": 1, "maximum": 16},
        "extra_body": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "audio": {"type": "boolean"},
                "seed": {"type": "integer", "minimum": 0},
                "bgm": {"type": "boolean"},
            },
        },
    },
}
_VALIDATOR = Draft202012Validator(SCHEMA)
_STATUS = {"queued": "queued", "running": "in_progress", "success": "completed", "failed": "failed"}


def _bad(message: str) -> ApiError:
    """A 400 invalid-request error."""
    return ApiError(400, "invalid_request", message)


def _check_url(field: str, value: str) -> None:
    """An http(s) URL with a host."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or " " in value:
        raise _bad(f"{field} must be an http(s) URL")


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
        raise ApiError(400, "model_not_found", f"model {model} is not available")
    _check_pictures(model, body)
    return model


def _check_pictures(model: str, body: dict[str, Any]) -> None:
    """Which picture fields each kind of model takes, and that each is a link."""
    mix = "-mix-" in model
    if mix and "reference_image_urls" not in body:
        raise _bad(f"{model} needs reference_image_urls")
    if mix and ("image" in body or "last_image" in body):
        raise _bad(f"{model} takes reference_image_urls only")
    if not mix and "reference_image_urls" in body:
        raise _bad("reference_image_urls is for mix models only")
    if "last_image" in body and "image" not in body:
        raise _bad("last_image needs image (first and last frames)")
    for field in ("image", "last_image"):
        if field in body:
            _check_url(field, body[field])
    for n, link in enumerate(body.get("reference_image_urls", [])):
        _check_url(f"reference_image_urls[{n}]", link)


class FakeNewApi(TaskApiFake):
    """The fake gateway; `base_url` is what GATEWAY_BASE_URL would be (no /v1)."""

    submit_path = "/v1/video/generations"
    poll_path = "/v1/video/generations/{task_id}"

    @property
    def base_url(self) -> str:
        """The gateway root."""
        return self.root

    def validate(self, body: Any) -> str:
        """Seed-002 rules."""
        return validate_request(body)

    def picture_urls(self, body: dict[str, Any]) -> list[str]:
        """image, last_image, reference_image_urls."""
        singles = [body[k] for k in ("image", "last_image") if k in body]
        return singles + list(body.get("reference_image_urls", []))

    def error_body(self, code: str, message: str) -> dict[str, Any]:
        """OpenAI-style envelope."""
        kind = "new_api_error" if code.startswith(("insufficient", "pre_")) else "invalid_request"
        return {"error": {"message": message, "type": kind, "param": "", "code": code}}

    def balance_error(self) -> ApiError:
        """New-API's wallet refusal."""
        return ApiError(403, "insufficient_user_quota", "insufficient user quota")

    def _job(self, task: Task) -> dict[str, Any]:
        """The job object's common fields."""
        return {
            "id": task.id,
            "task_id": task.id,
            "object": "video.generation.job",
            "model": task.model,
            "status": _STATUS[task.state],
            "progress": self.progress(task),
            "created_at": int(time.time()),
        }

    def submit_answer(self, task: Task) -> dict[str, Any]:
        """`status: queued, progress: 0` as in seed 002."""
        return self._job(task) | {"status": "queued", "progress": 0}

    def poll_answer(self, task: Task) -> dict[str, Any]:
        """The job with url/format/metadata when completed, error when failed."""
        answer = self._job(task)
        if task.state == "success":
            seed = (task.body.get("extra_body") or {}).get("seed", 0)
            duration = task.body.get("duration", 5)
            metadata = {"duration": duration, "fps": 24, "width": 64, "height": 48, "seed": seed}
            answer |= {"url": self.video_url(task.id), "format": "mp4", "metadata": metadata}
        elif task.state == "failed":
            answer["error"] = {"code": "generation_failed", "message": task.message}
        return answer

    def extra_routes(self, app: web.Application) -> None:
        """GET /v1/models (the key check)."""
        app.router.add_get("/v1/models", self._models)

    async def _models(self, request: web.Request) -> web.Response:
        """The OpenAI-style model list, for a good key."""
        try:
            self._check_auth(request)
        except ApiError as err:
            return self._error(err)
        data = [{"id": name, "object": "model", "owned_by": "vidu"} for name in sorted(MODELS)]
        return web.json_response({"object": "list", "data": data})
