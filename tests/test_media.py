"""Tests for bot.media against a real local HTTP server and real PyAV encodes."""

from __future__ import annotations

import asyncio
import os
import random
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import httpx
import pytest
from aiohttp import web
from PIL import Image

from bot.errors import InputError, UnsafeURLError
from bot.media import (
    DISCORD_ATTACHMENT_HOSTS,
    DownloadError,
    TooLargeError,
    VideoError,
    check_url,
    download_bytes,
    download_to_file,
    probe_video,
    reencode_to_fit,
)

PAYLOAD = random.Random(1).randbytes(300_000)
STREAM_CHUNK = 64 * 1024
STREAM_CHUNKS = 20
NOBODY: frozenset[str] = frozenset()
LOCALHOST = frozenset({"localhost"})


# ---------------------------------------------------------------------------- local server


@dataclass
class Server:
    """The running test server: its port and the paths it was asked for."""

    port: int
    hits: list[str] = field(default_factory=list)

    def url(self, path: str, host: str = "localhost") -> str:
        """An absolute URL to `path` on this server via `host`."""
        return f"http://{host}:{self.port}{path}"


async def serve_file(request: web.Request) -> web.Response:
    """The payload, with a Content-Length."""
    return web.Response(body=PAYLOAD, content_type="application/octet-stream")


async def serve_stream(request: web.Request) -> web.StreamResponse:
    """A chunked body of STREAM_CHUNKS × 64 KiB with no Content-Length."""
    response = web.StreamResponse()
    response.enable_chunked_encoding()
    await response.prepare(request)
    for _ in range(STREAM_CHUNKS):
        await response.write(os.urandom(STREAM_CHUNK))
    return response


async def serve_declared_huge(request: web.Request) -> web.StreamResponse:
    """Claims 50 MB but sends 1 KB: only a client trusting the header refuses cleanly."""
    response = web.StreamResponse()
    response.content_length = 50_000_000
    await response.prepare(request)
    await response.write(b"x" * 1024)
    return response


async def serve_redirect(request: web.Request) -> web.Response:
    """/redirect/N → /redirect/N-1 → … → /file: N redirects, with relative Locations."""
    remaining = int(request.match_info["n"])
    raise web.HTTPFound("/file" if remaining <= 1 else f"/redirect/{remaining - 1}")


async def serve_moved(request: web.Request) -> web.Response:
    """A permanent redirect to another path."""
    raise web.HTTPMovedPermanently("/file")


async def serve_loop(request: web.Request) -> web.Response:
    """A redirect to itself, forever."""
    raise web.HTTPFound("/loop")


