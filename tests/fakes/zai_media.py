"""The fake Z.AI's still and speech routes: POST /images/generations, /audio/transcriptions.

Request shapes follow seed 003 as recorded in docs/zai-media-api.md (this module never reads
the seeds). Choices of the fake where the seed is silent:

1. Stricter than the seed: undeclared fields are refused; `user_id` is 6-128 characters as in
   the video spec; the prompt is at most 1000 characters (the sister platform's GLM-Image page).
2. Bad audio (not wav/mp3, a declared type that does not match the bytes, undecodable, over
   25,000,000 bytes or 30 s) is answered 400 with code 1214; the real code is not documented.
3. Only `stream=false` is served (the bot never streams); `stream=true` is refused with 1214.
4. A prompt containing BLOCKME is refused with 400/1301 (content filter), as for videos.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any, Literal

import av
from aiohttp import BodyPartReader, web

from tests.fakes.media import make_png
from tests.fakes.zai import FakeZai, Fault, ZaiRequestError

MediaKind = Literal["image", "asr", "still"]

PROMPT_MAX = 1000
ASR_MODEL = "glm-asr-2512"
AUDIO_MAX_BYTES = 25_000_000
AUDIO_MAX_SECONDS = 30.0
AUDIO_SLACK = 0.05  # encoder padding the fake forgives (the bot sends at most 30.0 s)
HOTWORDS_MAX = 100
ASR_PROMPT_MAX = 8000
ASR_FIELDS = {"file", "file_base64", "model", "stream", "prompt", "hotwords"}
IMAGE_FIELDS = {"model", "prompt", "quality", "size", "user_id"}
AUDIO_TYPES = {
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
}


@dataclass(frozen=True)
class SizeRule:
    """Seed 003's size rule of one image model."""

    recommended: tuple[str, ...]
    min_side: int
    max_side: int
    multiple: int
    max_pixels: int


IMAGE_MODELS: dict[str, SizeRule] = {
    "glm-image": SizeRule(
        ("1280x1280", "1568x1056", "1056x1568", "1472x1088", "1088x1472", "1728x960", "960x1728"),
        1024,
        2048,
        32,
        2**22,
    ),
    "cogview-4-250304": SizeRule(
        ("1024x1024", "768x1344", "864x1152", "1344x768", "1152x864", "1440x720", "720x1440"),
        512,
        2048,
        16,
        2**21,
    ),
}


def _bad(message: str) -> ZaiRequestError:
    """400/1214 (bad parameter)."""
    return ZaiRequestError(400, "1214", message)


def _answer_error(err: ZaiRequestError) -> web.Response:
    """Z.AI's error envelope."""
    body = {"error": {"code": err.code, "message": err.message}}
    return web.json_response(body, status=err.status)


# --------------------------------------------------------------------------- image rules


def check_size(model: str, size: Any) -> None:
    """A listed size, or a custom one within the model's rule."""
    rule = IMAGE_MODELS[model]
    if size in rule.recommended:
        return
    try:
        width, height = (int(part) for part in str(size).split("x"))
    except ValueError:
        raise _bad(f"size {size!r} is not WIDTHxHEIGHT") from None
    for side in (width, height):
        if not rule.min_side <= side <= rule.max_side or side % rule.multiple:
            raise _bad(
                f"size {size}: sides must be {rule.min_side}-{rule.max_side}, /{rule.multiple}"
            )
    if width * height > rule.max_pixels:
        raise _bad(f"size {size}: more than {rule.max_pixels} pixels")


def validate_image_body(body: Any) -> str:
    """Validate an image body like the fake does; return its size or raise ZaiRequestError."""
    if not isinstance(body, dict):
        raise _bad("body must be a JSON object")
    extra = set(body) - IMAGE_FIELDS
    if extra:
        raise _bad(f"unknown fields: {sorted(extra)}")
    model = body.get("model")
    if model not in IMAGE_MODELS:
        raise ZaiRequestError(400, "1211", f"unknown model {model!r}")
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > PROMPT_MAX:
        raise _bad(f"prompt must be 1-{PROMPT_MAX} characters")
    if body.get("quality", "hd") not in ("hd", "standard"):
        raise _bad("quality must be hd or standard")
    user_id = body.get("user_id")
    if user_id is not None and not (isinstance(user_id, str) and 6 <= len(user_id) <= 128):
        raise _bad("user_id must be 6-128 characters")
    size = body.get("size", IMAGE_MODELS[model].recommended[0])
    check_size(model, size)
    return str(size)


