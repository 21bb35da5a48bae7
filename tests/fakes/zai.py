"""A fake Z.AI video API: a real aiohttp server on 127.0.0.1 that validates, times and misbehaves.

Request bodies are validated against the published OpenAPI spec (a copy sits next to this file
as `zai_openapi.yaml`) plus the rules the spec states only in prose. Deviations from the spec:

1. The spec's `oneOf: [string format uri, string format byte]` alternatives for `image_url`
   match any string twice (formats are not checked), so every `oneOf` whose alternatives are
   all such strings is rewritten to `anyOf` when the spec is loaded. The per-model
   `duration`/`size` `oneOf`s of the Vidu image and start-end schemas accept the value of either
   model, so the fake also checks the value fits the named model (viduq1-*: 5 s and 1920x1080,
   vidu2-*: 4 s and 1280x720).
2. Stricter than the spec: properties the model's schema does not declare are refused
   (`unevaluatedProperties: false` around the component schema), "5 MB"/"50 MB" mean
   5,000,000/50,000,000 bytes, a data URI's declared type must match the decoded image, an
   empty `image_url` list for cogvideox-3 is refused, and the first/last frames of start-end
   models (when both are data URIs) must have pixel counts within a ratio of 0.8..1.25.
   Image rules that need the pixels (size, aspect ratio) apply to data URIs only; http(s)
   URLs are never fetched.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import copy
import functools
import json
import random
import re
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from aiohttp import web
from jsonschema import Draft202012Validator
from PIL import Image

from tests.fakes.media import make_jpeg, make_mp4

SPEC_PATH = Path(__file__).with_name("zai_openapi.yaml")
API_PREFIX = "/api/paas/v4"

SCHEMA_BY_MODEL: dict[str, str] = {
    "cogvideox-3": "CogVideoX3Request",
    "viduq1-text": "ViduText2VideoRequest",
    "viduq1-image": "ViduImage2VideoRequest",
    "vidu2-image": "ViduImage2VideoRequest",
    "viduq1-start-end": "ViduFrames2VideoRequest",
    "vidu2-start-end": "ViduFrames2VideoRequest",
    "vidu2-reference": "ViduReference2VideoRequest",
}
# (duration, size) each Vidu model whose schema allows two models' values really accepts.
VIDU_FIXED: dict[str, tuple[int, str]] = {
    "viduq1-image": (5, "1920x1080"),
    "vidu2-image": (4, "1280x720"),
    "viduq1-start-end": (5, "1920x1080"),
    "vidu2-start-end": (4, "1280x720"),
}
MAX_PROMPT_CHARS = 512
LONG_QUOTE = re.compile(r"'([^']{40})[^']+'")
COG_IMAGE_LIMIT = 5_000_000
VIDU_IMAGE_LIMIT = 50_000_000
REFERENCE_MIN_SIDE = 128
DATA_URI = re.compile(r"data:image/(png|jpeg|webp);base64,(.*)", re.DOTALL)
PIL_FORMAT = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
CLIENT_MAX_SIZE = 512 * 1024 * 1024
MEDIA_CHUNK = 64 * 1024
DEFAULT_CODES = {400: "1210", 401: "1000", 404: "1214", 429: "1302"}
RAW_BODY = web.RequestKey("fake_zai_raw_body", bytes)

FaultKind = Literal["http", "reset", "delay", "accept_then_drop", "slow_body", "raw"]
RequestKind = Literal["submit", "poll", "media"]
TaskStatus = Literal["PROCESSING", "SUCCESS", "FAIL"]
GenerationSeconds = float | Callable[[str, dict[str, Any]], float]


class ZaiRequestError(Exception):
    """An error the fake answers with: HTTP status plus Z.AI business code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"HTTP {status} code {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def _bad(message: str) -> ZaiRequestError:
    """A 400/1214 (bad parameter) error."""
    return ZaiRequestError(400, "1214", message)


# --------------------------------------------------------------------------- spec and schemas


