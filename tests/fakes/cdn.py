"""A fake media CDN on 127.0.0.1 that publishes pictures under expiring links.

It stands in for what phase B uses for URL-only providers (a picture attached to the bot's
own status message, served by Discord's CDN with an `ex=` expiry): `publish` implements
`bot.providers.PicturePublisher`, and `expire_all` makes every link answer 404.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from aiohttp import web

from bot.providers import VideoRequest

_EXT = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


class FakeCdn:
    """Serves published pictures until they expire."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        self.published = 0
        self._runner: web.AppRunner | None = None
        self._root = ""

    async def __aenter__(self) -> FakeCdn:
        """Start on a random loopback port."""
        app = web.Application()
        app.router.add_get("/attachments/{name}", self._serve)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._root = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Stop."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def publish(self, request: VideoRequest) -> Sequence[str]:
        """One unguessable, expiring link per picture."""
        links = []
        for picture in request.pictures:
            name = f"{secrets.token_hex(8)}.{_EXT.get(picture.mime, 'bin')}"
            self.files[name] = (picture.data, picture.mime)
            links.append(f"{self._root}/attachments/{name}?ex={secrets.token_hex(4)}")
        self.published += len(links)
        return links

    def expire_all(self) -> None:
        """Every link published so far stops working."""
        self.files.clear()

    async def _serve(self, request: web.Request) -> web.Response:
        """The picture, or 404 once expired."""
        found = self.files.get(request.match_info["name"])
        if found is None:
            return web.Response(status=404, text="This content is no longer available.")
        return web.Response(body=found[0], content_type=found[1])