# --------------------------------------------------------------------------- audio rules


def audio_seconds(data: bytes, kind: str) -> float:
    """Decode wav/mp3 bytes fully; their length in seconds (ZaiRequestError if they do not decode)."""
    sniffed = "wav" if data[:4] == b"RIFF" and data[8:12] == b"WAVE" else None
    if data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        sniffed = "mp3"
    if sniffed != kind:
        raise _bad(f"file is declared {kind} but is {sniffed or 'not wav or mp3'}")
    samples, rate = 0, 0
    try:
        with av.open(BytesIO(data), format=kind) as container:
            for frame in container.decode(audio=0):
                samples, rate = samples + frame.samples, frame.sample_rate
    except (av.FFmpegError, IndexError) as exc:
        raise _bad(f"file does not decode as {kind} ({type(exc).__name__})") from None
    if not rate:
        raise _bad("file holds no audio")
    return samples / rate


@dataclass
class Transcription:
    """One accepted transcription request as the fake saw it."""

    fields: dict[str, str]
    filename: str
    content_type: str
    size: int
    seconds: float


async def _read_part(part: BodyPartReader, limit: int) -> bytes:
    """A part's bytes, refusing more than `limit` as soon as it is passed."""
    body = bytearray()
    while chunk := await part.read_chunk(64 * 1024):
        body += chunk
        if len(body) > limit:
            raise _bad(f"file is over {limit} bytes")
    return bytes(body)


async def read_asr_form(request: web.Request) -> tuple[dict[str, str], dict[str, Any]]:
    """The multipart text fields and the file part (`data`, `filename`, `content_type`)."""
    if not request.content_type.startswith("multipart/form-data"):
        raise _bad(f"Content-Type must be multipart/form-data, not {request.content_type}")
    fields: dict[str, str] = {}
    upload: dict[str, Any] = {}
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or part.name not in ASR_FIELDS:
            raise _bad(f"unknown field {getattr(part, 'name', None)!r}")
        if part.name == "file":
            data = await _read_part(part, AUDIO_MAX_BYTES)
            kind = part.headers.get("Content-Type", "")
            upload = {"data": data, "filename": part.filename or "", "content_type": kind}
        else:
            fields[part.name] = (await _read_part(part, 1_000_000)).decode()
    return fields, upload


def check_asr_fields(fields: dict[str, str], upload: dict[str, Any]) -> float:
    """Seed 003's rules for the text fields and the file; the audio's seconds."""
    if fields.get("model") != ASR_MODEL:
        raise ZaiRequestError(400, "1211", f"unknown model {fields.get('model')!r}")
    if fields.get("stream", "false") != "false":
        raise _bad("the fake serves stream=false only")
    if len(fields.get("prompt", "")) > ASR_PROMPT_MAX:
        raise _bad(f"prompt is over {ASR_PROMPT_MAX} characters")
    if "hotwords" in fields:
        _check_hotwords(fields["hotwords"])
    if not upload or "file_base64" in fields:
        raise _bad("send the audio as the multipart `file` part")
    kind = AUDIO_TYPES.get(upload["content_type"])
    if kind is None:
        raise _bad(f"file type {upload['content_type']!r} is not wav or mp3")
    seconds = audio_seconds(upload["data"], kind)
    if seconds > AUDIO_MAX_SECONDS + AUDIO_SLACK:
        raise _bad(f"audio is {seconds:.2f} s; at most {AUDIO_MAX_SECONDS:g} s")
    return seconds


def _check_hotwords(raw: str) -> None:
    """A JSON list of at most 100 strings."""
    try:
        words = json.loads(raw)
    except ValueError:
        raise _bad("hotwords must be a JSON list of strings") from None
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        raise _bad("hotwords must be a JSON list of strings")
    if len(words) > HOTWORDS_MAX:
        raise _bad(f"hotwords has {len(words)} items; at most {HOTWORDS_MAX}")


# --------------------------------------------------------------------------- the routes