def _loosen_string_one_ofs(node: Any) -> None:
    """Rewrite, in place, each `oneOf` of uri/byte string alternatives into `anyOf`."""
    if isinstance(node, dict):
        alternatives = node.get("oneOf")
        if isinstance(alternatives, list) and all(_is_format_string(a) for a in alternatives):
            node["anyOf"] = node.pop("oneOf")
        for value in node.values():
            _loosen_string_one_ofs(value)
    elif isinstance(node, list):
        for value in node:
            _loosen_string_one_ofs(value)


def _is_format_string(schema: Any) -> bool:
    """True for `{type: string, format: uri|byte}` alternatives."""
    return (
        isinstance(schema, dict)
        and schema.get("type") == "string"
        and schema.get("format") in {"uri", "byte"}
    )


@functools.lru_cache(maxsize=1)
def load_spec() -> dict[str, Any]:
    """The OpenAPI document with the `oneOf` rewrite applied (cached; do not mutate)."""
    document = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
    _loosen_string_one_ofs(document)
    return document


@functools.lru_cache(maxsize=8)
def _validator(schema_name: str) -> Draft202012Validator:
    """A 2020-12 validator for one component schema that refuses undeclared properties."""
    root = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": copy.deepcopy(load_spec()["components"]),
        "$ref": f"#/components/schemas/{schema_name}",
        "unevaluatedProperties": False,
    }
    return Draft202012Validator(root)


def _check_schema(schema_name: str, body: dict[str, Any]) -> None:
    """Raise 1214 with the most useful schema error, if any."""
    errors = list(_validator(schema_name).iter_errors(body))
    if not errors:
        return
    specific = [e for e in errors if e.validator != "unevaluatedProperties"]
    error = (specific or errors)[0]
    where = "/".join(str(p) for p in error.absolute_path) or "body"
    # The message may quote the whole (huge) instance, e.g. a data URI: shorten long quotes.
    message = LONG_QUOTE.sub(r"'\1...'", error.message)
    raise _bad(f"{where}: {message}")


# --------------------------------------------------------------------------- prose rules


def _image_list(body: dict[str, Any]) -> list[Any]:
    """`image_url` as a list (Vidu image-to-video sends one string)."""
    images = body.get("image_url")
    if images is None:
        return []
    return images if isinstance(images, list) else [images]


def _check_prompt(model: str, body: dict[str, Any]) -> None:
    """Prompt length, and prompt-or-image presence."""
    prompt = body.get("prompt") or ""
    if len(prompt) > MAX_PROMPT_CHARS:
        raise _bad(f"prompt is {len(prompt)} characters; at most {MAX_PROMPT_CHARS} allowed")
    if model == "viduq1-text" and not prompt.strip():
        raise _bad("prompt is required for viduq1-text")
    if model == "cogvideox-3" and body.get("image_url") == []:
        raise _bad("image_url must not be an empty list")
    if not prompt.strip() and not _image_list(body):
        raise _bad("either prompt or image_url must be provided")


def _check_ids(body: dict[str, Any]) -> None:
    """request_id 6-64 characters (also in the schema), user_id 6-128 characters."""
    request_id = body.get("request_id")
    if request_id is not None and not 6 <= len(request_id) <= 64:
        raise _bad("request_id must be 6-64 characters")
    user_id = body.get("user_id")
    if user_id is not None and not 6 <= len(user_id) <= 128:
        raise _bad("user_id must be 6-128 characters")


def _check_model_options(model: str, body: dict[str, Any]) -> None:
    """Per-model rules: cogvideox-3 frame pairs, Vidu fixed duration and size."""
    if model == "cogvideox-3":
        images = _image_list(body)
        if len(images) > 2:
            raise _bad("cogvideox-3 accepts at most 2 images (first and last frame)")
        if len(images) == 2 and body.get("quality", "speed") != "speed":
            raise _bad("first and last frame mode only supports quality 'speed'")
    fixed = VIDU_FIXED.get(model)
    if fixed is None:
        return
    duration, size = fixed
    if body.get("duration", duration) != duration:
        raise _bad(f"{model} supports duration {duration} only")
    if body.get("size", size) != size:
        raise _bad(f"{model} supports size {size} only")


