"""A fake reseller speaking the Z.AI API (seed 001): the fake Z.AI plus `cogvideox-2`.

Seed 001's cogvideox-2 fields, encoded below: model, prompt, image_url (one string: the first
frame, an http(s) URL or a png/jpeg data URI as in the Z.AI format), quality speed|quality (the
page types it "boolean" but describes the Z.AI modes), with_audio, size (720x480, 1024x1024,
1280x960, 960x1280, 1920x1080, 1080x1920, 2048x1080, 3840x2160), duration 5|10, fps 30|60.
Anything else is refused (the page lists no request_id or user_id). Other models go to the
fake Z.AI's own validation.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from jsonschema import Draft202012Validator

from tests.fakes import zai
from tests.fakes.zai import FakeZai, Task, ZaiRequestError

RESELLER_MODELS = frozenset({"cogvideox-2"})
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["model"],
    "additionalProperties": False,
    "properties": {
        "model": {"enum": sorted(RESELLER_MODELS)},
        "prompt": {"type": "string", "maxLength": 512},
        "image_url": {
            "type": "string",
            "pattern": r"^(https?://\S+|data:image/(png|jpeg);base64,)",
        },
        "quality": {"enum": ["speed", "quality"]},
        "with_audio": {"type": "boolean"},
        "size": {
            "enum": [
                "720x480",
                "1024x1024",
                "1280x960",
                "960x1280",
                "1920x1080",
                "1080x1920",
                "2048x1080",
                "3840x2160",
            ]
        },
        "duration": {"type": "integer", "enum": [5, 10]},
        "fps": {"type": "integer", "enum": [30, 60]},
    },
}
_VALIDATOR = Draft202012Validator(SCHEMA)


def validate_reseller(body: dict[str, Any]) -> str:
    """Seed-001 rules for cogvideox-2; returns the model or raises ZaiRequestError 1214."""
    errors = list(_VALIDATOR.iter_errors(body))
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path) or "body"
        raise ZaiRequestError(400, "1214", f"{where}: {errors[0].message[:200]}")
    if not (body.get("prompt") or "").strip() and "image_url" not in body:
        raise ZaiRequestError(400, "1214", "either prompt or image_url must be provided")
    return str(body["model"])


class FakeReseller(FakeZai):
    """The fake Z.AI that also serves the reseller's cogvideox-2."""

    def _accept(self, request: web.Request, raw: bytes) -> Task:
        """Reseller models here; the rest as the fake Z.AI does."""
        body = zai._loose_body(raw)
        if not (isinstance(body, dict) and body.get("model") in RESELLER_MODELS):
            return super()._accept(request, raw)
        self._check_auth(request)
        model = validate_reseller(body)
        if "BLOCKME" in (body.get("prompt") or ""):
            raise ZaiRequestError(400, "1301", "content filter")
        if len(self.processing()) >= self.concurrency:
            raise ZaiRequestError(429, "1302", "concurrency limit")
        self.submits.append(body)
        return self._create_task(model, body)