@dataclass
class MediaApi:
    """State and handlers of the two routes; `FakeZai.media_api` is one of these.

    `transcript` is the text every transcription answers; `image_seconds` delays image
    answers (glm-image hd takes about 20 s for real). `script("image"|"asr"|"still", fault)`
    injects faults ("still" is the PNG download of a generated image).
    """

    fake: FakeZai
    transcript: str = "a red fox running through fresh snow at dawn"
    image_seconds: float = 0.0
    images: list[dict[str, Any]] = field(default_factory=list)
    transcriptions: list[Transcription] = field(default_factory=list)
    rejected: list[tuple[MediaKind, str, str]] = field(default_factory=list)
    stills: dict[str, tuple[int, int]] = field(default_factory=dict)
    faults_applied: list[tuple[MediaKind, Fault]] = field(default_factory=list)
    _scripts: dict[str, list[Fault]] = field(default_factory=dict)

    def add_routes(self, app: web.Application, prefix: str) -> None:
        """Register the routes on the fake's application."""
        app.router.add_post(f"{prefix}/images/generations", self._images)
        app.router.add_post(f"{prefix}/audio/transcriptions", self._transcriptions)
        app.router.add_get("/stills/{image_id}.png", self._still)

    def script(self, kind: MediaKind, *faults: Fault) -> None:
        """Queue faults for the next requests of `kind`."""
        self._scripts.setdefault(kind, []).extend(faults)

    def still_url(self, image_id: str) -> str:
        """Where the fake serves a generated image."""
        return f"{self.fake.result_base}/stills/{image_id}.png"

    async def _faulted(
        self,
        kind: MediaKind,
        request: web.Request,
        handle: Callable[[], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """Run `handle` under the next scripted fault of `kind`, if any."""
        queue = self._scripts.get(kind) or []
        fault = queue.pop(0) if queue else None
        if fault is not None:
            self.faults_applied.append((kind, fault))
        return await self.fake._apply_fault(fault, request, handle)

    async def _images(self, request: web.Request) -> web.StreamResponse:
        """POST /images/generations."""
        raw = await request.read()
        return await self._faulted("image", request, lambda: self._answer_image(request, raw))

    async def _answer_image(self, request: web.Request, raw: bytes) -> web.Response:
        """Validate, wait the generation time, answer the link (synchronously)."""
        try:
            self.fake._check_auth(request)
            body = _json(raw)
            size = validate_image_body(body)
            if "BLOCKME" in body["prompt"]:
                raise ZaiRequestError(400, "1301", "content filter: the prompt was refused")
        except ZaiRequestError as err:
            return self._refuse("image", err)
        self.images.append(body)
        if self.image_seconds:
            await asyncio.sleep(self.image_seconds)
        image_id = f"img-{len(self.images)}-{secrets.token_hex(4)}"
        width, height = (int(v) for v in size.split("x"))
        self.stills[image_id] = (width, height)
        return web.json_response(
            {
                "created": int(self.fake._now()),
                "data": [{"url": self.still_url(image_id)}],
                "content_filter": [{"role": "assistant", "level": 3}],
            }
        )

    async def _transcriptions(self, request: web.Request) -> web.StreamResponse:
        """POST /audio/transcriptions."""
        return await self._faulted("asr", request, lambda: self._answer_asr(request))

    async def _answer_asr(self, request: web.Request) -> web.Response:
        """Auth, multipart checks, audio decode; then the transcript."""
        try:
            self.fake._check_auth(request)
            fields, upload = await read_asr_form(request)
            seconds = check_asr_fields(fields, upload)
        except ZaiRequestError as err:
            return self._refuse("asr", err)
        record = Transcription(
            fields, upload["filename"], upload["content_type"], len(upload["data"]), seconds
        )
        self.transcriptions.append(record)
        return web.json_response(
            {
                "id": f"asr-{len(self.transcriptions)}-{secrets.token_hex(4)}",
                "created": int(self.fake._now()),
                "request_id": f"req-{secrets.token_hex(8)}",
                "model": ASR_MODEL,
                "text": self.transcript,
            }
        )

    async def _still(self, request: web.Request) -> web.StreamResponse:
        """GET /stills/{id}.png: a real PNG of the size that was asked for."""
        return await self._faulted("still", request, lambda: self._answer_still(request))

    async def _answer_still(self, request: web.Request) -> web.Response:
        """The PNG, or 404."""
        size = self.stills.get(request.match_info["image_id"])
        if size is None:
            return _answer_error(ZaiRequestError(404, "1214", "no such image"))
        return web.Response(body=make_png(*size), content_type="image/png")

    def _refuse(self, kind: MediaKind, err: ZaiRequestError) -> web.Response:
        """Record and answer a refusal."""
        self.rejected.append((kind, err.code, err.message))
        return _answer_error(err)


def _json(raw: bytes) -> Any:
    """A request body as JSON, or 400/1214."""
    try:
        return json.loads(raw)
    except ValueError:
        raise _bad("body is not valid JSON") from None