def _decode_data_uri(model: str, value: str, index: int) -> tuple[int, int]:
    """Check one `data:image/...;base64,` image and return its (width, height)."""
    match = DATA_URI.fullmatch(value)
    if match is None:
        raise _bad(f"image_url[{index}] is neither an http(s) URL nor a png/jpeg/webp data URI")
    kind, payload = match.groups()
    if model == "cogvideox-3" and kind == "webp":
        raise _bad(f"image_url[{index}]: cogvideox-3 accepts png and jpeg only")
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _bad(f"image_url[{index}]: invalid base64 ({exc})") from exc
    limit = COG_IMAGE_LIMIT if model == "cogvideox-3" else VIDU_IMAGE_LIMIT
    if len(raw) >= limit:  # "no more than 5M" / "less than 50 MB", read strictly
        raise _bad(f"image_url[{index}] is {len(raw)} bytes; less than {limit} required")
    return _open_image(raw, kind, index)


def _open_image(raw: bytes, kind: str, index: int) -> tuple[int, int]:
    """Fully decode `raw` with Pillow; its format must be the declared `kind`."""
    try:
        with Image.open(BytesIO(raw)) as image:
            image.load()
            found, size = image.format, image.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        reason = type(exc).__name__
        raise _bad(f"image_url[{index}] does not decode as an image ({reason})") from exc
    if found != PIL_FORMAT[kind]:
        raise _bad(f"image_url[{index}] is declared image/{kind} but is {found}")
    return size


def _check_url(value: str, index: int) -> None:
    """An http(s) URL with a host and no whitespace."""
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc or any(c.isspace() for c in value):
        raise _bad(f"image_url[{index}] is not a valid http(s) URL")


def _check_images(model: str, body: dict[str, Any]) -> None:
    """Each image is a URL or a valid data URI; Vidu pixel rules for decoded images."""
    sizes: list[tuple[int, int] | None] = []
    for index, value in enumerate(_image_list(body)):
        if value.startswith(("http://", "https://")):
            _check_url(value, index)
            sizes.append(None)
        else:
            sizes.append(_decode_data_uri(model, value, index))
    if model != "cogvideox-3":
        _check_vidu_pixels(model, sizes)


def _check_vidu_pixels(model: str, sizes: list[tuple[int, int] | None]) -> None:
    """Aspect ratio 1:4..4:1, 128x128 minimum for references, similar start/end frames."""
    for index, size in enumerate(sizes):
        if size is None:
            continue
        width, height = size
        if not 0.25 < width / height < 4:  # "must be less than 1:4 or 4:1"
            raise _bad(f"image_url[{index}] aspect ratio {width}x{height} is not within 1:4..4:1")
        if model == "vidu2-reference" and min(width, height) < REFERENCE_MIN_SIDE:
            raise _bad(f"image_url[{index}] is {width}x{height}; at least 128x128 required")
    if model.endswith("start-end") and len(sizes) == 2 and None not in sizes:
        (w1, h1), (w2, h2) = sizes  # type: ignore[misc]
        if not 0.8 <= (w1 * h1) / (w2 * h2) <= 1.25:
            raise _bad("first and last frame resolutions differ by more than 0.8..1.25")


def validate_request(body: Any) -> str:
    """Validate a submit body like the fake does; return its model or raise ZaiRequestError."""
    if not isinstance(body, dict):
        raise _bad("body must be a JSON object")
    model = body.get("model")
    if model not in SCHEMA_BY_MODEL:
        raise ZaiRequestError(400, "1211", f"unknown model {model!r}")
    _check_schema(SCHEMA_BY_MODEL[model], body)
    _check_prompt(model, body)
    _check_ids(body)
    _check_model_options(model, body)
    _check_images(model, body)
    return model


# --------------------------------------------------------------------------- faults and tasks


