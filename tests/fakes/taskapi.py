"""The common core of the gateway fakes: a real aiohttp server with tasks, faults and media.

A subclass (tests/fakes/newapi.py, tests/fakes/geekai.py) supplies the routes' paths, the body
validation and the wire shapes of answers and errors; this module times tasks (progress from
elapsed time), charges a balance, injects faults and serves result videos.
"""

from __future__ import annotations

import asyncio
import io
import json
import secrets
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
from aiohttp import web
from PIL import Image, UnidentifiedImageError

from tests.fakes.media import make_jpeg, make_mp4

FaultKind = Literal["http", "reset", "accept_then_drop", "malformed", "delay"]
RequestKind = Literal["submit", "poll"]
State = Literal["queued", "running", "success", "failed"]


class ApiError(Exception):
    """An error the fake answers with: HTTP status, code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"HTTP {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Fault:
    """One injected misbehaviour; build with the class methods."""

    kind: FaultKind
    status: int = 0
    code: str = ""
    message: str = ""
    retry_after: float | None = None
    body: bytes = b""
    seconds: float = 0.0

    @classmethod
    def http(
        cls, status: int, code: str = "", message: str = "", retry_after: float | None = None
    ) -> Fault:
        """Answer `status` with the API's error envelope (and Retry-After when given)."""
        return cls(
            "http", status, code or str(status), message or f"injected {status}", retry_after
        )

    @classmethod
    def reset(cls) -> Fault:
        """Close the connection without handling the request (nothing was created)."""
        return cls("reset")

    @classmethod
    def accept_then_drop(cls) -> Fault:
        """Handle the request (a submit creates its task), then close without answering."""
        return cls("accept_then_drop")

    @classmethod
    def malformed(cls, body: bytes = b"<html>502 Bad Gateway</html>") -> Fault:
        """Handle the request, then answer 200 with `body` instead of the real answer."""
        return cls("malformed", body=body)

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Answer normally after `seconds`."""
        return cls("delay", seconds=seconds)


@dataclass
class Task:
    """A generation task; times are event-loop times."""

    id: str
    model: str
    body: dict[str, Any]
    created_at: float
    seconds: float
    state: State = "queued"
    message: str | None = None
    held: bool = False


class TaskApiFake:
    """Base of the gateway fakes; see the module docstring."""

    submit_path = ""
    poll_path = ""  # with {task_id}
    filter_code = "prompt_blocked"  # what the content filter answers with

    def __init__(
        self,
        *,
        api_key: str = "test-gateway-key",
        generation_seconds: float = 0.0,
        balance: int | None = None,
        hold_all: bool = False,
        fetch_pictures: bool = False,
    ) -> None:
        self.api_key = api_key
        self.generation_seconds = generation_seconds
        self.balance = balance  # None: unlimited; else submits left before "balance exhausted"
        self.hold_all = hold_all
        self.fetch_pictures = fetch_pictures  # download each picture link and decode it
        self.fetched: list[tuple[str, int, int]] = []  # (url, width, height) of fetched pictures
        self.submits: list[dict[str, Any]] = []
        self.rejected: list[tuple[Any, str, str]] = []
        self.requests: list[tuple[str, str]] = []
        self.tasks: dict[str, Task] = {}
        self.polls: dict[str, int] = {}
        self._scripts: dict[RequestKind, deque[Fault]] = {"submit": deque(), "poll": deque()}
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # ----------------------------------------------------------------- subclass hooks

    def validate(self, body: Any) -> str:
        """Check a submit body; return its model or raise ApiError."""
        raise NotImplementedError

    def error_body(self, code: str, message: str) -> dict[str, Any]:
        """The API's error envelope."""
        raise NotImplementedError

    def balance_error(self) -> ApiError:
        """What the API answers when the account's balance is exhausted."""
        raise NotImplementedError

    def submit_answer(self, task: Task) -> dict[str, Any]:
        """The 200 answer to an accepted submit."""
        raise NotImplementedError

    def poll_answer(self, task: Task) -> dict[str, Any]:
        """The 200 answer to a poll."""
        raise NotImplementedError

    def picture_urls(self, body: dict[str, Any]) -> list[str]:
        """The picture links of a valid body, in order."""
        raise NotImplementedError

    def extra_routes(self, app: web.Application) -> None:
        """More routes (e.g. /v1/models)."""

    def new_task_id(self) -> str:
        """A fresh task id in the API's style."""
        return f"task_{secrets.token_hex(8)}"

    # ----------------------------------------------------------------- lifecycle

    async def start(self, port: int = 0) -> None:
        """Bind 127.0.0.1 (port 0 = a random free port) and serve."""
        app = web.Application(middlewares=[self._record], client_max_size=64 * 1024 * 1024)
        app.router.add_post(self.submit_path, self._submit)
        app.router.add_get(self.poll_path, self._poll)
        app.router.add_get("/media/{task_id}.{ext:mp4|jpg}", self._media)
        self.extra_routes(app)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self._port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Stop serving (records are kept)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> TaskApiFake:
        """Start on a random port."""
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Stop."""
        await self.stop()

    @property
    def root(self) -> str:
        """`http://127.0.0.1:{port}`."""
        if self._port is None:
            raise RuntimeError("the fake is not started")
        return f"http://127.0.0.1:{self._port}"

    # ----------------------------------------------------------------- test controls

    def script(self, kind: RequestKind, *faults: Fault) -> None:
        """Queue faults for the next requests of `kind`."""
        self._scripts[kind].extend(faults)

    def finish(self, task_id: str) -> None:
        """Make a task succeed now."""
        self.tasks[task_id].state, self.tasks[task_id].held = "success", False

    def fail_task(self, task_id: str, message: str = "generation failed") -> None:
        """Make a task fail now."""
        task = self.tasks[task_id]
        task.state, task.message, task.held = "failed", message, False

    def video_url(self, task_id: str) -> str:
        """Where a task's video is served."""
        return f"{self.root}/media/{task_id}.mp4"

    def cover_url(self, task_id: str) -> str:
        """Where a task's cover is served."""
        return f"{self.root}/media/{task_id}.jpg"

    def progress(self, task: Task) -> int:
        """0-100 from the elapsed share of the generation time."""
        if task.state == "success":
            return 100
        if task.held or task.seconds <= 0:
            return 0 if task.held else 100
        elapsed = asyncio.get_running_loop().time() - task.created_at
        return max(0, min(99, int(100 * elapsed / task.seconds)))

    # ----------------------------------------------------------------- task timing

    def _refresh(self, task: Task) -> None:
        """Advance a task by the clock: queued, running, then success (or failed for FAILME)."""
        if task.state in ("success", "failed") or task.held:
            return
        elapsed = asyncio.get_running_loop().time() - task.created_at
        if elapsed >= task.seconds:
            failme = "FAILME" in str(task.body.get("prompt") or "")
            task.state = "failed" if failme else "success"
            task.message = "video generation failed (FAILME)" if failme else None
        elif elapsed > 0:
            task.state = "running"

    def _create(self, model: str, body: dict[str, Any]) -> Task:
        """Register a new task."""
        task = Task(
            id=self.new_task_id(),
            model=model,
            body=body,
            created_at=asyncio.get_running_loop().time(),
            seconds=self.generation_seconds,
            held=self.hold_all,
        )
        self.tasks[task.id] = task
        return task

    # ----------------------------------------------------------------- handlers

    @web.middleware
    async def _record(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Record (method, path) of every request."""
        self.requests.append((request.method, request.path))
        return await handler(request)

    def _check_auth(self, request: web.Request) -> None:
        """Bearer key check."""
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            raise ApiError(401, "invalid_api_key", "invalid token")

    def _error(self, err: ApiError) -> web.Response:
        """An error answer in the API's envelope."""
        return web.json_response(self.error_body(err.code, err.message), status=err.status)

    async def _submit(self, request: web.Request) -> web.StreamResponse:
        """Create a task, under this request's fault."""
        raw = await request.read()
        return await self._faulted("submit", request, lambda: self._answer_submit(request, raw))

    async def _answer_submit(self, request: web.Request, raw: bytes) -> web.Response:
        """Validate, charge and create; or answer (and record) the refusal."""
        try:
            self._check_auth(request)
            try:
                body = json.loads(raw)
            except ValueError as exc:
                raise ApiError(400, "bad_request_body", f"body is not JSON ({exc})") from None
            model = self.validate(body)
            if self.fetch_pictures:
                await self._fetch(self.picture_urls(body))
            self._admit(body)
        except ApiError as err:
            self.rejected.append((_loose(raw), err.code, err.message))
            return self._error(err)
        self.submits.append(body)
        return web.json_response(self.submit_answer(self._create(model, body)))

    async def _fetch(self, urls: list[str]) -> None:
        """Download and decode each picture, as the provider would (an expired link fails)."""
        async with aiohttp.ClientSession() as session:
            for url in urls:
                async with session.get(url) as answer:
                    data = await answer.read() if answer.status == 200 else b""
                try:
                    with Image.open(io.BytesIO(data)) as image:
                        image.load()
                        self.fetched.append((url, *image.size))
                except (UnidentifiedImageError, OSError):
                    raise ApiError(
                        400, "invalid_image", "an image could not be downloaded"
                    ) from None

    def _admit(self, body: dict[str, Any]) -> None:
        """Content filter and balance."""
        if "BLOCKME" in str(body.get("prompt") or ""):
            raise ApiError(400, self.filter_code, "the prompt was blocked by the content filter")
        if self.balance is not None:
            if self.balance <= 0:
                raise self.balance_error()
            self.balance -= 1

    async def _poll(self, request: web.Request) -> web.StreamResponse:
        """A task's state, under this request's fault."""
        return await self._faulted("poll", request, lambda: self._answer_poll(request))

    async def _answer_poll(self, request: web.Request) -> web.Response:
        """The task's current state."""
        task_id = request.match_info["task_id"]
        try:
            self._check_auth(request)
            task = self.tasks.get(task_id)
            if task is None:
                raise ApiError(404, "task_not_exist", f"task {task_id} not found")
        except ApiError as err:
            return self._error(err)
        self.polls[task_id] = self.polls.get(task_id, 0) + 1
        self._refresh(task)
        return web.json_response(self.poll_answer(task))

    async def _faulted(
        self, kind: RequestKind, request: web.Request, handle: Callable[[], Awaitable[web.Response]]
    ) -> web.StreamResponse:
        """Answer according to the next scripted fault of `kind`, if any."""
        fault = self._scripts[kind].popleft() if self._scripts[kind] else None
        if fault is None:
            return await handle()
        if fault.kind == "http":
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after else {}
            body = self.error_body(fault.code, fault.message)
            return web.json_response(body, status=fault.status, headers=headers)
        if fault.kind == "delay":
            await asyncio.sleep(fault.seconds)
            return await handle()
        if fault.kind == "reset":
            return _drop(request)
        await handle()
        if fault.kind == "malformed":
            return web.Response(body=fault.body, content_type="text/html")
        return _drop(request)

    async def _media(self, request: web.Request) -> web.Response:
        """A finished task's video or cover."""
        task_id, ext = request.match_info["task_id"], request.match_info["ext"]
        if task_id not in self.tasks:
            return web.json_response(self.error_body("not_found", "no such media"), status=404)
        if ext == "jpg":
            return web.Response(body=make_jpeg(64, 48), content_type="image/jpeg")
        return web.Response(body=make_mp4(), content_type="video/mp4")


def _drop(request: web.Request) -> web.Response:
    """Close the connection without answering (the returned response is never sent)."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=204)


def _loose(raw: bytes) -> Any:
    """A body for the records: parsed JSON when possible, else the text."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")
