"""The aiohttp application: request recording, fault injection, auth, error shaping."""

from __future__ import annotations

import hashlib
import math
import re
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from .discord_messages import ARRIVED_AT, PARSED_BODY
from .discord_rest import json_response
from .discord_state import ErrorResponse, InvalidRequest, RecordedRequest
from .discord_validation import DiscordError

if TYPE_CHECKING:
    from .discord import FakeDiscord

API_PREFIX = "/api/v10"
GATEWAY_PATHS = ("/gateway", "/gateway-resume")
CDN_PREFIX = "/attachments/"
INVALID_BODY_CODES = (50035, 50006, 50109)
MAX_BODY = 1024 * 1024 * 1024

_DEFAULT_MESSAGES = {
    400: "400: Bad Request",
    401: "401: Unauthorized",
    403: "403: Forbidden",
    404: "404: Not Found",
    405: "405: Method Not Allowed",
    413: "Request entity too large",
    500: "500: Internal Server Error",
    502: "502: Bad Gateway",
    503: "503: Service Unavailable",
    504: "504: Gateway Timeout",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Fault:
    """An injected error answer for requests matching method + path regex."""

    method: str
    pattern: re.Pattern[str]
    status: int
    code: int
    message: str
    retry_after: float | None
    times: int
    global_: bool

    def matches(self, method: str, path: str) -> bool:
        """Return True if this fault applies to the request."""
        method_ok = self.method in ("*", method.upper())
        return self.times > 0 and method_ok and self.pattern.search(path) is not None

    def error(self, bucket: str) -> DiscordError:
        """Build the error to answer with (429s carry Discord's rate-limit headers and Via)."""
        if self.status != 429:
            message = self.message or _DEFAULT_MESSAGES.get(self.status, f"{self.status}: Error")
            return DiscordError(self.status, self.code, message)
        retry_after = 1.0 if self.retry_after is None else self.retry_after
        body = {
            "message": self.message or "You are being rate limited.",
            "retry_after": retry_after,
            "global": self.global_,
        }
        if self.code:
            body["code"] = self.code
        headers = {
            "Retry-After": str(max(1, math.ceil(retry_after))),
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
            "X-RateLimit-Reset-After": f"{retry_after:.3f}",
            "X-RateLimit-Bucket": bucket,
            "X-RateLimit-Scope": "global" if self.global_ else "user",
            "Via": "1.1 google",
        }
        if self.global_:
            headers["X-RateLimit-Global"] = "true"
        return DiscordError(429, self.code, body["message"], headers=headers, extra=body)


class FaultInjector:
    """Holds pending faults; each match consumes one of its ``times``."""

    def __init__(self) -> None:
        """Start with no faults."""
        self.pending: list[Fault] = []

    def add(self, fault: Fault) -> None:
        """Queue a fault."""
        self.pending.append(fault)

    def take(self, method: str, path: str) -> Fault | None:
        """Return (and consume one use of) the first fault matching the request."""
        for fault in self.pending:
            if fault.matches(method, path):
                fault.times -= 1
                if fault.times <= 0:
                    self.pending.remove(fault)
                return fault
        return None


def relative_path(path: str) -> str:
    """Strip the API prefix from a request path."""
    return path[len(API_PREFIX) :] if path.startswith(API_PREFIX + "/") else path


def bucket_of(request: web.Request) -> str:
    """Return a stable rate-limit bucket hash for the matched route."""
    route = request.match_info.route
    canonical = route.resource.canonical if route.resource is not None else request.path
    return hashlib.sha1(f"{request.method} {canonical}".encode()).hexdigest()[:16]


def _needs_auth(path: str) -> bool:
    """Return True for endpoints that take the bot token (not interaction/webhook tokens)."""
    open_prefixes = ("/interactions/", "/webhooks/", CDN_PREFIX)
    return not path.startswith(open_prefixes) and path != "/gateway"


def _ratelimit_headers(response: web.StreamResponse, bucket: str) -> None:
    """Add the headers real Discord puts on every successful API response."""
    response.headers.update(
        {
            "X-RateLimit-Limit": "50",
            "X-RateLimit-Remaining": "49",
            "X-RateLimit-Reset": f"{time.time() + 1:.3f}",
            "X-RateLimit-Reset-After": "1.000",
            "X-RateLimit-Bucket": bucket,
        }
    )


class Middleware:
    """Records, injects faults, checks auth and turns errors into Discord-shaped JSON."""

    def __init__(self, fake: FakeDiscord) -> None:
        """Attach to the fake that owns the records."""
        self.fake = fake

    async def handle(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Handle one request."""
        at = time.monotonic()
        request[ARRIVED_AT] = at
        if request.path in GATEWAY_PATHS:
            return await handler(request)
        path = relative_path(request.path)
        self.fake.requests.append(RecordedRequest(request.method, path, at))
        bucket = bucket_of(request)
        try:
            response = await self._guarded(request, handler, path, bucket)
        except DiscordError as exc:
            return self._error(request, path, exc)
        if request.path.startswith(API_PREFIX):
            _ratelimit_headers(response, bucket)
        return response

    async def _guarded(
        self, request: web.Request, handler: Handler, path: str, bucket: str
    ) -> web.StreamResponse:
        """Apply faults and auth, then run the handler with errors normalised."""
        fault = self.fake.faults.take(request.method, path)
        if fault is not None:
            raise fault.error(bucket)
        if request.path.startswith(API_PREFIX) and _needs_auth(path):
            if request.headers.get("Authorization") != f"Bot {self.fake.token}":
                raise DiscordError(401, 0, "401: Unauthorized")
        try:
            return await handler(request)
        except DiscordError:
            raise
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            self.fake.unhandled_requests.append(
                RecordedRequest(request.method, path, request[ARRIVED_AT])
            )
            raise DiscordError(
                exc.status, 0, _DEFAULT_MESSAGES.get(exc.status, exc.reason)
            ) from exc
        except Exception as exc:
            self.fake.server_errors.append(traceback.format_exc())
            # 503 is not in discord.py's retry set, so a fake bug fails fast instead of retrying.
            raise DiscordError(503, 0, f"fake discord internal error: {exc!r}") from exc

    def _error(self, request: web.Request, path: str, exc: DiscordError) -> web.Response:
        """Render and record an error answer."""
        body = exc.body()
        response = json_response(body, exc.status)
        response.headers.update(exc.headers)
        self.fake.error_responses.append(ErrorResponse(request.method, path, exc.status, body))
        if exc.status == 400 and exc.code in INVALID_BODY_CODES:
            errors = exc.errors or {}
            self.fake.invalid_requests.append(
                InvalidRequest(request.method, path, request.get(PARSED_BODY), errors)
            )
        return response


def build_app(fake: FakeDiscord) -> web.Application:
    """Create the aiohttp application serving REST, CDN and gateway."""
    recorder = Middleware(fake)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        """Delegate to the Middleware object."""
        return await recorder.handle(request, handler)

    app = web.Application(middlewares=[middleware], client_max_size=MAX_BODY)
    app.add_routes(fake.rest.routes(API_PREFIX))
    app.add_routes(fake.hooks.routes(API_PREFIX))
    app.add_routes(
        [
            web.get(
                f"{CDN_PREFIX}{{channel_id}}/{{attachment_id}}/{{filename}}", fake.serve_attachment
            )
        ]
    )
    app.add_routes([web.get(p, fake.gateway.handle) for p in GATEWAY_PATHS])
    return app