@dataclass(frozen=True)
class Fault:
    """One injected misbehaviour; build with the class methods."""

    kind: FaultKind
    status: int = 0
    code: str = ""
    message: str = ""
    retry_after: float | None = None
    seconds: float = 0.0
    body: str = ""  # the raw answer of a "raw" fault

    @classmethod
    def raw(cls, status: int, body: str) -> Fault:
        """Answer `status` with exactly `body` (JSON or not): odd shapes the real API may send."""
        return cls("raw", status, body=body)

    @classmethod
    def http(
        cls,
        status: int,
        code: str | None = None,
        message: str = "",
        retry_after: float | None = None,
    ) -> Fault:
        """Answer `status` with an error body (and a Retry-After header when given)."""
        code = code if code is not None else DEFAULT_CODES.get(status, str(status))
        return cls("http", status, code, message or f"injected HTTP {status}", retry_after)

    @classmethod
    def reset(cls) -> Fault:
        """Close the connection without answering."""
        return cls("reset")

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Answer normally after `seconds`."""
        return cls("delay", seconds=seconds)

    @classmethod
    def accept_then_drop(cls) -> Fault:
        """Handle the request normally (a submit creates its task), then drop the answer."""
        return cls("accept_then_drop")

    @classmethod
    def slow_body(cls, seconds: float) -> Fault:
        """Answer normally, but trickle the body out over `seconds` (headers come at once)."""
        return cls("slow_body", seconds=seconds)


@dataclass
class Task:
    """A generation task as the fake sees it; times are event-loop times."""

    id: str
    model: str
    body: dict[str, Any]
    request_id: str
    status: TaskStatus
    created_at: float
    finish_at: float | None
    finished_at: float | None = None
    polls: int = 0
    message: str | None = None
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)


def _error_body(code: str, message: str) -> dict[str, Any]:
    """Z.AI's error envelope."""
    return {"error": {"code": code, "message": message}}


def _parse_json(raw: bytes) -> Any:
    """Parse a request body or raise 1214."""
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise _bad(f"body is not valid JSON ({exc})") from exc


def _request_id(raw: bytes) -> str:
    """A submit body's request_id, or "" (for the request log)."""
    body = _loose_body(raw)
    return str(body.get("request_id") or "") if isinstance(body, dict) else ""