async def serve_to_loopback_ip(request: web.Request) -> web.Response:
    """Redirect to the same server addressed by its raw loopback IP."""
    raise web.HTTPFound(f"http://127.0.0.1:{request.url.port}/file")


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    """A real aiohttp server on 127.0.0.1, port chosen by the OS."""
    app = web.Application()
    app.router.add_get("/file", serve_file)
    app.router.add_get("/stream", serve_stream)
    app.router.add_get("/declared-huge", serve_declared_huge)
    app.router.add_get("/redirect/{n}", serve_redirect)
    app.router.add_get("/moved", serve_moved)
    app.router.add_get("/loop", serve_loop)
    app.router.add_get("/to-loopback-ip", serve_to_loopback_ip)
    hits: list[str] = []

    @web.middleware
    async def record(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        hits.append(request.path)
        return await handler(request)

    app.middlewares.append(record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield Server(port=runner.addresses[0][1], hits=hits)
    await runner.cleanup()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client that ignores proxy variables from the environment."""
    async with httpx.AsyncClient(trust_env=False) as http:
        yield http


# ---------------------------------------------------------------------------- downloads


async def test_download_bytes_is_byte_identical(server: Server, client: httpx.AsyncClient) -> None:
    body = await download_bytes(
        client,
        server.url("/file"),
        max_bytes=1_000_000,
        allowed_hosts=None,
        trusted_hosts=LOCALHOST,
    )
    assert body == PAYLOAD


async def test_download_to_file_is_byte_identical(
    server: Server, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    dest = tmp_path / "file.bin"
    written = await download_to_file(
        client,
        server.url("/file"),
        dest,
        max_bytes=1_000_000,
        allowed_hosts=DISCORD_ATTACHMENT_HOSTS,  # trusted hosts pass the allow-list too
        trusted_hosts=LOCALHOST,
    )
    assert written == len(PAYLOAD)
    assert dest.read_bytes() == PAYLOAD


@pytest.mark.parametrize(
    ("path", "max_bytes"),
    [
        pytest.param("/file", len(PAYLOAD) - 1, id="content-length-one-byte-over"),
        pytest.param("/declared-huge", 1_000_000, id="content-length-lies-big"),
        pytest.param("/stream", 200_000, id="no-content-length-streamed"),
    ],
)
async def test_size_cap(
    server: Server, client: httpx.AsyncClient, tmp_path: Path, path: str, max_bytes: int
) -> None:
    dest = tmp_path / "partial.bin"
    with pytest.raises(TooLargeError) as caught:
        await download_to_file(
            client,
            server.url(path),
            dest,
            max_bytes=max_bytes,
            allowed_hosts=None,
            trusted_hosts=LOCALHOST,
        )
    assert isinstance(caught.value, InputError)
    assert "larger than" in caught.value.user_message
    assert not dest.exists()


async def test_size_cap_in_memory(server: Server, client: httpx.AsyncClient) -> None:
    with pytest.raises(TooLargeError):
        await download_bytes(
            client,
            server.url("/stream"),
            max_bytes=STREAM_CHUNK * 3,
            allowed_hosts=None,
            trusted_hosts=LOCALHOST,
        )


async def test_stream_exactly_at_the_cap_passes(server: Server, client: httpx.AsyncClient) -> None:
    body = await download_bytes(
        client,
        server.url("/stream"),
        max_bytes=STREAM_CHUNK * STREAM_CHUNKS,
        allowed_hosts=None,
        trusted_hosts=LOCALHOST,
    )
    assert len(body) == STREAM_CHUNK * STREAM_CHUNKS


@pytest.mark.parametrize("path", ["/redirect/1", "/redirect/5", "/moved"])
async def test_redirects_are_followed_on_trusted_host(
    server: Server, client: httpx.AsyncClient, path: str
) -> None:
    body = await download_bytes(
        client, server.url(path), max_bytes=1_000_000, allowed_hosts=None, trusted_hosts=LOCALHOST
    )
    assert body == PAYLOAD
    assert server.hits[-1] == "/file"


@pytest.mark.parametrize("path", ["/redirect/6", "/loop"])
async def test_too_many_redirects(server: Server, client: httpx.AsyncClient, path: str) -> None:
    with pytest.raises(DownloadError, match="redirects"):
        await download_bytes(
            client,
            server.url(path),
            max_bytes=1_000_000,
            allowed_hosts=None,
            trusted_hosts=LOCALHOST,
        )


async def test_redirect_from_trusted_host_to_private_ip_is_refused(
    server: Server, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    # "localhost" is trusted, 127.0.0.1 is not: the same machine must not be reachable by IP.
    dest = tmp_path / "never.bin"
    with pytest.raises(UnsafeURLError, match="private or local address"):
        await download_to_file(
            client,
            server.url("/to-loopback-ip"),
            dest,
            max_bytes=1_000_000,
            allowed_hosts=None,
            trusted_hosts=LOCALHOST,
        )
    assert server.hits == ["/to-loopback-ip"]  # the redirect target was never requested
    assert not dest.exists()


async def test_private_address_is_never_contacted(
    server: Server, client: httpx.AsyncClient
) -> None:
    with pytest.raises(UnsafeURLError):
        await download_bytes(
            client,
            server.url("/file", host="127.0.0.1"),
            max_bytes=1_000_000,
            allowed_hosts=None,
            trusted_hosts=NOBODY,
        )
    assert server.hits == []


async def test_http_error_status(server: Server, client: httpx.AsyncClient) -> None:
    with pytest.raises(DownloadError) as caught:
        await download_bytes(
            client,
            server.url("/missing"),
            max_bytes=1_000_000,
            allowed_hosts=None,
            trusted_hosts=LOCALHOST,
        )
    assert caught.value.status == 404
    assert "HTTP 404" in caught.value.user_message


async def test_connection_refused_is_a_download_error(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DownloadError, match="network error"):
        await download_to_file(
            client,
            f"http://localhost:{port}/file",
            tmp_path / "x.bin",
            max_bytes=1000,
            allowed_hosts=None,
            trusted_hosts=LOCALHOST,
        )
    assert not (tmp_path / "x.bin").exists()


# ---------------------------------------------------------------------------- check_url


@pytest.mark.parametrize(
    ("url", "allowed_hosts"),
    [
        ("http://127.0.0.1/x", None),
        ("http://10.0.0.1/", None),
        ("http://192.168.1.10/", None),
        ("http://169.254.169.254/latest/meta-data/", None),
        ("http://0.0.0.0/", None),
        ("http://100.64.0.1/", None),
        ("http://224.0.0.1/", None),
        ("http://[::1]/", None),
        ("http://[::ffff:127.0.0.1]/", None),
        ("http://[fe80::1%25eth0]/", None),
        ("http://localhost/", None),  # resolved, then refused
        ("ftp://cdn.discordapp.com/file.png", None),
        ("file:///etc/passwd", None),
        ("http:///no-host", None),
        ("http://cdn.discordapp.com:port/", None),
        ("https://evil.example.com/a.png", DISCORD_ATTACHMENT_HOSTS),
        ("https://cdn.discordapp.com@127.0.0.1/a.png", DISCORD_ATTACHMENT_HOSTS),
    ],
)
async def test_check_url_refuses(url: str, allowed_hosts: frozenset[str] | None) -> None:
    with pytest.raises(UnsafeURLError) as caught:
        await check_url(url, allowed_hosts=allowed_hosts, trusted_hosts=NOBODY)
    assert "attach the file" in caught.value.user_message.lower()


@pytest.mark.parametrize(
    ("url", "allowed_hosts", "trusted_hosts"),
    [
        ("http://127.0.0.1:8080/x", None, frozenset({"127.0.0.1"})),
        ("http://[::1]/x", None, frozenset({"::1"})),
        ("http://LOCALHOST./x", DISCORD_ATTACHMENT_HOSTS, LOCALHOST),
    ],
)
async def test_check_url_trusted_hosts_pass(
    url: str, allowed_hosts: frozenset[str] | None, trusted_hosts: frozenset[str]
) -> None:
    await check_url(url, allowed_hosts=allowed_hosts, trusted_hosts=trusted_hosts)


def fake_dns(monkeypatch: pytest.MonkeyPatch, *answers: str) -> None:
    """Answer every lookup with `answers` (there is no real DNS in the test sandbox)."""

    async def getaddrinfo(host: str, port: int, **_: object) -> list[tuple]:
        if not answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in answers]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)


async def test_check_url_public_host_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, "162.159.129.233")
    await check_url(
        "https://cdn.discordapp.com/attachments/1/2/cat.png",
        allowed_hosts=DISCORD_ATTACHMENT_HOSTS,
        trusted_hosts=NOBODY,
    )


async def test_check_url_refuses_if_any_address_is_private(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_dns(monkeypatch, "162.159.129.233", "10.1.2.3")
    with pytest.raises(UnsafeURLError, match="private or local"):
        await check_url("https://example.com/", allowed_hosts=None, trusted_hosts=NOBODY)


async def test_check_url_unknown_host(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch)
    with pytest.raises(UnsafeURLError, match="could not be found"):
        await check_url("https://nowhere.example/", allowed_hosts=None, trusted_hosts=NOBODY)


# ---------------------------------------------------------------------------- video

FPS = 25
SECONDS = 2
SIZE = (320, 240)


def write_test_video(path: Path) -> None:
    """A 2 s 320×240 H.264 + AAC mp4, encoded near-losslessly so it is big.

    Frames are coarse random blocks (8×8 px) rather than per-pixel noise: large at high
    quality yet still compressible, like real footage; pure noise cannot be squeezed at all.
    """
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = *SIZE, "yuv420p"
        video.options = {"crf": "12", "preset": "ultrafast"}
        audio = container.add_stream("aac", rate=44_100)
        audio.layout = "mono"
        for index in range(FPS * SECONDS):
            blocks = Image.frombytes("RGB", (40, 30), os.urandom(40 * 30 * 3))
            frame = av.VideoFrame.from_image(blocks.resize(SIZE, Image.Resampling.NEAREST))
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        for start in range(0, 44_100 * SECONDS, 1024):
            samples = av.AudioFrame(format="s16", layout="mono", samples=1024)
            samples.planes[0].update(os.urandom(2048))
            samples.sample_rate, samples.pts = 44_100, start
            samples.time_base = Fraction(1, 44_100)
            container.mux(audio.encode(samples))
        container.mux(audio.encode(None))


@pytest.fixture(scope="module")
def source_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One big test video shared by the module (encoding it takes a fraction of a second)."""
    path = tmp_path_factory.mktemp("video") / "source.mp4"
    write_test_video(path)
    return path


def decoded_frames(path: Path) -> int:
    """How many video frames actually decode: proof the file plays."""
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_probe_video(source_video: Path) -> None:
    info = probe_video(source_video)
    assert (info.width, info.height) == SIZE
    assert info.duration == pytest.approx(SECONDS, abs=0.1)
    assert info.has_audio


def test_probe_refuses_non_video(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("not a video")
    with pytest.raises(VideoError):
        probe_video(path)


@pytest.mark.parametrize(
    ("fraction", "keeps_audio"),
    [pytest.param(0.3, True, id="room-for-audio"), pytest.param(0.03, False, id="video-only")],
)
def test_reencode_fits_under_the_limit(
    source_video: Path, tmp_path: Path, fraction: float, keeps_audio: bool
) -> None:
    source_size = source_video.stat().st_size
    assert source_size > 500_000
    max_bytes = int(source_size * fraction)
    dest = tmp_path / "small.mp4"

    assert reencode_to_fit(source_video, dest, max_bytes=max_bytes) is True

    assert dest.stat().st_size <= max_bytes
    info = probe_video(dest)
    assert info.duration == pytest.approx(SECONDS, abs=0.1)
    assert info.has_audio is keeps_audio
    assert info.width % 2 == 0 and info.height % 2 == 0
    assert info.width / info.height == pytest.approx(SIZE[0] / SIZE[1], rel=0.05)
    assert decoded_frames(dest) == FPS * SECONDS


def test_reencode_gives_up_on_impossible_target(source_video: Path, tmp_path: Path) -> None:
    dest = tmp_path / "tiny.mp4"
    dest.write_bytes(b"stale output of an earlier attempt")

    assert reencode_to_fit(source_video, dest, max_bytes=2_000) is False

    assert not dest.exists()