def _loose_body(raw: bytes) -> Any:
    """The body for the records: parsed JSON when possible, else the raw text."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


# --------------------------------------------------------------------------- the server


@dataclass(frozen=True)
class RequestRecord:
    """One request as it arrived: loop time, kind, path, the fault it got (if any) and whose
    it is (a submit's request_id, a poll's or a media request's task id)."""

    at: float
    kind: RequestKind
    path: str
    fault: Fault | None
    key: str = ""


class FakeZai:
    """The fake Z.AI server; see the module docstring and the knobs set in __init__.

    `media_host` names the host used in result links (e.g. "localhost" instead of the
    address the fake listens on); `media_redirect`, when set to a base URL, makes every
    media link answer 302 to the same path under that base (the redirect is followed
    once). `hold_media()` makes video bodies stop halfway until `release_media()`.
    """

    def __init__(
        self,
        *,
        api_key: str = "test-zai-key",
        concurrency: int = 5,
        generation_seconds: GenerationSeconds = 0.0,
        video_bytes: bytes | None = None,
        video_size: int | None = None,
        hold_all: bool = False,
        fault_rate: float = 0.0,
        seed: int = 0,
        slow_seconds: float = 1.0,
        chaos_faults: list[Fault] | None = None,
        media_host: str = "127.0.0.1",
    ) -> None:
        self.api_key = api_key
        self.concurrency = concurrency
        self.generation_seconds = generation_seconds
        self.video_bytes = video_bytes
        self.video_size = video_size
        self.hold_all = hold_all
        self.fault_rate = fault_rate
        self.slow_seconds = slow_seconds
        self.rng = random.Random(seed)
        self.submits: list[dict[str, Any]] = []
        self.rejected: list[tuple[Any, str, str]] = []
        self.polls: dict[str, int] = {}
        self.requests: list[tuple[str, str]] = []
        self.tasks: dict[str, Task] = {}
        self.faults_applied: list[tuple[RequestKind, Fault]] = []
        self.chaos_faults = chaos_faults
        self.media_host = media_host
        self.media_redirect: str | None = None
        self.request_log: list[RequestRecord] = []
        self.max_processing = 0  # the most tasks PROCESSING at once (a limit shared by processes)
        self.in_flight: dict[RequestKind, int] = {"submit": 0, "poll": 0, "media": 0}
        self.max_in_flight: dict[RequestKind, int] = {"submit": 0, "poll": 0, "media": 0}
        self.media_held = 0
        self._media_gate: asyncio.Event | None = None
        self._scripts: dict[str, deque[Fault]] = {k: deque() for k in ("submit", "poll", "media")}
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._counter = 0
        # Still and speech routes live in their own module (it imports this one, hence late).
        from tests.fakes.zai_media import MediaApi

        self.media_api = MediaApi(self)

    # ----------------------------------------------------------------- lifecycle

    async def start(self, port: int = 0) -> None:
        """Bind 127.0.0.1 (port 0 = a random free port) and serve."""
        app = web.Application(middlewares=[self._record], client_max_size=CLIENT_MAX_SIZE)
        app.router.add_post(f"{API_PREFIX}/videos/generations", self._submit)
        app.router.add_get(f"{API_PREFIX}/async-result/{{task_id}}", self._poll)
        app.router.add_get("/media/{task_id}.{ext:mp4|jpg}", self._media)
        self.media_api.add_routes(app, API_PREFIX)
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self._port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Stop serving and cancel completion timers (records are kept)."""
        for task in self.tasks.values():
            if task.timer is not None:
                task.timer.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeZai:
        """Start on a random port."""
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Stop."""
        await self.stop()

    @property
    def media_base(self) -> str:
        """`http://127.0.0.1:{port}`."""
        if self._port is None:
            raise RuntimeError("FakeZai is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:{port}/api/paas/v4`."""
        return f"{self.media_base}{API_PREFIX}"

    @property
    def port(self) -> int:
        """The port the fake listens on."""
        if self._port is None:
            raise RuntimeError("FakeZai is not started")
        return self._port

    @property
    def result_base(self) -> str:
        """`http://{media_host}:{port}`: where result links point."""
        return f"http://{self.media_host}:{self.port}"

    # ----------------------------------------------------------------- test controls

    def script(self, kind: RequestKind, *faults: Fault) -> None:
        """Queue faults for the next requests of `kind` ("submit", "poll" or "media")."""
        if kind == "media" and any(f.kind == "accept_then_drop" for f in faults):
            raise ValueError("accept_then_drop applies to submit and poll requests only")
        self._scripts[kind].extend(faults)

    def finish(self, task_id: str) -> None:
        """Make a task SUCCESS now."""
        self._complete(self.tasks[task_id], "SUCCESS", None, self._now())

    def finish_all(self) -> None:
        """Make every PROCESSING task SUCCESS now."""
        for task in list(self.tasks.values()):
            if task.status == "PROCESSING":
                self.finish(task.id)

    def fail_task(self, task_id: str, message: str = "generation failed") -> None:
        """Make a task FAIL now with `message`."""
        self._complete(self.tasks[task_id], "FAIL", message, self._now())

    def processing(self) -> list[Task]:
        """Tasks still PROCESSING (these count against `concurrency`)."""
        self._refresh()
        return [t for t in self.tasks.values() if t.status == "PROCESSING"]

    def video_url(self, task_id: str) -> str:
        """Where the fake serves a task's video."""
        return f"{self.result_base}/media/{task_id}.mp4"

    def cover_url(self, task_id: str) -> str:
        """Where the fake serves a task's cover image."""
        return f"{self.result_base}/media/{task_id}.jpg"

    def hold_media(self) -> None:
        """Make every video body stop halfway until `release_media()` (a download in flight)."""
        self._media_gate = asyncio.Event()

    def release_media(self) -> None:
        """Let held video bodies finish; later ones are served at once."""
        if self._media_gate is not None:
            self._media_gate.set()
        self._media_gate = None

    async def wait_media_held(self, count: int = 1, timeout: float = 10.0) -> None:
        """Wait until `count` video bodies are held halfway."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.media_held < count:
            if loop.time() > deadline:
                raise TimeoutError(f"fake zai: no held video body after {timeout}s")
            await asyncio.sleep(0.01)

    # ----------------------------------------------------------------- task timing

    @staticmethod
    def _now() -> float:
        """The running event loop's clock."""
        return asyncio.get_running_loop().time()

    def _complete(self, task: Task, status: TaskStatus, message: str | None, at: float) -> None:
        """Move a task out of PROCESSING (no-op when it already left)."""
        if task.status != "PROCESSING":
            return
        if task.timer is not None:
            task.timer.cancel()
            task.timer = None
        task.status, task.message, task.finished_at = status, message, at

    def _complete_on_schedule(self, task: Task) -> None:
        """Finish a task whose generation time elapsed: FAIL for FAILME prompts."""
        assert task.finish_at is not None
        if "FAILME" in (task.body.get("prompt") or ""):
            self._complete(task, "FAIL", "video generation failed (FAILME)", task.finish_at)
        else:
            self._complete(task, "SUCCESS", None, task.finish_at)

    def _refresh(self) -> None:
        """Complete every task whose finish time has come (timers may not have run yet)."""
        now = self._now()
        for task in self.tasks.values():
            due = task.finish_at is not None and task.finish_at <= now
            if task.status == "PROCESSING" and due:
                self._complete_on_schedule(task)

    def _generation_time(self, model: str, body: dict[str, Any]) -> float:
        """Seconds the task takes, from the number or the callable."""
        if callable(self.generation_seconds):
            return float(self.generation_seconds(model, body))
        return float(self.generation_seconds)

    def _create_task(self, model: str, body: dict[str, Any]) -> Task:
        """Register a new PROCESSING task and schedule its completion."""
        self._counter += 1
        now = self._now()
        finish_at = None if self.hold_all else now + self._generation_time(model, body)
        task = Task(
            id=f"task-{self._counter}-{secrets.token_hex(4)}",
            model=model,
            body=body,
            request_id=body.get("request_id") or f"req-{secrets.token_hex(8)}",
            status="PROCESSING",
            created_at=now,
            finish_at=finish_at,
        )
        self.tasks[task.id] = task
        self.max_processing = max(self.max_processing, len(self.processing()))
        if finish_at is not None:
            loop = asyncio.get_running_loop()
            task.timer = loop.call_at(finish_at, self._complete_on_schedule, task)
        return task

    # ----------------------------------------------------------------- faults

    def _next_fault(self, kind: RequestKind) -> Fault | None:
        """The scripted fault for this request, else maybe a random one (chaos mode)."""
        if self._scripts[kind]:
            fault: Fault | None = self._scripts[kind].popleft()
        elif self.fault_rate > 0 and self.rng.random() < self.fault_rate:
            fault = self.rng.choice(self._chaos_faults())
        else:
            fault = None
        if fault is not None:
            self.faults_applied.append((kind, fault))
        return fault

    def _chaos_faults(self) -> list[Fault]:
        """What chaos mode picks from (the constructor's `chaos_faults`, else a default mix)."""
        if self.chaos_faults:
            return self.chaos_faults
        return [
            Fault.http(429, "1302", "rate limit", retry_after=1),
            Fault.http(500, "500", "internal error"),
            Fault.reset(),
            Fault.delay(self.slow_seconds),
        ]

    @staticmethod
    def _fault_response(fault: Fault) -> web.Response:
        """The answer of an http fault."""
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = f"{fault.retry_after:g}"
        body = _error_body(fault.code, fault.message)
        return web.json_response(body, status=fault.status, headers=headers)

    @staticmethod
    def _drop(request: web.Request) -> web.Response:
        """Close the connection without answering (the returned response is never sent)."""
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=204)

    async def _with_fault(
        self,
        kind: RequestKind,
        request: web.Request,
        handle: Callable[[], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """Run `handle` under this request's fault, if any (recorded with its timing)."""
        fault = self._next_fault(kind)
        key = request.match_info.get("task_id") or _request_id(request.get(RAW_BODY, b""))
        self.request_log.append(RequestRecord(self._now(), kind, request.path, fault, key))
        self.in_flight[kind] += 1
        self.max_in_flight[kind] = max(self.max_in_flight[kind], self.in_flight[kind])
        try:
            return await self._apply_fault(fault, request, handle)
        finally:
            self.in_flight[kind] -= 1

    async def _apply_fault(
        self,
        fault: Fault | None,
        request: web.Request,
        handle: Callable[[], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """Answer according to the fault."""
        if fault is None:
            return await handle()
        if fault.kind == "http":
            return self._fault_response(fault)
        if fault.kind == "raw":
            return web.Response(
                status=fault.status, text=fault.body, content_type="application/json"
            )
        if fault.kind == "reset":
            return self._drop(request)
        if fault.kind == "delay":
            await asyncio.sleep(fault.seconds)
            return await handle()
        if fault.kind == "slow_body":
            return await _trickle(request, await handle(), fault.seconds)
        await handle()
        return self._drop(request)

    # ----------------------------------------------------------------- handlers

    @web.middleware
    async def _record(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Record (method, path) of every request."""
        self.requests.append((request.method, request.path))
        return await handler(request)

    def _check_auth(self, request: web.Request) -> None:
        """Bearer key check: 401/1001 when missing or wrong."""
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            raise ZaiRequestError(401, "1001", "authentication failed: invalid or missing token")

    async def _submit(self, request: web.Request) -> web.StreamResponse:
        """POST /videos/generations."""
        raw = await request.read()
        request[RAW_BODY] = raw
        return await self._with_fault("submit", request, lambda: self._answer_submit(request, raw))

    async def _answer_submit(self, request: web.Request, raw: bytes) -> web.Response:
        """Validate and create a task, or answer (and record) the rejection."""
        try:
            task = self._accept(request, raw)
        except ZaiRequestError as err:
            self.rejected.append((_loose_body(raw), err.code, err.message))
            return web.json_response(_error_body(err.code, err.message), status=err.status)
        answer = {
            "model": task.model,
            "id": task.id,
            "request_id": task.request_id,
            "task_status": "PROCESSING",
        }
        return web.json_response(answer)

    def _accept(self, request: web.Request, raw: bytes) -> Task:
        """Auth, validation, content filter and concurrency; then the new task."""
        self._check_auth(request)
        body = _parse_json(raw)
        model = validate_request(body)
        if "BLOCKME" in (body.get("prompt") or ""):
            raise ZaiRequestError(400, "1301", "content filter")
        if len(self.processing()) >= self.concurrency:
            raise ZaiRequestError(429, "1302", "concurrency limit")
        self.submits.append(body)
        return self._create_task(model, body)

    async def _poll(self, request: web.Request) -> web.StreamResponse:
        """GET /async-result/{id}."""
        return await self._with_fault("poll", request, lambda: self._answer_poll(request))

    async def _answer_poll(self, request: web.Request) -> web.Response:
        """The task's current state."""
        task_id = request.match_info["task_id"]
        try:
            self._check_auth(request)
            task = self.tasks.get(task_id)
            if task is None:
                raise ZaiRequestError(404, "1214", f"task {task_id} not found")
        except ZaiRequestError as err:
            return web.json_response(_error_body(err.code, err.message), status=err.status)
        self.polls[task_id] = self.polls.get(task_id, 0) + 1
        task.polls += 1
        self._refresh()
        return web.json_response(self._result(task))

    def _result(self, task: Task) -> dict[str, Any]:
        """The async-result body of a task."""
        result: dict[str, Any] = {
            "model": task.model,
            "id": task.id,
            "request_id": task.request_id,
            "task_status": task.status,
        }
        if task.status == "SUCCESS":
            result["video_result"] = [
                {"url": self.video_url(task.id), "cover_image_url": self.cover_url(task.id)}
            ]
        elif task.status == "FAIL":
            result["message"] = task.message
        return result

    async def _media(self, request: web.Request) -> web.StreamResponse:
        """GET /media/{id}.mp4 and /media/{id}.jpg."""
        return await self._with_fault("media", request, lambda: self._answer_media(request))

    async def _answer_media(self, request: web.Request) -> web.StreamResponse:
        """The video (bytes or a streamed size) or the cover JPEG; or a redirect."""
        task_id, ext = request.match_info["task_id"], request.match_info["ext"]
        if task_id not in self.tasks:
            return web.json_response(_error_body("1214", "no such media"), status=404)
        if self.media_redirect and "hop" not in request.query:
            raise web.HTTPFound(f"{self.media_redirect}/media/{task_id}.{ext}?hop=1")
        if ext == "jpg":
            return web.Response(body=make_jpeg(64, 48), content_type="image/jpeg")
        if self.video_size is None and self._media_gate is None:
            return web.Response(body=self.video_bytes or make_mp4(), content_type="video/mp4")
        return await self._stream_video(request)

    async def _stream_video(self, request: web.Request) -> web.StreamResponse:
        """Stream the video chunk by chunk (a `video_size` is never held in memory)."""
        size = self.video_size if self.video_size is not None else len(self._video())
        response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        response.content_length = size
        await response.prepare(request)
        if request.method != "HEAD":
            gate, written = self._media_gate, 0
            for chunk in self._video_chunks(size):
                if gate is not None and written >= size // 2:
                    await self._hold(gate)
                    gate = None
                await response.write(chunk)
                written += len(chunk)
        await response.write_eof()
        return response

    async def _hold(self, gate: asyncio.Event) -> None:
        """Count a held body and wait for the release."""
        self.media_held += 1
        await gate.wait()

    def _video(self) -> bytes:
        """The fixed video bytes served when no `video_size` is set."""
        return self.video_bytes or make_mp4()

    def _video_chunks(self, size: int) -> Iterator[bytes]:
        """The body in small chunks: generated for `video_size`, else slices of the bytes."""
        if self.video_size is not None:
            yield from _chunks(size)
            return
        data, step = self._video(), max(1, min(MEDIA_CHUNK, size // 4 or 1))
        for start in range(0, len(data), step):
            yield data[start : start + step]


async def _trickle(
    request: web.Request, answer: web.StreamResponse, seconds: float
) -> web.StreamResponse:
    """Send a ready answer's headers at once and its body in pieces spread over `seconds`."""
    if not isinstance(answer, web.Response) or answer.body is None:
        return answer  # already streamed (or empty): nothing left to slow down
    body = answer.body if isinstance(answer.body, bytes) else answer.text.encode()
    slow = web.StreamResponse(status=answer.status, headers=answer.headers)
    slow.content_length = len(body)
    await slow.prepare(request)
    pieces = 4
    step = max(1, -(-len(body) // pieces))
    for start in range(0, len(body), step):
        await asyncio.sleep(seconds / pieces)  # before each piece: done as soon as it is sent
        await slow.write(body[start : start + step])
    await slow.write_eof()
    return slow


def _chunks(size: int) -> Iterator[bytes]:
    """`size` bytes as repeated slices of one chunk that starts like the real mp4."""
    chunk = (make_mp4() * (MEDIA_CHUNK // len(make_mp4()) + 1))[:MEDIA_CHUNK]
    full, rest = divmod(size, MEDIA_CHUNK)
    for _ in range(full):
        yield chunk
    if rest:
        yield chunk[:rest]


# --------------------------------------------------------------------------- manual use


async def _serve(port: int, api_key: str, generation_seconds: float) -> None:
    """Run a fake until cancelled."""
    fake = FakeZai(api_key=api_key, generation_seconds=generation_seconds)
    await fake.start(port)
    print(f"Fake Z.AI at {fake.base_url} (key {api_key!r}); Ctrl-C to stop", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await fake.stop()


def main() -> None:
    """`python -m tests.fakes.zai --port 8765`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--api-key", default="test-zai-key")
    parser.add_argument("--generation-seconds", type=float, default=5.0)
    args = parser.parse_args()
    try:
        asyncio.run(_serve(args.port, args.api_key, args.generation_seconds))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
